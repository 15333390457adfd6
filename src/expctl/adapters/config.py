"""The project configuration file, `expctl.toml` at the repository root — adapter.

Optional: without it everything works with the built-in defaults. It is read with `tomllib`,
validated by a strict pydantic model (unknown keys are errors) and by the secret-source policy,
and every problem is reported at once as `expctl.toml:line:col: CODE message` with a hint (codes
E500-E505: their titles and default hints are in `expctl.core.codes`, README "Configuration" lists
them). New sections are added as fields of `_ConfigFile` and `ProjectConfig`; the locating and
reporting need no change.

```toml
gateway_profile = "2026-05"                        # optional: the gateway version (default 2026-11)
scope = "team-payments"                            # optional: who owns the bindings (default "default")
manifest_dir = "experiments.d"                     # optional: where the manifests are
[environments.staging]                             # optional: one table per environment (--env staging)
manifest_dir = "environments/staging"              # default experiments.d/<name>
database_url_env = "STAGING_DATABASE_URL"          # default <NAME>_DATABASE_URL, and so on
redis_url_env = "STAGING_REDIS_URL"
byok_key_env = "STAGING_BYOK_ENCRYPTION_KEY"
scope = "team-payments-staging"                    # default: the top-level scope
[secrets]
file_roots = ["/etc/expctl/secrets", "secrets"]   # more roots `from_file` may point below
[secrets.host_pins]                                # optional: where a secret may be sent
"env:PARTNER_RC1_KEY" = ["partner.example.com"]
"file:/run/secrets/partner-rc2" = ["*.partner.example.com"]
```
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from expctl.adapters.secret_policy import SecretPolicy, is_reserved_env
from expctl.adapters.tomlpos import Key, key_positions, locate
from expctl.core.codes import problem
from expctl.core.errors import ConfigError, Location, Problem
from expctl.core.plan import DEFAULT_SCOPE
from expctl.core.profiles import PROFILES

CONFIG_FILE_NAME = "expctl.toml"
MAX_CONFIG_BYTES = 1024 * 1024

__all__ = ["CONFIG_FILE_NAME", "ProjectConfig", "ProjectConfigError", "load_project_config"]


class ProjectConfigError(ConfigError):
    """`expctl.toml` has problems; `problems` lists all of them, located."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        lines = [f"{p.location}: {p.code} {p.message}" + (f"\n    hint: {p.hint}" if p.hint else "")
                 for p in self.problems]
        super().__init__(f"{len(self.problems)} problem(s) in the project configuration:\n" + "\n".join(lines))


# --- the file's shape -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Secrets(_Strict):
    file_roots: list[str] = []
    host_pins: dict[str, list[str]] = {}


class _Environment(_Strict):
    manifest_dir: str | None = None
    scope: str | None = None
    database_url_env: str | None = None
    redis_url_env: str | None = None
    byok_key_env: str | None = None


class _ConfigFile(_Strict):
    gateway_profile: str | None = None
    scope: str | None = None
    manifest_dir: str | None = None
    secrets: _Secrets = _Secrets()
    environments: dict[str, _Environment] = {}


@dataclass(frozen=True)
class Environment:
    """One environment of `expctl.toml`: its manifests, scope, and the *names* of the variables
    holding its database URL, Redis URLs (comma-separated) and BYOK key."""

    name: str
    manifest_dir: str
    scope: str
    database_url_env: str
    redis_url_env: str
    byok_key_env: str


# --- what the commands use ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectConfig:
    """The validated project configuration; `ProjectConfig()` is the built-in default."""

    path: Path | None = None  # where it was read from; None when there is no file
    file_roots: tuple[Path, ...] = ()  # absolute (relative entries joined to the repository root)
    # `SecretRef.describe()` ("env:NAME", "file:PATH") -> host patterns, lower case.
    host_pins: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    # The top-level `gateway_profile` as written (checked against the known profiles); None = not set.
    gateway_profile: str | None = None
    scope: str = DEFAULT_SCOPE
    manifest_dir: str | None = None
    environments: Mapping[str, Environment] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def environment(self, name: str) -> Environment:
        """The environment `name` (ConfigError naming the configured ones when unknown)."""
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            where = self.path.name if self.path else "no expctl.toml"
            raise ConfigError(f"unknown environment {name!r} (--env / EXPCTL_ENV); {where} defines: {known}")
        return self.environments[name]

    def secret_policy(self, repo_root: Path, env: Mapping[str, str]) -> SecretPolicy:
        """The secret-source policy: the built-in roots plus `file_roots`."""
        return SecretPolicy.build(repo_root, env, self.file_roots)


# --- reading --------------------------------------------------------------------------------------


