"""A plan is inert data: per experiment, ordered changes, and one canonical record (DESIGN §5).

Every renderer (text, markdown, json) reads `Plan.to_record()`; apply visits the same changes.
`plan_id` hashes the record's content, so two plans with the same content share an id.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from expctl.errors import Location
from expctl.state import digest

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


IRREVERSIBLE_TRANSITIONS = frozenset({"completed"})


@dataclass(frozen=True)
class Change:
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
            "location": None if self.location is None else {
                "path": self.location.path, "line": self.location.line, "col": self.location.col},
            "routing": self.routing,
            "irreversible": self.irreversible,
            "shares_after": self.shares_after,
        }


@dataclass(frozen=True)
class ExperimentPlan:
    name: str
    public_model_id: str
    experiment_id: str | None
    changes: tuple[Change, ...]
    shares_before: dict[str, float] = field(default_factory=dict)
    shares_after: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

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
    id: str
    name: str
    public_model_id: str
    status: str

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "public_model_id": self.public_model_id, "status": self.status}


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

    def changes(self) -> list[tuple[ExperimentPlan, Change]]:
        return [(e, c) for e in self.experiments for c in e.changes]

    @property
    def refused(self) -> list[tuple[ExperimentPlan, Change]]:
        return [(e, c) for e, c in self.changes() if not c.allowed]

    @property
    def has_changes(self) -> bool:
        return any(e.changes for e in self.experiments)

    @property
    def routing_public_ids(self) -> set[str]:
        return {e.public_model_id for e, c in self.changes() if c.routing}

    def summary(self) -> dict[str, int]:
        """Counts per change kind, `total`, `refused` and `irreversible` (a fresh dict per call,
        counted once per plan: a plan creating 10,000 experiments has 35,000 changes)."""
        return dict(self._summary)

    @cached_property
    def _summary(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        refused = irreversible = 0
        for experiment in self.experiments:
            for c in experiment.changes:
                counts[c.kind.value] += 1
                refused += not c.allowed
                irreversible += c.irreversible
        record = {kind.value: counts.get(kind.value, 0) for kind in ChangeKind}
        record["total"] = sum(counts.values())
        record["refused"] = refused
        record["irreversible"] = irreversible
        return record

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
            "state_fingerprint": self.state_fingerprint,
            "manifests_digest": self.manifests_digest,
            "options": {"prune": self.prune},
            "summary": self.summary(),
            "experiments": [e.to_record() for e in self.experiments],
            "unmanaged": [u.to_record() for u in self.unmanaged],
            "cache": {
                "membership_before": None if self.membership_before is None else list(self.membership_before),
                "membership_after": list(self.membership_after),
                # Drift: what Redis holds now differs from what PostgreSQL says now.
                # Missing, corrupt or not exactly the sorted list is drift (DESIGN §4).
                "drift": self.membership_read and (
                    self.membership_corrupt or self.membership_before != self.membership_db),
            },
        }
        return {"format_version": FORMAT_VERSION, "plan_id": digest(body), **body}

    @property
    def plan_id(self) -> str:
        return str(self.to_record()["plan_id"])
