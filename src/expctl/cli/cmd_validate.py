"""`expctl validate` and `expctl schema`: offline checks of the manifests and their JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from expctl.adapters.config import ProjectConfigError
from expctl.adapters.manifest.load import load_directory
from expctl.cli.options import config_option, load_config
from expctl.core.errors import ExitCode
from expctl.core.manifest.model import manifest_json_schema
from expctl.core.render.problems import PROBLEM_RENDERERS

DEFAULT_DIR = "experiments.d"


@click.command("validate")
@click.argument("directory", default=DEFAULT_DIR, type=click.Path(path_type=Path), metavar="[DIR]")
@click.option("--format", "fmt", type=click.Choice(sorted(PROBLEM_RENDERERS)), default="text", show_default=True,
              help="github prints workflow annotations on the manifest lines.")
@config_option
def validate_command(directory: Path, fmt: str, config_path: Path | None) -> int:
    """Check the manifests in DIR (default experiments.d) without touching any database.

    Reports every problem of every file in one run, as `path:line:col: CODE message` with a hint
    (the first 100 of a file, then one E199 line counting the rest).
    Exit 0 when clean, 1 when there are problems. The project configuration (expctl.toml) is
    checked first: its `[secrets] file_roots` say where `from_file` may point.

    \b
    Examples:
      expctl validate
      expctl validate experiments.d --format json
      expctl validate --format github        # in a GitHub Actions step
    """
    render = PROBLEM_RENDERERS[fmt]
    env = dict(os.environ)
    try:
        config = load_config(config_path, env)
    except ProjectConfigError as err:
        # The manifests' from_file checks depend on the configuration: they wait until it is fixed.
        click.echo(render(err.problems, 1, 0), nl=False)
        return int(ExitCode.ERROR)
    result = load_directory(directory, policy=config.secret_policy(Path.cwd(), env))
    click.echo(render(result.problems, len(result.files), len(result.experiments)), nl=False)
    return int(ExitCode.ERROR if result.problems else ExitCode.OK)


@click.command("schema")
def schema_command() -> int:
    """Print the JSON Schema of a manifest (also committed as experiments.schema.json).

    \b
    Example:
      expctl schema > experiments.schema.json
    """
    click.echo(json.dumps(manifest_json_schema(), indent=2, sort_keys=True))
    return 0


def register(group: click.Group) -> None:
    group.add_command(validate_command)
    group.add_command(schema_command)
