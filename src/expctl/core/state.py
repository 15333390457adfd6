"""Desired and actual state records (frozen dataclasses) and their fingerprints.

Desired state comes from the manifests, actual state from PostgreSQL (+ the Redis membership key).
Both are inert data; the planner compares them. JSON-like fields (upstream, encrypted key) are kept
as plain mappings and compared by their canonical JSON text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from expctl.core.errors import Location

Status = Literal["draft", "active", "paused", "completed"]

SecretKind = Literal["env", "file"]


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable name or a file path. Safe to print."""

    kind: SecretKind
    name: str

    def __post_init__(self) -> None:
        if self.kind not in ("env", "file"):
            raise ValueError(f"secret reference kind must be 'env' or 'file', got {self.kind!r}")
        if not self.name:
            raise ValueError(f"{self.kind} secret reference needs a non-empty name")

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"

ROUTED_STATUSES: frozenset[str] = frozenset({"active", "paused"})


def canonical_json(value: Any) -> str:
    """A stable JSON text for hashing and equality of JSON-like values."""
    return canonical_json_bytes(value).decode("utf-8")


def canonical_json_bytes(value: Any) -> bytes:
    """`canonical_json` as UTF-8 bytes. orjson writes the same text as the standard library's
    compact, sorted, non-ASCII-escaping form, about four times faster (a 10,000-experiment plan is
    hashed three times); integers beyond 64 bits, which it refuses, take the standard library."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class _Undecided(Exception):
    """A value that is not plain JSON data (or dicts whose keys differ): only the canonical texts can tell."""


_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain_equal(a: Any, b: Any) -> bool:
    """Walks both values side by side; a difference between plain values at the same place means
    different JSON texts, agreement everywhere means equal texts."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        kind = type(x)
        if kind is not type(y):
            if kind in _PLAIN_SCALARS and type(y) in _PLAIN_SCALARS:
                return False  # e.g. 1 vs true vs 1.0 vs "1": different JSON texts
            raise _Undecided
        if kind is dict:
            if len(x) != len(y):
                raise _Undecided
            for key, value in x.items():
                if type(key) is not str or key not in y:
                    raise _Undecided
                stack.append((value, y[key]))
        elif kind is list:
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif kind is float:
            if repr(x) != repr(y):  # what json writes: -0.0 and 0.0 differ, nan equals nan
                return False
        elif kind in _PLAIN_SCALARS:
            if x != y:
                return False
        else:
            raise _Undecided
    return True


def same_json(a: Any, b: Any) -> bool:
    """`canonical_json(a) == canonical_json(b)`, decided without building the two texts when both
    values are plain JSON data (dicts with str keys, lists, str, int, float, bool, None), as
    upstreams read from PostgreSQL and from manifests are; anything else compares the texts."""
    try:
        return _plain_equal(a, b)
    except _Undecided:
        return canonical_json(a) == canonical_json(b)


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json_bytes(value)).hexdigest()


@dataclass(frozen=True)
class DesiredVariant:
    label: str
    weight: int
    upstream: Mapping[str, Any]
    api_key: SecretRef
    renamed_from: str | None
    location: Location
    field_locations: Mapping[str, Location] = field(default_factory=dict, compare=False)

    def loc(self, name: str) -> Location:
        return self.field_locations.get(name, self.location)


