"""`expctl import`: adopt unmanaged experiments (created in the admin UI) into manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from expctl.app.importer import Imported, ImportResult, import_experiments
from expctl.cli.options import DEFAULT_DIR, connection_options, open_settings
from expctl.core.errors import ExitCode
from expctl.core.state import ActualExperiment


def _describe(experiment: ActualExperiment) -> str:
    return f"'{experiment.name[:80]}' ({experiment.public_model_id}, {experiment.status}, id {experiment.id})"


def _echo_imported(imported: list[Imported]) -> None:
    click.echo(f"Wrote {len(imported)} manifest(s) adopting existing experiments:")
    for item in imported:
        click.echo(f"  {item.name}  <-  {_describe(item.experiment)}  ->  {item.path}")
    click.echo("Nothing was written to the database: commit these files and open a pull request; the plan shows "
               "each adoption (adopt_experiment) and apply binds them on merge.")
    needing = [i for i in imported if i.needs_keys]
    if needing:
        click.echo("\nSet these environment variables to the API keys stored for each variant "
                   "(never commit them):")
        rows = [(env, f"{item.name} / {label}") for item in needing for label, env in item.env_vars]
        width = max(len(env) for env, _ in rows)
        for env, where in rows:
            click.echo(f"  {env:<{width}}  ({where})")
        click.echo("Until they resolve, `expctl plan` shows the adoption and those keys as \"checked at apply\", "
                   "nothing else.")
    completed = [i.name for i in imported if not i.needs_keys and i.env_vars]
    if completed:
        click.echo(f"Completed experiments' keys are never read: {', '.join(completed)} need no variables.")


def _echo_result(result: ImportResult) -> None:
    for note in result.notes:
        click.echo(note)
    if result.imported:
        _echo_imported(result.imported)
    elif not result.skipped and not result.errors:
        click.echo("Nothing to import: no unmanaged experiment matches.")
    for skipped in result.skipped:
        click.echo(f"not importable: {_describe(skipped.experiment)}", err=True)
        for reason in skipped.reasons:
            click.echo(f"  - {reason}", err=True)
        click.echo("  fix the row (e.g. in the admin UI), then run `expctl import` again", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in result.errors:
        click.echo(f"error: {error}", err=True)


@click.command("import")
@click.option("--public-model-id", "public_ids", multiple=True, metavar="ID",
              help="Import only the unmanaged experiments on this public model id (repeatable).")
@click.option("--out-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=f"Directory to write the manifests into (created if missing). Default: the environment's or "
                   f"expctl.toml's manifest_dir, else {DEFAULT_DIR}.")
@click.option("--force", is_flag=True, help="Overwrite manifest files that already exist.")
@connection_options
def import_command(public_ids: tuple[str, ...], out_dir: Path | None, force: bool, **conn: Any) -> int:
    """Write manifests that adopt unmanaged experiments (e.g. created in the admin UI).

    Writes one manifest per experiment (`adopt: <its id>`, status, archived, variants, weights, the
    current upstream exactly as stored) and never writes to the database: the next plan shows the
    adoption as a change, and apply (on merge) binds the row, so expctl manages it from then on.
    API keys become placeholders `{from_env: EXPCTL_KEY_<NAME>_<LABEL>}`: set them to the stored
    keys and the plan shows only the adoption; until then it also shows keys "checked at apply".
    Existing files are never overwritten without --force; a failure removes the files written.
    Exit 1 when an experiment is not importable (it is named, with the reason) or an id matches
    nothing.

    \b
    Examples:
      expctl import                                   # every unmanaged experiment
      expctl import --public-model-id preview/preview-foo
      expctl import --out-dir experiments.d --force && expctl plan
      expctl import --env staging            # the environment's database and manifest folder
    """
    with open_settings(None, **conn) as settings:
        result = import_experiments(settings, out_dir or settings.manifest_dir, public_ids, force)
    _echo_result(result)
    return int(ExitCode.OK if result.ok else ExitCode.ERROR)


def register(group: click.Group) -> None:
    group.add_command(import_command)
