"""The gateway's observed-traffic tables and a realistic, deterministic traffic scenario.

`create_traffic_tables` is the DDL of docs/design.md#observed-traffic as the gateway has it
(expctl never creates these tables): `model_experiment_request` partitioned by created_at (a
default partition here), its primary key (usage_id, created_at) and the (variant_version_id,
created_at) index, and `microdollar_usage`. `seed_scenario` writes experiments and their request
and usage rows with planted conditions (module constants name them), every id and time fixed,
users bucketed by the gateway's own pick (`expctl.core.bucketing`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, text

from expctl.adapters.store.tables import (
    expctl_binding,
    model_experiment,
    model_experiment_variant,
    model_experiment_variant_version,
)
from expctl.core.bucketing import Subject, WeightedVariant, pick_variant

TRAFFIC_DDL = """
CREATE TABLE microdollar_usage (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kilo_user_id text,
    cost bigint NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    cache_hit_tokens bigint NOT NULL DEFAULT 0,
    has_error boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE model_experiment_request (
    usage_id uuid NOT NULL REFERENCES microdollar_usage(id),
    variant_version_id uuid NOT NULL REFERENCES model_experiment_variant_version(id),
    allocation_subject text NOT NULL CHECK (allocation_subject IN ('user', 'machine', 'ip')),
    client_request_id text,
    request_kind text NOT NULL CHECK (request_kind IN ('chat_completions', 'messages', 'responses')),
    request_body_sha256 text NOT NULL,
    was_truncated boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (usage_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE model_experiment_request_default PARTITION OF model_experiment_request DEFAULT;
CREATE INDEX "IDX_model_experiment_request_variant_version_created"
    ON model_experiment_request (variant_version_id, created_at);
"""

UNTIL = datetime(2026, 11, 10, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=1)
LONG_AGO = datetime(2026, 11, 1, tzinfo=UTC)
SWAP_AT = datetime(2026, 11, 9, 12, tzinfo=UTC)
PAUSED_AT = datetime(2026, 11, 9, 6, tzinfo=UTC)
ENDED_AT = datetime(2026, 11, 8, tzinfo=UTC)
STALE_REQUESTS = 20  # requests to hot-swapped's old treatment version after SWAP_AT
LATE_REQUESTS = 5  # requests to legacy (completed at ENDED_AT) inside the window
KINDS = ("chat_completions", "messages", "responses")


def create_traffic_tables(conn: Connection) -> None:
    for statement in TRAFFIC_DDL.split(";"):
        if statement.strip():
            conn.execute(text(statement))


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "expctl-status-test:" + ":".join(parts)))


@dataclass
class Seeded:
    """Ids of what was seeded: experiment name -> id, (name, label) -> [version ids, oldest first]."""

    experiments: dict[str, str] = field(default_factory=dict)
    versions: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    requests: int = 0


def seed_experiment(conn: Connection, seeded: Seeded, name: str, status: str, weights: dict[str, int],
                    managed: bool = True, swapped: tuple[str, ...] = (), **columns: Any) -> None:
    """One experiment with a version per slot effective LONG_AGO (and a second one at SWAP_AT for
    the labels in `swapped`)."""
    exp_id = stable_id("exp", name)
    seeded.experiments[name] = exp_id
    conn.execute(insert(model_experiment).values(
        id=exp_id, public_model_id=f"preview/{name}", name=name.replace("-", " ").title(), status=status,
        created_at=LONG_AGO, updated_at=columns.pop("updated_at", LONG_AGO), started_at=LONG_AGO, **columns))
    if managed:
        conn.execute(insert(expctl_binding).values(name=name, experiment_id=exp_id))
    for label, weight in weights.items():
        variant_id = stable_id("var", name, label)
        conn.execute(insert(model_experiment_variant).values(
            id=variant_id, experiment_id=exp_id, label=label, weight=weight))
        for index, effective in enumerate([LONG_AGO, SWAP_AT] if label in swapped else [LONG_AGO]):
            version_id = stable_id("ver", name, label, str(index))
            seeded.versions.setdefault((name, label), []).append(version_id)
            conn.execute(insert(model_experiment_variant_version).values(
                id=version_id, variant_id=variant_id, effective_at=effective, created_at=effective,
                upstream={"internal_id": f"{name}-{label}-{index}", "base_url": "https://up.example.com/v1"},
                encrypted_api_key={"iv": "", "data": "", "authTag": ""}))


@dataclass
class Writer:
    """Collects usage and request rows and writes them in two multi-row inserts."""

    usage: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def add(self, version_id: str, subject: str, user: str, at: datetime, error: bool = False) -> None:
        n = len(self.requests)
        usage_id = stable_id("usage", str(n))
        self.usage.append({
            "id": usage_id, "kilo_user_id": user, "cost": 1_000 + (n * 37) % 900, "input_tokens": 800 + n % 400,
            "output_tokens": 200 + (n * 7) % 300, "cache_write_tokens": n % 50, "cache_hit_tokens": (n * 3) % 200,
            "has_error": error, "created_at": at})
        self.requests.append({
            "usage_id": usage_id, "variant_version_id": version_id, "allocation_subject": subject,
            "client_request_id": f"req-{n}", "request_kind": KINDS[n % 3],
            "request_body_sha256": hashlib.sha256(f"body-{n}".encode()).hexdigest(), "was_truncated": n % 97 == 0,
            "created_at": at})

    def flush(self, conn: Connection) -> int:
        conn.execute(text(
            "INSERT INTO microdollar_usage (id, kilo_user_id, cost, input_tokens, output_tokens, cache_write_tokens, "
            "cache_hit_tokens, has_error, created_at) VALUES (:id, :kilo_user_id, :cost, :input_tokens, "
            ":output_tokens, :cache_write_tokens, :cache_hit_tokens, :has_error, :created_at)"), self.usage)
        conn.execute(text(
            "INSERT INTO model_experiment_request (usage_id, variant_version_id, allocation_subject, "
            "client_request_id, request_kind, request_body_sha256, was_truncated, created_at) VALUES (:usage_id, "
            ":variant_version_id, :allocation_subject, :client_request_id, :request_kind, :request_body_sha256, "
            ":was_truncated, :created_at)"), self.requests)
        return len(self.requests)


def _slots(seeded: Seeded, name: str, weights: dict[str, int]) -> list[WeightedVariant]:
    return [WeightedVariant(stable_id("var", name, label), label, w) for label, w in weights.items()]


def user_traffic(writer: Writer, seeded: Seeded, name: str, weights: dict[str, int], users: int,
                 start: datetime = SINCE, error_every: dict[str, int] | None = None,
                 drop_every: dict[str, int] | None = None) -> None:
    """`users` users bucketed as the gateway does, 1 to 4 requests each spread over the day from
    `start`; in a slot of `error_every`, every k-th request fails; of `drop_every`, every k-th user
    never shows up (a planted sample ratio mismatch)."""
    slots = _slots(seeded, name, weights)
    exp_id, seen = seeded.experiments[name], dict.fromkeys(weights, 0)
    for u in range(users):
        user = f"user-{u:05d}"
        label = pick_variant(exp_id, slots, Subject("user", user)).label
        seen[label] += 1
        if drop_every and label in drop_every and seen[label] % drop_every[label] == 0:
            continue
        for r in range(1 + u % 4):
            at = start + timedelta(seconds=(u * 611 + r * 3_607) % int((UNTIL - start).total_seconds()))
            versions = seeded.versions[(name, label)]
            version = versions[-1] if at >= SWAP_AT or len(versions) == 1 else versions[0]
            k = (error_every or {}).get(label, 0)
            writer.add(version, "user", user, at, error=k > 0 and (u + r) % k == 0)


def anonymous_traffic(writer: Writer, seeded: Seeded, name: str, label: str, count: int) -> None:
    version = seeded.versions[(name, label)][-1]
    for i in range(count):
        subject = "machine" if i % 2 else "ip"
        writer.add(version, subject, f"anon-{i}", SINCE + timedelta(minutes=7 * i + 3))


def seed_scenario(conn: Connection) -> Seeded:
    """Seven experiments, each planting one condition (see the test module for what each shows)."""
    seeded, writer = Seeded(), Writer()
    two = {"control": 1, "treatment": 1}
    seed_experiment(conn, seeded, "steady", "active", two)
    user_traffic(writer, seeded, "steady", two, 400, error_every={"control": 100, "treatment": 100})
    anonymous_traffic(writer, seeded, "steady", "control", 12)
    seed_experiment(conn, seeded, "srm-planted", "active", two)
    user_traffic(writer, seeded, "srm-planted", two, 600, drop_every={"treatment": 3})
    three = {"control": 2, "rc1": 1, "rc2": 1}
    seed_experiment(conn, seeded, "failing-rc", "active", three)
    user_traffic(writer, seeded, "failing-rc", three, 400, error_every={"control": 50, "rc1": 50, "rc2": 3})
    seed_experiment(conn, seeded, "hot-swapped", "active", two, swapped=("treatment",))
    user_traffic(writer, seeded, "hot-swapped", two, 300)
    old = seeded.versions[("hot-swapped", "treatment")][0]
    for i in range(STALE_REQUESTS):  # the gateway kept serving the old checkpoint after the swap
        writer.add(old, "user", f"user-{i:05d}", SWAP_AT + timedelta(minutes=5 * i + 1))
    seed_experiment(conn, seeded, "paused-exp", "paused", two, updated_at=PAUSED_AT)
    user_traffic(writer, seeded, "paused-exp", two, 100)
    seed_experiment(conn, seeded, "quiet", "active", two)
    seed_experiment(conn, seeded, "legacy", "completed", two, managed=False, ended_at=ENDED_AT)
    user_traffic(writer, seeded, "legacy", two, 50, start=ENDED_AT - timedelta(days=1))
    for i in range(LATE_REQUESTS):  # routed after it was completed
        writer.add(seeded.versions[("legacy", "control")][0], "user", f"user-{i:05d}", SINCE + timedelta(hours=i + 1))
    seeded.requests = writer.flush(conn)
    return seeded
