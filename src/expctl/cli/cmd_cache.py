"""`expctl cache check` and `expctl cache refresh`: the gateway's Redis keys against PostgreSQL."""

from __future__ import annotations

from typing import Any

import click

from expctl.adapters.store.db import read_only
from expctl.adapters.store.reader import routed_membership
from expctl.app.service import refresh_cache
from expctl.app.settings import Settings
from expctl.cli.options import connection_options, open_settings
from expctl.core.errors import ConfigError, ExitCode


def _expected(settings: Settings) -> tuple[str, ...]:
    if not settings.redis_urls:
        raise ConfigError("no Redis URL: pass --redis-url or set REDIS_URL")
    with read_only(settings.database_url) as conn:
        return routed_membership(conn)


@click.group("cache")
def cache_group() -> None:
    """Redis cache commands."""


@cache_group.command("check")
@connection_options
def cache_check_command(**conn: Any) -> int:
    """Report drift between Redis and PostgreSQL (exit 2 on drift, including a corrupt value).

    Drift is a membership key that is missing, corrupt or not exactly the sorted routed ids, and,
    under gateway profile 2026-05 (the only gateway that reads them), a per-id routing key of a
    routed id whose value is not JSON, or not a JSON object, array or null.

    \b
    Example:
      REDIS_URL=redis://eu,redis://us expctl cache check
    """
    with open_settings(None, **conn) as settings:
        expected = _expected(settings)
        drifts = settings.cache().check(expected)
    for drift in drifts:
        click.echo(f"drift: {drift.url}: {drift.problem}")
    if drifts:
        return int(ExitCode.CHANGES)
    click.echo(f"OK: membership matches PostgreSQL on {len(settings.redis_urls)} target(s): {list(expected)}")
    return 0


@cache_group.command("refresh")
@connection_options
def cache_refresh_command(**conn: Any) -> int:
    """Rewrite the membership key from PostgreSQL (and, under gateway profile 2026-05, drop the per-id
    routing key of every routed id).

    \b
    Example:
      expctl cache refresh --redis-url redis://localhost:6379/0
    """
    with open_settings(None, **conn) as settings:
        expected = _expected(settings)
        refresh_cache(settings, expected)
    click.echo(f"Refreshed {len(settings.redis_urls)} target(s): membership {list(expected)}")
    return 0


def register(group: click.Group) -> None:
    group.add_command(cache_group)
