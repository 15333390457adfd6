"""`expctl history`: recent runs from the audit table."""

from __future__ import annotations

import json
from typing import Any

import click

from expctl.adapters.store.audit import recent_runs
from expctl.adapters.store.db import read_only
from expctl.cli.options import connection_options, open_settings
from expctl.core.render.clean import clean


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
        click.echo(_line(run))
    return 0


def _line(run: dict[str, Any]) -> str:
    """One run, every text field escaped: the actor comes from the environment (EXPCTL_ACTOR, USER)
    and anyone who can write the audit table writes the rest, so none may move the cursor, recolour
    the terminal or reorder the line."""
    summary = run["summary"] if isinstance(run["summary"], dict) else {}
    counts = summary.get("counts")
    total = clean(str(counts.get("total", 0) if isinstance(counts, dict) else 0))

    def field(name: str, width: int | None = None) -> str:
        return clean(str(run[name] or "-")[:width])

    return (f"#{run['id']}  {run['started_at']:%Y-%m-%d %H:%M:%S%z}  {field('command'):<9}  "
            f"{field('outcome'):<10}  {total} change(s)  actor={field('actor')}  "
            f"rev={field('git_revision', 12)}  plan={field('plan_id', 19)}")


def register(group: click.Group) -> None:
    group.add_command(history_command)
