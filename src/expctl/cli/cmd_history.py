"""`expctl history`: recent runs from the audit table."""

from __future__ import annotations

import json
from typing import Any

import click

from expctl.cli.options import connection_options, open_settings
from expctl.store.audit import recent_runs
from expctl.store.db import read_only


@click.command("history")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@connection_options
def history_command(limit: int, fmt: str, **conn: Any) -> int:
    """Show recent apply/reconcile runs: when, who, git revision, plan id, outcome.

    \b
    Examples:
      expctl history
      expctl history --limit 5 --format json
    """
    with open_settings(None, **conn) as settings, read_only(settings.database_url) as db:
        runs = recent_runs(db, limit)
    if fmt == "json":
        click.echo(json.dumps(runs, indent=2, default=str))
        return 0
    if not runs:
        click.echo("No runs recorded yet.")
    for run in runs:
        counts = (run["summary"] or {}).get("counts", {})
        click.echo(
            f"#{run['id']}  {run['started_at']:%Y-%m-%d %H:%M:%S%z}  {run['command']:<9}  {run['outcome']:<10}  "
            f"{counts.get('total', 0)} change(s)  actor={run['actor'] or '-'}  "
            f"rev={(run['git_revision'] or '-')[:12]}  plan={(run['plan_id'] or '-')[:19]}"
        )
    return 0


def register(group: click.Group) -> None:
    group.add_command(history_command)
