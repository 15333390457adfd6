"""`expctl status`: observed traffic per variant, the sample ratio mismatch test and health flags."""

from __future__ import annotations

from typing import Any

import click

from expctl.app.status import status_report
from expctl.cli.options import connection_options, open_settings
from expctl.core.errors import ConfigError, ExitCode
from expctl.core.render.status_json import render_status_json
from expctl.core.render.status_markdown import render_status_markdown
from expctl.core.render.status_text import render_status_text
from expctl.core.status import When, parse_when

STATUS_RENDERERS = {"text": render_status_text, "markdown": render_status_markdown, "json": render_status_json}


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> When | None:
    if value is None:
        return None
    try:
        return parse_when(value)
    except ConfigError as err:
        raise click.BadParameter(str(err)) from None


@click.command("status")
@click.argument("selectors", nargs=-1, metavar="[NAME|PUBLIC_MODEL_ID]...")
@click.option("--all", "include_all", is_flag=True,
              help="Also completed, draft and unmanaged experiments (and every experiment of a public id).")
@click.option("--since", callback=_when, metavar="WHEN",
              help="Start of the window: a duration before now (24h, 7d) or an ISO 8601 time. "
                   "Default: when the experiment's current versions took effect.")
@click.option("--until", callback=_when, metavar="WHEN", help="End of the window (same forms). Default: now.")
@click.option("--format", "fmt", type=click.Choice(sorted(STATUS_RENDERERS)), default="text", show_default=True,
              help="text for terminals, markdown for PR or issue comments, json (the published format).")
@click.option("--exit-code", "exit_code", is_flag=True, help="Exit 2 when any health flag is raised.")
@connection_options
def status_command(selectors: tuple[str, ...], include_all: bool, since: When | None, until: When | None, fmt: str,
                   exit_code: bool, **conn: Any) -> int:
    """Observed traffic of managed active and paused experiments: per variant and per version
    (the checkpoint actually served), the split against the declared weights with a sample ratio
    mismatch test (SRM, p < 0.001 over distinct users), and health flags: srm, high_error_rate,
    no_traffic, traffic_while_stopped, stale_version. Reads only, in a READ ONLY transaction;
    needs the gateway's request tables (profile 2026-11 databases): exit 1 when they are missing.

    \b
    Examples:
      expctl status
      expctl status checkout-ab --since 24h
      expctl status --all --format markdown > status.md
      expctl status --exit-code               # exit 2 when a flag is raised (scheduled alerts)
    """
    with open_settings(None, **conn) as settings:
        report = status_report(settings, selectors, include_all, since, until)
    click.echo(STATUS_RENDERERS[fmt](report.to_record()), nl=False)
    return int(ExitCode.CHANGES if exit_code and report.flagged else ExitCode.OK)


def register(group: click.Group) -> None:
    group.add_command(status_command)
