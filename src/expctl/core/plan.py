"""A plan is inert data: per experiment, ordered changes, and one canonical record (docs/design.md#plans).

Every renderer (text, markdown, json) reads `Plan.to_record()`; apply visits the same changes.
`plan_id` hashes the record's content except the Redis observations (`cache`), so two plans with
the same content share an id, and a saved plan is applied only when a fresh plan has its id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from expctl.core.errors import Location
from expctl.core.profiles import DEFAULT_PROFILE
from expctl.core.state import SecretRef, digest

FORMAT_VERSION = 1
CHECKED_AT_APPLY = "checked at apply"


class ChangeKind(StrEnum):
    CREATE_EXPERIMENT = "create_experiment"
    UPDATE_FIELD = "update_field"
    TRANSITION = "transition"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    ADD_VARIANT = "add_variant"
    REMOVE_VARIANT = "remove_variant"
    RENAME_VARIANT = "rename_variant"
    REWEIGHT_VARIANT = "reweight_variant"
    HOT_SWAP = "hot_swap"
    ROTATE_KEY = "rotate_key"
    DELETE_EXPERIMENT = "delete_experiment"
    RELEASE = "release"
    # Beyond the original list: an imported manifest's `adopt` binds an existing row
    # (docs/design.md#ownership-and-identity).
    ADOPT_EXPERIMENT = "adopt_experiment"


IRREVERSIBLE_TRANSITIONS = frozenset({"completed"})


def location_record(location: Location | None) -> dict[str, Any] | None:
    return None if location is None else {"path": location.path, "line": location.line, "col": location.col}


@dataclass(frozen=True)
class NewVersion:
    """What apply writes as a variant's new version row: the upstream and where its key comes from
    (a reference; apply resolves and encrypts it). Not part of the record: only apply reads it."""

    upstream: Mapping[str, Any]
    secret: SecretRef


@dataclass(frozen=True)
class Drift:
    """The database value a change would overwrite was set outside expctl since its last apply
    (docs/design.md#drift): when and by whom where the gateway's tables say, and whether this plan
    holds it (keeps the database value) instead of reverting it."""

    at: str | None
    by: str | None
    held: bool

    def to_record(self) -> dict[str, Any]:
        return {"at": self.at, "by": self.by, "held": self.held}


@dataclass(frozen=True)
class Change:
    """One change; `row_id` (the variant's row) and `version` are what apply executes, beside what
    the record shows."""

    kind: ChangeKind
    field: str | None = None
    variant: str | None = None
    before: Any = None
    after: Any = None
    allowed: bool = True
    reason: str | None = None
    location: Location | None = None
    routing: bool = False
    shares_after: dict[str, float] | None = None
    row_id: str | None = None
    version: NewVersion | None = None
    drift: Drift | None = None

    @property
    def held(self) -> bool:
        """Not applied: drift this plan keeps (`--drift=hold`)."""
        return self.drift is not None and self.drift.held

    @property
    def irreversible(self) -> bool:
        if self.kind in (ChangeKind.DELETE_EXPERIMENT, ChangeKind.ARCHIVE):
            return True
        return self.kind is ChangeKind.TRANSITION and self.after in IRREVERSIBLE_TRANSITIONS

    @property
    def traffic_shift(self) -> bool:
        return self.routing and self.kind in (
            ChangeKind.TRANSITION, ChangeKind.HOT_SWAP, ChangeKind.REWEIGHT_VARIANT,
            ChangeKind.ADD_VARIANT, ChangeKind.REMOVE_VARIANT,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "field": self.field,
            "variant": self.variant,
            "before": self.before,
            "after": self.after,
            "allowed": self.allowed,
            "reason": self.reason,
            "location": location_record(self.location),
            "routing": self.routing,
            "irreversible": self.irreversible,
            "shares_after": self.shares_after,
            "drift": None if self.drift is None else self.drift.to_record(),
        }


class AttentionKind(StrEnum):
    """What a reviewer must look at besides the changes themselves (docs/security.md)."""

    SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105 - a kind name, not a secret
    KEY_SENT_TO_NEW_HOST = "key_sent_to_new_host"
    STORED_KEY_UNREADABLE = "stored_key_unreadable"


# The summary key counting each kind of attention item.
ATTENTION_SUMMARY_KEYS = {
    AttentionKind.SECRET_UNAVAILABLE: "unavailable_secrets",
    AttentionKind.KEY_SENT_TO_NEW_HOST: "key_host_changes",
    AttentionKind.STORED_KEY_UNREADABLE: "unreadable_stored_keys",
}


@dataclass(frozen=True)
class Attention:
    """One located finding about an api key: where it is sent, whether it could be read.

    `blocking` is true when apply cannot succeed as things stand (a secret apply needs is missing
    where the BYOK key is present, i.e. in an environment meant to apply).
    """

    kind: AttentionKind
    experiment: str
    variant: str
    secret: str
    message: str
    location: Location | None = None
    blocking: bool = False

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "experiment": self.experiment,
            "variant": self.variant,
            "secret": self.secret,
            "message": self.message,
            "blocking": self.blocking,
            "location": location_record(self.location),
        }


@dataclass(frozen=True)
class ExperimentPlan:
    """One experiment's changes; `status_before` (the row's status when planned) is the status
    apply's conditional updates expect."""

    name: str
    public_model_id: str
    experiment_id: str | None
    changes: tuple[Change, ...]
    shares_before: dict[str, float] = field(default_factory=dict)
    shares_after: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    status_before: str | None = None
    # What expctl records as applied for this experiment (docs/design.md#drift) when it differs from
    # what it recorded before; None: nothing to record. Derived from the manifests and the state.
    applied: Mapping[str, Any] | None = None

    @property
    def applied_changes(self) -> tuple[Change, ...]:
        """The changes apply executes: all but held drift."""
        return tuple(c for c in self.changes if not c.held)

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_model_id": self.public_model_id,
            "experiment_id": self.experiment_id,
            "changes": [c.to_record() for c in self.changes],
            "shares_before": self.shares_before,
            "shares_after": self.shares_after,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class UnmanagedExperiment:
    """A row this run does not manage: created outside expctl, or bound by another scope (`scope`)."""

    id: str
    name: str
    public_model_id: str
    status: str
    scope: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "public_model_id": self.public_model_id, "status": self.status,
                "scope": self.scope}


