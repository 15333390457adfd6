"""Where a manifest's secret references may point: the one place that policy is written down.

A manifest is reviewed, merged and then applied by a job that holds powerful credentials (the BYOK
key, the database URL, CI and cloud tokens). Whatever an `api_key` reference resolves to is
encrypted, stored and sent to the variant's `base_url`, so a reference must never reach those
credentials. This module says which ones it may reach:

- `from_env` may not name a reserved variable (`is_reserved_env`, matched case-insensitively);
- `from_file` may name a path relative to the repository root (without `..`) or an absolute path
  below an allowed root (`/run/secrets`, `/var/run/secrets`, plus `[secrets] file_roots` of
  `expctl.toml`), and never a path inside a forbidden place (`/proc`, `/sys`, `/dev`, `.expctl/`,
  the files expctl's own and the platform's credentials come from).

`SecretPolicy` is plain data, so it travels to forked loader processes as it is. Its lexical checks
(`reference_problem`, `root_problem`) do no I/O; `real_places` resolves symlinks, for the resolver's
check of the real path at read time. Nothing here does I/O at import. README "Secrets" and
docs/security.md describe the policy for users.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import pwd
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from functools import lru_cache
from pathlib import Path

from expctl.core.codes import hint

__all__ = [
    "DEFAULT_FILE_ROOTS", "RESERVED_ENV_EXCEPTIONS", "RESERVED_ENV_PATTERNS", "STATE_DIR_NAME", "Place",
    "SecretPolicy", "is_reserved_env", "read_problem",
]

# --- from_env -------------------------------------------------------------------------------------

# Variables a manifest may never read (shell-style patterns, upper case; names are upper-cased before
# matching, as Windows and some CI systems treat them case-insensitively). Each group says why.
RESERVED_ENV_PATTERNS: tuple[str, ...] = (
    # expctl's own settings and credentials, present and future (EXPCTL_PLAN_DATABASE_URL, ...).
    "EXPCTL_*", "BYOK_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL", "TEST_*_URL",
    # An environment's credentials (expctl.toml: STAGING_DATABASE_URL, ...): configuration names only these.
    "*_DATABASE_URL", "*_REDIS_URL", "*_BYOK_ENCRYPTION_KEY",
    # PostgreSQL and Redis client credentials, which libpq and redis-cli pick up on their own.
    "PGPASSWORD", "PGPASSFILE", "PGSSLKEY", "PGSERVICEFILE", "REDISCLI_AUTH",
    # CI systems' job tokens: they can push code, publish packages or mint cloud credentials.
    "GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", "ACTIONS_*", "RUNNER_*",
    "CI_JOB_TOKEN", "CI_JOB_JWT*", "CI_BUILD_TOKEN", "CI_REGISTRY_PASSWORD", "CI_DEPLOY_PASSWORD",
    "BUILDKITE_AGENT_ACCESS_TOKEN", "CIRCLE_TOKEN", "CIRCLE_OIDC_TOKEN*", "SYSTEM_ACCESSTOKEN",
    "BITBUCKET_STEP_OIDC_TOKEN", "DOCKER_AUTH_CONFIG",
    # Cloud and platform credentials, and the variables naming their files (the file is the secret).
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN*", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_GHA_CREDS_PATH",
    "CLOUDSDK_AUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE",
    "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "ARM_CLIENT_SECRET",
    "ARM_OIDC_TOKEN", "VAULT_TOKEN", "KUBECONFIG",
)
# `expctl import` writes `{from_env: EXPCTL_KEY_<NAME>_<LABEL>}` placeholders: that namespace holds
# api keys only, and expctl never reads a setting of its own from it.
RESERVED_ENV_EXCEPTIONS: tuple[str, ...] = ("EXPCTL_KEY_*",)

_RESERVED = re.compile("|".join(translate(p) for p in RESERVED_ENV_PATTERNS))
_EXCEPTED = re.compile("|".join(translate(p) for p in RESERVED_ENV_EXCEPTIONS))


@lru_cache(maxsize=4096)  # thousands of variants share a few variable names
def is_reserved_env(name: str) -> bool:
    """Whether a manifest may not read variable `name` (case-insensitive)."""
    upper = name.upper()
    return _RESERVED.match(upper) is not None and _EXCEPTED.match(upper) is None


# --- from_file ------------------------------------------------------------------------------------

# Where orchestrators mount secrets: Docker and Compose use /run/secrets, Kubernetes /var/run/secrets.
DEFAULT_FILE_ROOTS: tuple[Path, ...] = (Path("/run/secrets"), Path("/var/run/secrets"))
# expctl's state folder below the repository root: the embedded instance and the local BYOK key.
STATE_DIR_NAME = ".expctl"
# Kernel views: /proc/self/environ is the whole environment, /dev/stdin a pipe, /sys device state.
_SYSTEM_PLACES = ("/proc", "/sys", "/dev")
# The platform's own identity tokens, mounted inside the default roots (a pod's service-account
# token, EKS and Azure workload identity): they authenticate the job, they are no partner's key.
_PLATFORM_TOKEN_DIRS = tuple(f"{root}/{name}" for root in ("/run/secrets", "/var/run/secrets")
                             for name in ("kubernetes.io", "eks.amazonaws.com", "azure"))
# Variables naming credential files (KUBECONFIG is a list); their files are never read as api keys.
_CREDENTIAL_FILE_VARS = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AZURE_FEDERATED_TOKEN_FILE",
                         "GOOGLE_APPLICATION_CREDENTIALS", "KUBECONFIG", "PGSERVICEFILE")
# Credential folders in a home directory, out of reach even under a root configured around them.
_HOME_CREDENTIALS = (".aws", ".azure", ".config/gcloud", ".docker", ".kube", ".ssh", ".netrc", ".git-credentials")


@dataclass(frozen=True)
class Place:
    """A forbidden path and what it is (shown in messages). A configured root that contains a
    `guarded` place is a configuration error; other places are only carved out of the roots."""

    path: str  # absolute, normalised
    label: str
    guarded: bool = True


def _absolute(path: str, base: str) -> str:
    """`path` made absolute against `base` and normalised lexically (`//x` counts as `/x`)."""
    joined = path if path.startswith("/") else posixpath.join(base, path)
    return posixpath.normpath("/" + joined.lstrip("/"))


def _below(path: str, place: str, *, fold: bool = False) -> bool:
    """Whether `path` is `place` or inside it (both absolute and normalised)."""
    if fold:  # forbidden places compare case-insensitively: case-insensitive file systems exist
        path, place = path.casefold(), place.casefold()
    return path == place or path.startswith(place.rstrip("/") + "/")


def _homes(env: Mapping[str, str]) -> list[str]:
    """Home directories libpq and the cloud CLIs may read from: $HOME and the account's own."""
    homes = [env["HOME"]] if env.get("HOME", "").startswith("/") else []
    with contextlib.suppress(KeyError):  # a uid without an account (some containers)
        homes.append(pwd.getpwuid(os.getuid()).pw_dir)
    return list(dict.fromkeys(homes))


