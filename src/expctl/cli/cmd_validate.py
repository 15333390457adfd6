"""`expctl validate` and `expctl schema`: offline checks of the manifests and their JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from expctl.adapters.config import ProjectConfigError
from expctl.adapters.manifest.load import load_directory
from expctl.cli.options import config_option, load_config, profile_option, resolve_profile
from expctl.core.errors import ExitCode
from expctl.core.manifest.model import manifest_json_schema
from expctl.core.render.problems import PROBLEM_RENDERERS

DEFAULT_DIR = "experiments.d"


@click.command("validate")
@click.argument("directory", default=DEFAULT_DIR, type=click.Path(path_type=Path), metavar="[DIR]")
@click.option("--format", "fmt", type=click.Choice(sorted(PROBLEM_RENDERERS)), default="text", show_default=True,
              help="github prints workflow annotations on the manifest lines.")
@profile_option
@config_option
def validate_command(directory: Path, fmt: str, gateway_profile_name: str | None, config_path: Path | None) -> int:
    """Check the manifests in DIR (default experiments.d) without touching any database.

    Reports every problem of every file in one run, as `path:line:col: CODE message` with a hint
    (the first 100 of a file, then one E199 line counting the rest).
    Exit 0 when clean, 1 when there are problems. The project configuration (expctl.toml) is
    checked first: its `[secrets] file_roots` say where `from_file` may point, and its
    `gateway_profile` which gateway the manifests are for (--gateway-profile wins).

    \b
    Examples:
      expctl validate
      expctl validate experiments.d --format json
      expctl validate --format github        # in a GitHub Actions step
      expctl validate --gateway-profile 2026-05
    """
    render = PROBLEM_RENDERERS[fmt]
    env = dict(os.environ)
    try:
        config = load_config(config_path, env)
    except ProjectConfigError as err:
        # The manifests' from_file checks depend on the configuration: they wait until it is fixed.
        click.echo(render(err.problems, 1, 0), nl=False)
        return int(ExitCode.ERROR)
    result = load_directory(directory, policy=config.secret_policy(Path.cwd(), env),
                            profile=resolve_profile(gateway_profile_name, config))
    click.echo(render(result.problems, len(result.files), len(result.experiments)), nl=False)
    return int(ExitCode.ERROR if result.problems else ExitCode.OK)


@click.command("schema")
@profile_option
@config_option
def schema_command(gateway_profile_name: str | None, config_path: Path | None) -> int:
    """Print the JSON Schema of a manifest for the gateway profile in use (the default profile's,
    2026-11, is committed as experiments.schema.json).

    \b
    Examples:
      expctl schema > experiments.schema.json
      expctl schema --gateway-profile 2026-05
    """
    try:
        config = load_config(config_path, dict(os.environ))
    except ProjectConfigError as err:
        # The profile may come from the configuration: guessing one would print the wrong schema.
        click.echo(PROBLEM_RENDERERS["text"](err.problems, 1, 0), nl=False, err=True)
        return int(ExitCode.ERROR)
    profile = resolve_profile(gateway_profile_name, config)
    click.echo(json.dumps(manifest_json_schema(profile.name), indent=2, sort_keys=True))
    return 0


def register(group: click.Group) -> None:
    group.add_command(validate_command)
    group.add_command(schema_command)