DEFAULT_SCOPE = "default"
DRIFT_MODES = ("hold", "revert")


@dataclass(frozen=True)
class Plan:
    experiments: tuple[ExperimentPlan, ...]
    unmanaged: tuple[UnmanagedExperiment, ...]
    state_fingerprint: str
    manifests_digest: str
    membership_before: tuple[str, ...] | None
    membership_after: tuple[str, ...]
    membership_db: tuple[str, ...] = ()
    membership_corrupt: bool = False
    membership_read: bool = False
    prune: bool = False
    attention: tuple[Attention, ...] = ()
    # The gateway profile the plan was made for: part of `plan_id` (a saved plan applies under it only).
    gateway_profile: str = DEFAULT_PROFILE
    # Which environment of expctl.toml (None: none configured), which scope owns the bindings, which
    # manifest names were targeted (`--only`; None: all), and what happens to drift: all in `plan_id`.
    environment: str | None = None
    scope: str = DEFAULT_SCOPE
    target: tuple[str, ...] | None = None
    drift_mode: str = "hold"

    def changes(self) -> list[tuple[ExperimentPlan, Change]]:
        return [(e, c) for e in self.experiments for c in e.changes]

    @property
    def refused(self) -> list[tuple[ExperimentPlan, Change]]:
        return [(e, c) for e, c in self.changes() if not c.allowed and not c.held]

    @property
    def has_changes(self) -> bool:
        """Whether apply changes a gateway row (held drift is not applied)."""
        return any(e.applied_changes for e in self.experiments)

    @property
    def drift(self) -> list[tuple[ExperimentPlan, Change]]:
        return [(e, c) for e, c in self.changes() if c.drift is not None]

    @property
    def records_applied(self) -> bool:
        """Whether apply writes expctl's record of what it applied (even with no gateway change)."""
        return any(e.applied is not None for e in self.experiments)

    @property
    def routing_public_ids(self) -> set[str]:
        return {e.public_model_id for e, c in self.changes() if c.routing and not c.held}

    def summary(self) -> dict[str, int]:
        """Counts per change kind, `total`, `refused` and `irreversible` (a fresh dict per call,
        counted once per plan: a plan creating 10,000 experiments has 35,000 changes)."""
        return dict(self._summary)

    @cached_property
    def _summary(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        refused = irreversible = drift = held = 0
        for experiment in self.experiments:
            for c in experiment.changes:
                counts[c.kind.value] += 1
                refused += not c.allowed and not c.held
                irreversible += c.irreversible
                if c.drift is not None:
                    drift += 1
                    held += c.drift.held
        record = {kind.value: counts.get(kind.value, 0) for kind in ChangeKind}
        record["total"] = sum(counts.values())
        record["refused"] = refused
        record["irreversible"] = irreversible
        record["drift"] = drift
        record["held"] = held
        found = Counter(item.kind for item in self.attention)
        for kind, key in ATTENTION_SUMMARY_KEYS.items():
            record[key] = found.get(kind, 0)
        return record

    @property
    def cache_drift(self) -> bool:
        """What Redis holds now differs from what PostgreSQL says now (missing, corrupt or not
        exactly the sorted list): reconcile will rewrite it even when no row changes."""
        return self.membership_read and (self.membership_corrupt or self.membership_before != self.membership_db)

    def to_record(self) -> dict[str, Any]:
        """The canonical record of the plan (what every renderer reads), with its content hash.

        Built once per plan and then reused (a fresh top-level dict each call): hashing a plan of
        10,000 experiments costs seconds, and plan, apply and the audit row all need the id.
        The nested values are shared between calls; callers read them, never change them.
        """
        return dict(self._record)

    # cached_property writes the instance's __dict__ directly, so it caches on a frozen dataclass
    # without being a field (equality and `replace()` ignore it).
    @cached_property
    def _record(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "gateway_profile": self.gateway_profile,
            "environment": self.environment,
            "scope": self.scope,
            "target": None if self.target is None else list(self.target),
            "state_fingerprint": self.state_fingerprint,
            "manifests_digest": self.manifests_digest,
            "options": {"prune": self.prune, "drift": self.drift_mode},
            "summary": self.summary(),
            "experiments": [e.to_record() for e in self.experiments],
            "unmanaged": [u.to_record() for u in self.unmanaged],
            "attention": [a.to_record() for a in self.attention],
        }
        cache = {
            "membership_before": None if self.membership_before is None else list(self.membership_before),
            "membership_after": list(self.membership_after),
            "drift": self.cache_drift,
        }
        return {"format_version": FORMAT_VERSION, "plan_id": plan_digest(body), **body, "cache": cache}

    @property
    def plan_id(self) -> str:
        return str(self.to_record()["plan_id"])


def plan_digest(record: Mapping[str, Any]) -> str:
    """The plan id of a record: everything but the id itself and the Redis observations, which
    a plan job may not see and which any reconcile rewrites anyway. A saved plan's own content
    must hash to its id (an edited file is refused), and the fresh plan at apply must share it."""
    return digest({k: v for k, v in record.items() if k not in ("plan_id", "cache")})
