"""`expctl validate` and `expctl schema`: offline checks of the manifests and their JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from expctl.adapters.config import ProjectConfig, ProjectConfigError
from expctl.adapters.manifest.load import load_directory
from expctl.cli.options import config_option, env_option, load_config, profile_option, resolve_profile
from expctl.core.errors import ExitCode, Problem
from expctl.core.manifest.model import manifest_json_schema
from expctl.core.render.problems import PROBLEM_RENDERERS

DEFAULT_DIR = "experiments.d"


@click.command("validate")
@click.argument("directory", default=None, required=False, type=click.Path(path_type=Path), metavar="[DIR]")
@click.option("--format", "fmt", type=click.Choice(sorted(PROBLEM_RENDERERS)), default="text", show_default=True,
              help="github prints workflow annotations on the manifest lines.")
@profile_option
@config_option
@env_option
def validate_command(directory: Path | None, fmt: str, gateway_profile_name: str | None, config_path: Path | None,
                     env_name: str | None) -> int:
    """Check the manifests in DIR without touching any database.

    Without DIR: the folder of --env's environment; else, when expctl.toml defines environments,
    every environment's folder (each checked on its own: they are different deployments); else
    manifest_dir of expctl.toml, else experiments.d.

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
      expctl validate --env staging          # one environment's folder of expctl.toml
    """
    render = PROBLEM_RENDERERS[fmt]
    env = dict(os.environ)
    try:
        config = load_config(config_path, env)
    except ProjectConfigError as err:
        # The manifests' from_file checks depend on the configuration: they wait until it is fixed.
        click.echo(render(err.problems, 1, 0), nl=False)
        return int(ExitCode.ERROR)
    policy, profile = config.secret_policy(Path.cwd(), env), resolve_profile(gateway_profile_name, config)
    problems: list[Problem] = []
    files = experiments = 0
    for folder in _folders(directory, env_name, config):
        result = load_directory(folder, policy=policy, profile=profile)
        problems += result.problems
        files, experiments = files + len(result.files), experiments + len(result.experiments)
    click.echo(render(problems, files, experiments), nl=False)
    return int(ExitCode.ERROR if problems else ExitCode.OK)


def _folders(directory: Path | None, env_name: str | None, config: ProjectConfig) -> list[Path]:
    if directory is not None:
        return [directory]
    if env_name is not None:
        return [Path(config.environment(env_name).manifest_dir)]
    if config.environments:
        return sorted({Path(e.manifest_dir) for e in config.environments.values()})
    return [Path(config.manifest_dir or DEFAULT_DIR)]


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
