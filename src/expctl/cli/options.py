"""Options shared by the commands that talk to PostgreSQL and Redis, and how they become Settings.

With no database URL, expctl runs on the embedded local PostgreSQL and Redis (DESIGN §4), except
under CI=true, where a missing DATABASE_URL is an error unless --local is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from expctl.errors import ConfigError
from expctl.settings import DEFAULT_REDIS_PREFIX, Settings

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DIR = "experiments.d"


def _split_redis_urls(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    if value:
        return tuple(u.strip() for v in value for u in v.split(",") if u.strip())
    env = os.environ.get("REDIS_URL", "")
    return tuple(u.strip() for u in env.split(",") if u.strip())


def dir_option(func: F) -> F:
    return click.option(
        "--dir", "manifest_dir", type=click.Path(path_type=Path), default=DEFAULT_DIR, envvar="EXPCTL_DIR",
        show_default=True, help="Manifest directory.",
    )(func)


def connection_options(func: F) -> F:
    options = [
        click.option("--database-url", envvar="DATABASE_URL", metavar="URL",
                     help="PostgreSQL URL (env DATABASE_URL). Without it: the embedded local instance."),
        click.option("--redis-url", "redis_urls", multiple=True, callback=_split_redis_urls, metavar="URL",
                     expose_value=True,
                     help="Redis URL; repeat for several regions (env REDIS_URL, comma-separated)."),
        click.option("--redis-prefix", envvar="EXPCTL_REDIS_PREFIX", default=DEFAULT_REDIS_PREFIX, show_default=True,
                     help="Key prefix of the gateway's Redis keys."),
        click.option("--local", "use_local", is_flag=True,
                     help="Use the embedded local PostgreSQL and Redis under .expctl/ (needed under CI=true)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextmanager
def open_settings(
    manifest_dir: Path | None, database_url: str | None, redis_urls: tuple[str, ...], redis_prefix: str,
    use_local: bool, lock_timeout_s: float = 60.0,
) -> Iterator[Settings]:
    """Settings for one command; starts (and finally stops) the local instance when it is used."""
    env = dict(os.environ)
    if database_url and not use_local:
        yield Settings(manifest_dir or Path(DEFAULT_DIR), database_url, redis_urls, redis_prefix, env,
                       lock_timeout_s=lock_timeout_s)
        return
    if env.get("CI", "").lower() == "true" and not use_local:
        raise ConfigError("DATABASE_URL is not set and CI=true: set DATABASE_URL, or pass --local to use the "
                          "embedded local instance")
    from expctl.local import local_instance  # noqa: PLC0415 - only local runs pay for it

    with local_instance(Path.cwd()) as local:
        where = "" if local.postgres_data_dir.is_relative_to(local.state_dir) else \
            f"; PostgreSQL data in {local.postgres_data_dir}"
        click.echo(f"expctl: using the embedded local PostgreSQL and Redis under {local.state_dir}{where} "
                   "(no DATABASE_URL given; stopped when this command ends)", err=True)
        env.setdefault("BYOK_ENCRYPTION_KEY", local.byok_key)
        yield Settings(manifest_dir or Path(DEFAULT_DIR), local.database_url, redis_urls or (local.redis_url,),
                       redis_prefix, env, lock_timeout_s=lock_timeout_s)