def _read(path: Path, shown: str) -> str | Problem:
    """The file's text, or why it cannot be used (never a piece of its content)."""
    start = Location(shown, 1, 1)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not block
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return problem("E500", start, "the configuration is not a regular file", "point it at a TOML file")
            raw = os.read(fd, MAX_CONFIG_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as err:
        return problem("E500", start, f"cannot read the configuration: {err.strerror or type(err).__name__}")
    if len(raw) > MAX_CONFIG_BYTES:
        return problem("E500", start, "the configuration is over 1 MiB", "it holds a few settings; check the file")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return problem("E500", Location(shown, line, 1), "the configuration is not valid UTF-8", "save it as UTF-8")


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def _syntax_problem(err: tomllib.TOMLDecodeError, text: str, shown: str) -> Problem:
    """tomllib puts the position into its message; it becomes the problem's location."""
    message = str(err)
    found = _TOML_POSITION.search(message)
    if found:
        line, col = int(found[1]), int(found[2])
    else:  # "(at end of document)": the last line
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    message = _TOML_AT_END.sub("", _TOML_POSITION.sub("", message))
    return problem("E501", Location(shown, line, col), f"TOML syntax error: {message}")


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(path: Key) -> str:
    """A key path as TOML writes it: secrets.host_pins."env:X"[0]."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _BARE.fullmatch(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            text += f".{name}" if text else name
    return text or "the file"


def _known_keys(table: Key) -> list[str]:
    """The keys the model accepts in `table` (empty when `table` is not a section)."""
    model: type[BaseModel] = _ConfigFile
    for part in table:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _shape_problems(err: ValidationError, where: _Where) -> list[Problem]:
    problems = []
    for error in err.errors(include_input=False, include_url=False):
        path: Key = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            scope = f"in [{_dotted(path[:-1])}]" if path[:-1] else "at the top level"
            known = _known_keys(path[:-1])
            problems.append(where.problem("E502", path, f"unknown key {path[-1]!r} {scope}",
                                          f"known here: {', '.join(known)}" if known else None))
        else:
            problems.append(where.problem("E503", path, f"{_dotted(path)}: {error['msg']}"))
    return problems


@dataclass(frozen=True)
class _Where:
    shown: str
    positions: dict[Key, tuple[int, int]]

    def problem(self, code: str, path: Key, message: str, hint: str | None = None) -> Problem:
        """A problem at `path`; without `hint`, the code's default (`expctl.core.codes`)."""
        return problem(code, Location(self.shown, *locate(self.positions, path)), message, hint)


_ENV_KEY = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_PATTERN = re.compile(rf"(?:\*\.{_LABEL}(?:\.{_LABEL})+|{_LABEL}(?:\.{_LABEL})*)")


def _root_problems(roots: Any, policy: SecretPolicy, where: _Where) -> list[Problem]:
    problems = []
    for index, root in enumerate(roots if isinstance(roots, list) else []):
        if not isinstance(root, str):
            continue  # reported by the model
        path = ("secrets", "file_roots", index)
        if not root or ".." in PurePosixPath(root).parts:
            problems.append(where.problem("E504", path, "a file root must be a non-empty path without '..'"))
            continue
        absolute = policy.repo_root / root
        why = policy.root_problem(root) or policy.root_problem(os.path.realpath(absolute))
        if why is not None:
            problems.append(where.problem("E504", path, f"file root {why}"))
    return problems


def _pin_problems(pins: Any, where: _Where) -> list[Problem]:
    problems = []
    for key, patterns in (pins.items() if isinstance(pins, dict) else []):
        path: Key = ("secrets", "host_pins", key)
        if not (_ENV_KEY.fullmatch(key) or (key.startswith("file:") and len(key) > len("file:"))):
            problems.append(where.problem("E505", path, f"host pin key {key!r} is not a secret reference",
                                          'write "env:NAME" or "file:PATH", as the manifest references it'))
        if isinstance(patterns, list) and not patterns:
            problems.append(where.problem("E505", path, f"host pin {key!r} allows no host",
                                          "list the hosts the secret may be sent to, or remove the pin"))
        for index, pattern in enumerate(patterns if isinstance(patterns, list) else []):
            if isinstance(pattern, str) and not _HOST_PATTERN.fullmatch(pattern.lower()):
                problems.append(where.problem("E505", (*path, index), "not a host name pattern"))
    return problems


def _profile_problems(value: Any, where: _Where) -> list[Problem]:
    # A string that names no profile is a value problem the model cannot see; other types it reports.
    if not isinstance(value, str) or value in PROFILES:
        return []
    known = ", ".join(f'"{name}"' for name in sorted(PROFILES))
    return [where.problem("E503", ("gateway_profile",), f"unknown gateway profile {value[:40]!r}",
                          f"write one of {known}")]


def _config_path(repo_root: Path, explicit: Path | None) -> tuple[Path, str] | None:
    if explicit is not None:
        return (explicit if explicit.is_absolute() else repo_root / explicit), str(explicit)
    default = repo_root / CONFIG_FILE_NAME
    return (default, CONFIG_FILE_NAME) if os.path.lexists(default) else None


def load_project_config(repo_root: Path, env: Mapping[str, str], explicit: Path | None = None) -> ProjectConfig:
    """`explicit` (from --config / EXPCTL_CONFIG; must exist), else `expctl.toml` in `repo_root`
    if present, else the defaults. Raises `ProjectConfigError` with every problem found."""
    found = _config_path(repo_root, explicit)
    if found is None:
        return ProjectConfig()
    path, shown = found
    text = _read(path, shown)
    if isinstance(text, Problem):
        raise ProjectConfigError([text])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProjectConfigError([_syntax_problem(err, text, shown)]) from None
    where = _Where(shown, key_positions(text))
    problems: list[Problem] = []
    try:
        model = _ConfigFile.model_validate(data)
    except ValidationError as err:
        problems.extend(_shape_problems(err, where))
        model = None
    section = data.get("secrets")
    secrets: dict[str, Any] = section if isinstance(section, dict) else {}
    problems += _root_problems(secrets.get("file_roots"), SecretPolicy.build(repo_root, env), where)
    problems += _pin_problems(secrets.get("host_pins"), where)
    problems += _profile_problems(data.get("gateway_profile"), where)
    problems += _environment_problems(data, where)
    if problems or model is None:
        raise ProjectConfigError(problems)
    scope = model.scope or DEFAULT_SCOPE
    return ProjectConfig(
        path=path,
        file_roots=tuple(repo_root / r for r in model.secrets.file_roots),
        host_pins=MappingProxyType({k: tuple(p.lower() for p in v) for k, v in model.secrets.host_pins.items()}),
        gateway_profile=model.gateway_profile,
        scope=scope,
        manifest_dir=model.manifest_dir,
        environments=MappingProxyType({name: _environment(name, env, scope)
                                       for name, env in model.environments.items()}),
    )


def _environment(name: str, env: _Environment, scope: str) -> Environment:
    prefix = _ENV_PREFIX.sub("_", name.upper())
    return Environment(
        name=name, manifest_dir=env.manifest_dir or f"experiments.d/{name}", scope=env.scope or scope,
        database_url_env=env.database_url_env or f"{prefix}_DATABASE_URL",
        redis_url_env=env.redis_url_env or f"{prefix}_REDIS_URL",
        byok_key_env=env.byok_key_env or f"{prefix}_BYOK_ENCRYPTION_KEY",
    )


_ENV_PREFIX = re.compile(r"[^A-Z0-9]")
_ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
_SCOPE = re.compile(r"[a-z0-9][a-z0-9._/-]{0,99}")
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")


def _dir_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return None  # reported by the model
    if not value or PurePosixPath(value).is_absolute() or ".." in PurePosixPath(value).parts:
        return "manifest_dir must be a relative path inside the repository, without '..'"
    return None


def _environment_problems(data: Mapping[str, Any], where: _Where) -> list[Problem]:
    """Values the model's types cannot check: names, scopes, folders, and credential variables a
    manifest could read (they must be reserved names: <NAME>_DATABASE_URL, EXPCTL_..., see docs/security.md)."""
    problems = []
    scope, folder = data.get("scope"), _dir_problem(data.get("manifest_dir"))
    if isinstance(scope, str) and not _SCOPE.fullmatch(scope):
        problems.append(where.problem("E506", ("scope",), "a scope is 1-100 characters: a-z, 0-9, '.', '_', '/', '-'"))
    if folder:
        problems.append(where.problem("E506", ("manifest_dir",), folder))
    environments = data.get("environments")
    for name, env in (environments.items() if isinstance(environments, dict) else []):
        if not _ENV_NAME.fullmatch(name):
            problems.append(where.problem("E506", ("environments", name),
                                          f"environment name {name[:40]!r}: 1-40 characters, a-z, 0-9 and '-'"))
        if not isinstance(env, dict):
            continue
        problems += _environment_value_problems(name, env, where)
    return problems


def _environment_value_problems(name: str, env: Mapping[str, Any], where: _Where) -> list[Problem]:
    problems = []
    if isinstance(env.get("scope"), str) and not _SCOPE.fullmatch(env["scope"]):
        problems.append(where.problem("E506", ("environments", name, "scope"),
                                      "a scope is 1-100 characters: a-z, 0-9, '.', '_', '/', '-'"))
    folder = _dir_problem(env.get("manifest_dir"))
    if folder:
        problems.append(where.problem("E506", ("environments", name, "manifest_dir"), folder))
    for key in ("database_url_env", "redis_url_env", "byok_key_env"):
        value = env.get(key)
        if not isinstance(value, str):
            continue
        if not _VARIABLE.fullmatch(value):
            problems.append(where.problem("E506", ("environments", name, key),
                                          f"{value[:60]!r} is not an environment variable name"))
        elif not is_reserved_env(value):
            problems.append(where.problem(
                "E506", ("environments", name, key), f"{value} could be read by a manifest's from_env",
                "name it <NAME>_DATABASE_URL, <NAME>_REDIS_URL, <NAME>_BYOK_ENCRYPTION_KEY or EXPCTL_<...>: "
                "manifests can never read those"))
    return problems