def _forbidden_places(repo_root: str, env: Mapping[str, str]) -> tuple[Place, ...]:
    places = [Place(p, p) for p in _SYSTEM_PLACES]
    places.append(Place(_absolute(STATE_DIR_NAME, repo_root), f"{STATE_DIR_NAME}/ (expctl's state and local BYOK key)"))
    if env.get("PGPASSFILE"):
        places.append(Place(_absolute(env["PGPASSFILE"], repo_root), "PGPASSFILE (PostgreSQL passwords)"))
    for home in _homes(env):
        places.append(Place(_absolute(".pgpass", home), "~/.pgpass (PostgreSQL passwords)"))
        places.extend(Place(_absolute(name, home), f"~/{name} (credentials)", guarded=False)
                      for name in _HOME_CREDENTIALS)
    places.extend(Place(p, "a platform identity token folder", guarded=False) for p in _PLATFORM_TOKEN_DIRS)
    for var in _CREDENTIAL_FILE_VARS:
        value = env.get(var, "")
        for item in filter(None, value.split(os.pathsep) if var == "KUBECONFIG" else [value]):
            places.append(Place(_absolute(item, repo_root), f"{var} (credentials)", guarded=False))
    return tuple(places)


@dataclass(frozen=True)
class SecretPolicy:
    """Where `from_file` references may point, for one repository and environment."""

    repo_root: Path  # absolute; relative references and `.expctl/` are below it
    file_roots: tuple[Path, ...] = DEFAULT_FILE_ROOTS  # absolute
    forbidden: tuple[Place, ...] = ()
    # Derived once (thousands of references are checked per run): forbidden places case-folded,
    # and each place and root with a trailing slash, for plain prefix tests.
    _folded: tuple[tuple[str, str, Place], ...] = field(init=False, repr=False, compare=False)
    _roots: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded = tuple((p.path.casefold(), p.path.casefold().rstrip("/") + "/", p) for p in self.forbidden)
        object.__setattr__(self, "_folded", folded)
        object.__setattr__(self, "_roots", tuple(str(r).rstrip("/") + "/" for r in self.file_roots))

    @classmethod
    def build(cls, repo_root: Path, env: Mapping[str, str], extra_roots: Iterable[Path] = ()) -> SecretPolicy:
        """The default roots plus `extra_roots` (absolute, e.g. from `expctl.toml`), and the places
        forbidden in this environment (`PGPASSFILE`, `$HOME`, credential-file variables)."""
        root = _absolute(os.path.abspath(repo_root), "/")
        extra = tuple(Path(_absolute(str(r), root)) for r in extra_roots)
        return cls(Path(root), tuple(dict.fromkeys(DEFAULT_FILE_ROOTS + extra)), _forbidden_places(root, env))

    @classmethod
    def default(cls) -> SecretPolicy:
        """The built-in policy for the working directory and this process's environment."""
        return cls.build(Path.cwd(), os.environ)

    def roots_text(self) -> str:
        return ", ".join(str(r) for r in self.file_roots)

    def _forbidden_at(self, path: str) -> Place | None:
        folded = path.casefold()
        return next((p for exact, prefix, p in self._folded if folded == exact or folded.startswith(prefix)), None)

    def reference_problem(self, reference: str) -> tuple[str, str] | None:
        """Why a `from_file` path may not be used, as the message and hint of an E306; None when it
        may. Lexical (no I/O): symlinks are checked when the file is read. `..` is the caller's E305."""
        path = _absolute(reference, str(self.repo_root))
        place = self._forbidden_at(path)
        if place is not None:
            return f"from_file points into {place.label}, where expctl never reads secrets", hint("E306")
        if reference.startswith("/") and not path.startswith(self._roots):  # strictly below a root
            return (f"from_file is an absolute path outside the allowed secret folders ({self.roots_text()})",
                    "put the file below one of them, use a path relative to the repository root, or add "
                    "its folder to [secrets] file_roots in expctl.toml")
        return None

    def root_problem(self, root: str) -> str | None:
        """Why a configured root (absolute, or relative to the repository root) may not be one."""
        path = _absolute(root, str(self.repo_root))
        for place in self.forbidden:
            if _below(path, place.path, fold=True):
                return f"{root} is inside {place.label}, where expctl never reads secrets"
            if place.guarded and _below(place.path, path, fold=True):
                return f"{root} contains {place.label}, where expctl never reads secrets"
        return None

    def real_places(self) -> tuple[tuple[str, ...], tuple[Place, ...]]:
        """The allowed folders (the repository and the roots) and the forbidden places as real paths
        (symlinks resolved, so `/var/run -> /run` compares equal), the forbidden ones also as
        written. Does I/O: for the resolver, once per run."""
        allowed = tuple(dict.fromkeys(os.path.realpath(p) for p in (self.repo_root, *self.file_roots)))
        real = [Place(os.path.realpath(p.path), p.label, p.guarded) for p in self.forbidden]
        return allowed, tuple(dict.fromkeys((*self.forbidden, *real)))


def read_problem(real: str, allowed: Iterable[str], forbidden: Iterable[Place]) -> str | None:
    """Why the file at real path `real` may not be read as a secret; None when it may."""
    place = next((p for p in forbidden if _below(real, p.path, fold=True)), None)
    if place is not None:
        return f"resolves into {place.label}, where expctl never reads secrets"
    if not any(_below(real, root) for root in allowed):
        return "resolves outside the repository and the allowed secret folders"
    return None
