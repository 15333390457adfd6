"""Options shared by the commands that talk to PostgreSQL and Redis, and how they become Settings.

With no database URL, expctl runs on the embedded local PostgreSQL and Redis (docs/design.md#commands), except
under CI (`CI` set to anything but empty, 0, false or no), where a missing DATABASE_URL is an
error unless --local is given. The project configuration (`expctl.toml`, `--config`) is read
before anything starts, so a bad one fails the command early. The gateway profile comes from
`--gateway-profile`, else `EXPCTL_GATEWAY_PROFILE`, else `gateway_profile` in expctl.toml, else
the default (docs/design.md#gateway-profiles).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from expctl.adapters.config import ProjectConfig, load_project_config
from expctl.app.settings import DEFAULT_REDIS_PREFIX, Settings
from expctl.core.errors import ConfigError
from expctl.core.profiles import DEFAULT_PROFILE, PROFILES, GatewayProfile, gateway_profile

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DIR = "experiments.d"


def _split_redis_urls(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    if value:
        return tuple(u.strip() for v in value for u in v.split(",") if u.strip())
    env = os.environ.get("REDIS_URL", "")
    return tuple(u.strip() for u in env.split(",") if u.strip())


# Values of CI that mean "not CI"; anything else (true, 1, yes, a provider's name) means CI, so a
# job cannot slip into a throwaway embedded database because its CI variable is spelled `1`.
_CI_OFF = frozenset({"", "0", "false", "no"})


def in_ci(env: Mapping[str, str]) -> bool:
    return env.get("CI", "").strip().lower() not in _CI_OFF


def config_option(func: F) -> F:
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), envvar="EXPCTL_CONFIG",
        help="Project configuration file (env EXPCTL_CONFIG). Default: expctl.toml in the working directory, "
             "if present.",
    )(func)


def load_config(config_path: Path | None, env: Mapping[str, str]) -> ProjectConfig:
    """The project configuration of the repository (the working directory)."""
    return load_project_config(Path.cwd(), env, config_path)


def profile_option(func: F) -> F:
    # click checks the flag and the variable against the known names, so a typo is a usage error
    # (exit 1) naming --gateway-profile; the configuration's value is checked when it is read.
    return click.option(
        "--gateway-profile", "gateway_profile_name", type=click.Choice(sorted(PROFILES)),
        envvar="EXPCTL_GATEWAY_PROFILE", default=None,
        help=f"Gateway version to follow (env EXPCTL_GATEWAY_PROFILE; else gateway_profile in expctl.toml; "
             f"default {DEFAULT_PROFILE}).",
    )(func)


def resolve_profile(flag_or_env: str | None, config: ProjectConfig) -> GatewayProfile:
    """The flag (or its variable, which click reads for it), else expctl.toml, else the default."""
    return gateway_profile(flag_or_env or config.gateway_profile)


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
                     help="Use the embedded local PostgreSQL and Redis under .expctl/ (needed under CI)."),
    ]
    for option in reversed(options):
        func = option(func)
    return config_option(profile_option(func))


@contextmanager
def open_settings(
    manifest_dir: Path | None, database_url: str | None, redis_urls: tuple[str, ...], redis_prefix: str,
    use_local: bool, lock_timeout_s: float = 60.0, config_path: Path | None = None,
    gateway_profile_name: str | None = None,
) -> Iterator[Settings]:
    """Settings for one command; starts (and finally stops) the local instance when it is used."""
    env = dict(os.environ)
    config = load_config(config_path, env)
    profile = resolve_profile(gateway_profile_name, config)
    command = _command_name()
    if database_url and not use_local:
        yield Settings(manifest_dir or Path(DEFAULT_DIR), database_url, redis_urls, redis_prefix, env,
                       lock_timeout_s=lock_timeout_s, config=config, gateway_profile=profile,
                       command=command, on_lock_wait=_say_lock_wait)
        return
    if in_ci(env) and not use_local:
        raise ConfigError(f"DATABASE_URL is not set and CI={env['CI']!r}: set DATABASE_URL, or pass --local to "
                          "use the embedded local instance")
    from expctl.adapters.local import local_instance  # noqa: PLC0415 - only local runs pay for it

    with local_instance(Path.cwd()) as local:
        click.echo(f"expctl: using the embedded local PostgreSQL and Redis under {local.state_dir} "
                   "(no DATABASE_URL given; stopped when this command ends)", err=True)
        env.setdefault("BYOK_ENCRYPTION_KEY", local.byok_key)
        yield Settings(manifest_dir or Path(DEFAULT_DIR), local.database_url, redis_urls or (local.redis_url,),
                       redis_prefix, env, lock_timeout_s=lock_timeout_s, config=config, gateway_profile=profile,
                       command=command, on_lock_wait=_say_lock_wait)


def _command_name() -> str:
    """The running command without the program name ("reconcile", "cache refresh")."""
    names: list[str] = []
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names)) or "expctl"


def _say_lock_wait(line: str) -> None:
    click.echo(f"expctl: {line}", err=True)
