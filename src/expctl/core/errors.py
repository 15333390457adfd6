"""Located problems and typed errors.

Every error a user can cause carries its exit code (docs/design.md#exit-codes); the CLI is the one place that turns
them into process exit codes. Messages never contain secret values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple


class ExitCode(IntEnum):
    """Process exit codes (docs/design.md#exit-codes)."""

    OK = 0
    ERROR = 1
    CHANGES = 2
    CACHE_FAILED = 3
    STALE_PLAN = 4
    LOCKED = 5


class Location(NamedTuple):
    """A 1-based position in a manifest file.

    A named tuple rather than a frozen dataclass: one is built for every key and value of every
    manifest (hundreds of thousands at 10,000 experiments), and tuples are several times cheaper.
    """

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the manifests, with a stable code and a hint saying what to do."""

    code: str
    location: Location
    message: str
    hint: str = ""

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.location.path, self.location.line, self.location.col, self.code, self.message)

    def to_record(self) -> dict[str, object]:
        return {
            "code": self.code,
            "path": self.location.path,
            "line": self.location.line,
            "col": self.location.col,
            "message": self.message,
            "hint": self.hint,
        }


class ExpctlError(Exception):
    """Base of every error expctl reports to a user; `exit_code` says how the process ends."""

    exit_code: ExitCode = ExitCode.ERROR


class ConfigError(ExpctlError):
    """Missing or malformed configuration (URLs, BYOK key, flags)."""


class SecretError(ExpctlError):
    """A secret reference could not be resolved; the message names the reference, never a value."""


class ManifestError(ExpctlError):
    """The manifests have problems; `problems` lists all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the manifests")
        self.problems = sorted(problems, key=Problem.sort_key)


class RefusedError(ExpctlError):
    """The plan holds refused changes, so nothing is applied."""


class ConnectionFailed(ExpctlError):
    """PostgreSQL or Redis could not be reached."""


class ConflictError(ExpctlError):
    """A row changed underneath a running apply, or a constraint refused a write."""


class PlanFileError(ExpctlError):
    """A file given to `apply` is not a usable saved plan (not JSON, wrong shape, edited, too big)."""


class StalePlanError(ExpctlError):
    """A saved plan no longer matches the database or the manifests."""

    exit_code = ExitCode.STALE_PLAN


class LockTimeout(ExpctlError):
    """Another run holds the apply lock and the wait timed out."""

    exit_code = ExitCode.LOCKED


class TrafficUnavailable(ExpctlError):
    """The observed-traffic tables are missing (a 2026-05 gateway, a fresh database)."""


class CacheRefreshFailed(ExpctlError):
    """PostgreSQL is committed but the Redis refresh failed; a re-run heals."""

    exit_code = ExitCode.CACHE_FAILED
