"""`expctl db init`: create the tables that are missing; never alter existing ones."""

from __future__ import annotations

from typing import Any

import click

from expctl.adapters.store.db import connect, init_schema
from expctl.cli.options import connection_options, open_settings


@click.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("init")
@connection_options
def db_init_command(**conn: Any) -> int:
    """Create the gateway's tables and expctl's own where missing (idempotent).

    On a database that already holds the gateway's tables, only expctl's tables are added; the
    gateway's tables are never altered. A binding table made by an older expctl gains the `scope`
    and `applied` columns, every binding kept (in scope "default").

    \b
    Examples:
      expctl db init
      DATABASE_URL=postgresql://admin@db/gateway expctl db init
    """
    with open_settings(None, **conn) as settings, connect(settings.database_url) as db, db.begin():
        created, upgraded = init_schema(db)
    if created:
        click.echo(f"Created {len(created)} table(s): {', '.join(created)}")
    for table in upgraded:
        click.echo(f"Upgraded {table}")
    if not created and not upgraded:
        click.echo("Nothing to do: every table exists.")
    return 0


def register(group: click.Group) -> None:
    group.add_command(db_group)