@dataclass(frozen=True)
class DesiredExperiment:
    name: str
    public_model_id: str
    display_name: str
    description: str | None
    status: Status
    archived: bool
    variants: tuple[DesiredVariant, ...]
    location: Location
    field_locations: Mapping[str, Location] = field(default_factory=dict, compare=False)
    # `model_experiment.metadata` as the manifest gives it (gateway profile 2026-11); None = NULL.
    metadata: Mapping[str, Any] | None = None
    # `adopt: <experiment id>` (written by `expctl import`): bind that existing row instead of creating one.
    adopt: str | None = None

    def loc(self, name: str) -> Location:
        return self.field_locations.get(name, self.location)

    def to_record(self) -> dict[str, Any]:
        """Everything the manifest says (secret references, never values), for the manifests digest."""
        return {
            "name": self.name,
            "public_model_id": self.public_model_id,
            "display_name": self.display_name,
            "description": self.description,
            "status": self.status,
            "archived": self.archived,
            "metadata": None if self.metadata is None else dict(self.metadata),
            "variants": [
                {
                    "label": v.label,
                    "weight": v.weight,
                    "upstream": dict(v.upstream),
                    "api_key": v.api_key.describe(),
                    "renamed_from": v.renamed_from,
                }
                for v in self.variants
            ],
            **({"adopt": self.adopt} if self.adopt is not None else {}),
        }


@dataclass(frozen=True)
class ActualVersion:
    id: str
    upstream: Mapping[str, Any]
    encrypted_api_key: Mapping[str, Any]
    effective_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class ActualVariant:
    id: str
    label: str
    weight: int
    current_version: ActualVersion | None


@dataclass(frozen=True)
class ActualExperiment:
    id: str
    public_model_id: str
    name: str
    description: str | None
    status: Status
    is_archived: bool
    variants: tuple[ActualVariant, ...]
    managed_name: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: Mapping[str, Any] | None = None
    # What expctl recorded as applied (docs/design.md#drift); None: nothing recorded yet.
    applied: Mapping[str, Any] | None = None
    # The scope of a binding that belongs to another project or environment (then managed_name is None).
    owner_scope: str | None = None

    @property
    def routed(self) -> bool:
        return self.status in ROUTED_STATUSES

    def fingerprint_record(self) -> dict[str, Any]:
        """What a saved plan depends on: every field expctl compares or guards on. The `applied`
        record is left out: what it decides (which changes are drift) is in the changes, which
        `plan_id` covers."""
        return {
            "id": self.id,
            "public_model_id": self.public_model_id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "is_archived": self.is_archived,
            "metadata": None if self.metadata is None else dict(self.metadata),
            "managed_name": self.managed_name,
            "owner_scope": self.owner_scope,
            "variants": [
                {
                    "id": v.id,
                    "label": v.label,
                    "weight": v.weight,
                    "version": v.current_version.id if v.current_version else None,
                }
                for v in sorted(self.variants, key=lambda v: v.id)
            ],
        }


@dataclass(frozen=True)
class ActualState:
    experiments: tuple[ActualExperiment, ...]
    membership: tuple[str, ...] | None = None
    membership_raw_ok: bool = True
    membership_read: bool = False  # False: no Redis was consulted, so "before" is unknown, not missing

    def by_managed_name(self) -> dict[str, ActualExperiment]:
        return {e.managed_name: e for e in self.experiments if e.managed_name is not None}

    def routed_membership(self) -> tuple[str, ...]:
        return membership_order({e.public_model_id for e in self.experiments if e.routed})


def membership_order(public_ids: Iterable[str]) -> tuple[str, ...]:
    """Sorted as the gateway's JavaScript `Array.prototype.sort()` sorts: by UTF-16 code unit
    (differs from code point order only beyond U+FFFF, e.g. emoji)."""
    return tuple(sorted(set(public_ids), key=lambda s: s.encode("utf-16-be", "surrogatepass")))


def state_fingerprint(experiments: list[ActualExperiment]) -> str:
    return digest(sorted((e.fingerprint_record() for e in experiments), key=lambda r: str(r["id"])))


KeyCheck = Literal["same", "changed", "unknown", "unreadable"]


@dataclass(frozen=True)
class KeyComparison:
    """Outcome of comparing a desired secret with a variant's current stored key.

    Computed at the edge (decryption needs the BYOK key); the planner only reads it.
    `desired_fingerprint` is None when the secret is not available here. `unreadable`: the stored
    key cannot be decrypted (malformed, or written with another BYOK key); a new version repairs it.
    """

    result: KeyCheck
    desired_fingerprint: str | None
    current_fingerprint: str | None = None
