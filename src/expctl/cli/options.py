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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from expctl.adapters.config import ProjectConfig, load_project_config
from expctl.app.settings import DEFAULT_REDIS_PREFIX, Settings
from expctl.core.errors import ConfigError
from expctl.core.plan import DRIFT_MODES
from expctl.core.planner import Scope
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
        "--dir", "manifest_dir", type=click.Path(path_type=Path), default=None, envvar="EXPCTL_DIR",
        help=f"Manifest directory (env EXPCTL_DIR). Default: the environment's manifest_dir, else manifest_dir "
             f"in expctl.toml, else {DEFAULT_DIR}.",
    )(func)


def plan_options(func: F) -> F:
    """`--only` and `--drift`: which manifests a plan covers and what it does with drift."""
    options = [
        click.option("--only", "only", multiple=True, metavar="NAME",
                     help="Plan only the manifests whose name matches (repeatable; glob patterns such as 'search-*'). "
                          "Others are neither changed nor treated as removed; the plan says it is partial."),
        click.option("--drift", "drift_mode", type=click.Choice(DRIFT_MODES), default="hold", show_default=True,
                     envvar="EXPCTL_DRIFT",
                     help="Values changed outside expctl since its last apply (e.g. an on-call pause in the admin "
                          "UI): hold keeps them and lists them, revert restores what the manifest says "
                          "(env EXPCTL_DRIFT)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
    return config_option(profile_option(env_option(func)))


def env_option(func: F) -> F:
    return click.option(
        "--env", "env_name", envvar="EXPCTL_ENV", metavar="NAME", default=None,
        help="Environment of expctl.toml to run against (env EXPCTL_ENV): its manifests, scope, and the "
             "variables holding its database URL, Redis URLs and BYOK key.",
    )(func)


def _explicit(name: str) -> bool:
    """Whether the current command's parameter `name` was given on the command line."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


@dataclass(frozen=True)
class _Target:
    """Where one run goes: folder, database, Redis targets, the environment holding the secrets."""

    manifest_dir: Path
    database_url: str | None
    redis_urls: tuple[str, ...]
    env: dict[str, str]
    scope: str
    environment: str | None = None


def _target(config: ProjectConfig, env_name: str | None, manifest_dir: Path | None, database_url: str | None,
            redis_urls: tuple[str, ...], use_local: bool) -> _Target:
    env = dict(os.environ)
    if env_name is None:
        if config.environments:
            raise ConfigError(f"{config.path.name if config.path else 'expctl.toml'} defines environments "
                              f"({', '.join(sorted(config.environments))}): choose one with --env NAME or EXPCTL_ENV")
        folder = manifest_dir or Path(config.manifest_dir or DEFAULT_DIR)
        return _Target(folder, database_url, redis_urls, env, config.scope)
    environment = config.environment(env_name)
    for option, given, variable in (("--database-url", "database_url", environment.database_url_env),
                                    ("--redis-url", "redis_urls", environment.redis_url_env)):
        if _explicit(given):
            raise ConfigError(f"{option} cannot be combined with --env {env_name}: the environment reads it "
                              f"from ${variable}")
    if manifest_dir is not None and manifest_dir != Path(environment.manifest_dir):
        raise ConfigError(f"--dir {manifest_dir} differs from environment {env_name}'s manifest_dir "
                          f"({environment.manifest_dir}): drop --dir, or change expctl.toml")
    url = env.get(environment.database_url_env) or None
    if url is None and not use_local:
        raise ConfigError(f"environment {env_name} reads its database URL from ${environment.database_url_env}, "
                          "which is not set")
    redis = tuple(u.strip() for u in env.get(environment.redis_url_env, "").split(",") if u.strip())
    # Only the environment's BYOK key: never another environment's through the shared name.
    byok = env.pop(environment.byok_key_env, None)
    env.pop("BYOK_ENCRYPTION_KEY", None)
    if byok:
        env["BYOK_ENCRYPTION_KEY"] = byok
    return _Target(Path(environment.manifest_dir), url, redis, env, environment.scope, env_name)


@contextmanager
def open_settings(
    manifest_dir: Path | None, database_url: str | None, redis_urls: tuple[str, ...], redis_prefix: str,
    use_local: bool, lock_timeout_s: float = 60.0, config_path: Path | None = None,
    gateway_profile_name: str | None = None, env_name: str | None = None, only: tuple[str, ...] = (),
    drift_mode: str = "hold",
) -> Iterator[Settings]:
    """Settings for one command; starts (and finally stops) the local instance when it is used."""
    config = load_config(config_path, os.environ)
    profile = resolve_profile(gateway_profile_name, config)
    where = _target(config, env_name, manifest_dir, database_url, redis_urls, use_local)
    env, redis_urls = where.env, where.redis_urls
    plan_scope = Scope(where.scope, tuple(sorted(set(only))) or None, where.environment, drift_mode)
    command = _command_name()
    if where.database_url and not use_local:
        yield Settings(where.manifest_dir, where.database_url, redis_urls, redis_prefix, env,
                       lock_timeout_s=lock_timeout_s, config=config, gateway_profile=profile, plan_scope=plan_scope,
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
        yield Settings(where.manifest_dir, local.database_url, redis_urls or (local.redis_url,),
                       redis_prefix, env, lock_timeout_s=lock_timeout_s, config=config, gateway_profile=profile,
                       plan_scope=plan_scope, command=command, on_lock_wait=_say_lock_wait)


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
