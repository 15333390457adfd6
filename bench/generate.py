"""Synthetic data for the benchmark: N manifests on disk and, optionally, the same N experiments
already in PostgreSQL (written with COPY).

Every experiment has two variants, its own public model id and a realistic upstream. Even-numbered
experiments are active, odd-numbered ones draft. API keys are secret references to a small pool of
environment variables (`BENCH_KEY_00` …), whose values `secret_env()` returns; seeding encrypts
each distinct secret once and reuses the payload (the gateway only needs it to decrypt).

`changed` manifests differ from the seeded state in one experiment in ten: half of those get a new
display name (a metadata edit), half a new upstream `internal_id` (a hot-swap, a new version row).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from expctl.adapters.crypto import encrypt_api_key, parse_byok_key

BYOK_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SECRET_POOL = 16
LABELS = ("control", "treatment")
PROVIDERS = ("anthropic", "openai", "openai-compatible", "openrouter")
NAMESPACE = uuid.UUID("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab")


def secret_env() -> dict[str, str]:
    """The environment the CLI needs to resolve every api_key reference of the generated manifests."""
    env = {f"BENCH_KEY_{i:02d}": f"bench-secret-{i:02d}-not-a-real-key" for i in range(SECRET_POOL)}
    env["BYOK_ENCRYPTION_KEY"] = BYOK_B64
    return env


@dataclass(frozen=True)
class Variant:
    label: str
    weight: int
    upstream: dict[str, Any]
    key_env: str


@dataclass(frozen=True)
class Experiment:
    index: int
    name: str
    public_model_id: str
    display_name: str
    description: str
    status: str
    variants: tuple[Variant, ...]


def _upstream(i: int, v: int, swapped: bool) -> dict[str, Any]:
    upstream: dict[str, Any] = {
        "internal_id": f"partner-{i:05d}-rc{v + 1}" + ("-swapped" if swapped else ""),
        "base_url": f"https://partner{i % 97}.example.com/v1",
        # A field of the 2026-11 upstream (the default gateway profile) in place of the 2026-05
        # opencode_settings, so manifests keep about the same size.
        "extra_headers": {"x-provider": PROVIDERS[(i + v) % len(PROVIDERS)]},
    }
    if i % 3 == 0:
        upstream["extra_body"] = {"temperature": 0.2, "reasoning": {"effort": "medium"}}
    if i % 5 == 0:
        upstream["remove_from_body"] = ["logprobs", "seed"]
        upstream["add_cache_breakpoints"] = True
    return upstream


def experiment(i: int, changed: bool = False) -> Experiment:
    """Experiment number `i`; with `changed`, one in ten differs (see the module docstring)."""
    edit = changed and i % 10 == 0
    rename, swap = edit and i % 20 == 0, edit and i % 20 != 0
    variants = tuple(
        Variant(label, 1 + (v + i) % 3, _upstream(i, v, swap and v == 0), f"BENCH_KEY_{(2 * i + v) % SECRET_POOL:02d}")
        for v, label in enumerate(LABELS)
    )
    return Experiment(
        index=i, name=f"bench-exp-{i:05d}", public_model_id=f"preview/bench-model-{i:05d}",
        display_name=f"Bench experiment {i}" + (" (renamed)" if rename else ""),
        description=f"Synthetic experiment {i} comparing two partner checkpoints",
        status="active" if i % 2 == 0 else "draft", variants=variants,
    )


def experiments(n: int, changed: bool = False) -> Iterator[Experiment]:
    return (experiment(i, changed) for i in range(n))


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def _flow(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))  # JSON is YAML flow style


def manifest_text(e: Experiment) -> str:
    lines = [
        "# yaml-language-server: $schema=../experiments.schema.json",
        "apiVersion: expctl/v1",
        "kind: ModelExperiment",
        f"name: {e.name}",
        f"public_model_id: {e.public_model_id}",
        f"display_name: {_q(e.display_name)}",
        f"description: {_q(e.description)}",
        f"status: {e.status}",
        "archived: false",
        "variants:",
    ]
    for v in e.variants:
        lines += [f"  - label: {v.label}", f"    weight: {v.weight}", "    upstream:"]
        for key, value in v.upstream.items():
            lines.append(f"      {key}: {value if isinstance(value, str) else _flow(value)}")
        lines.append(f"    api_key: {{from_env: {v.key_env}}}")
    return "\n".join(lines) + "\n"


def write_manifests(directory: Path, n: int, changed: bool = False) -> Path:
    """Writes one manifest file per experiment into `directory` (created) and returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for e in experiments(n, changed):
        (directory / f"{e.name}.yaml").write_text(manifest_text(e), encoding="utf-8")
    return directory


def _ids(e: Experiment) -> tuple[str, list[str], list[str]]:
    experiment_id = str(uuid.uuid5(NAMESPACE, e.name))
    variant_ids = [str(uuid.uuid5(NAMESPACE, f"{e.name}/{v.label}")) for v in e.variants]
    version_ids = [str(uuid.uuid5(NAMESPACE, f"{e.name}/{v.label}/v1")) for v in e.variants]
    return experiment_id, variant_ids, version_ids


@dataclass
class Rows:
    """The four tables' rows for N experiments, as tuples in COPY column order."""

    experiments: list[tuple[Any, ...]]
    bindings: list[tuple[Any, ...]]
    variants: list[tuple[Any, ...]]
    versions: list[tuple[Any, ...]]


EXPERIMENT_COLUMNS = ("id", "public_model_id", "name", "description", "status", "is_archived", "started_at")
BINDING_COLUMNS = ("name", "experiment_id", "applied")
VARIANT_COLUMNS = ("id", "experiment_id", "label", "weight")
VERSION_COLUMNS = ("id", "variant_id", "upstream", "encrypted_api_key", "effective_at", "created_by")
SEED_TIME = "2024-01-01 00:00:00+00"


def rows(n: int, *, encrypt_each: bool = False) -> Rows:
    """Rows equal to what `expctl reconcile` would create for the unchanged manifests.

    Keys are encrypted once per distinct secret (the payload reused) unless `encrypt_each`, which
    encrypts every row with its own nonce as expctl does.
    """
    key, env = parse_byok_key(BYOK_B64), secret_env()
    payloads: dict[str, str] = {}

    def payload(name: str) -> str:
        if encrypt_each:
            return json.dumps(encrypt_api_key(key, env[name]))
        if name not in payloads:
            payloads[name] = json.dumps(encrypt_api_key(key, env[name]))
        return payloads[name]

    out = Rows([], [], [], [])
    for e in experiments(n):
        experiment_id, variant_ids, version_ids = _ids(e)
        out.experiments.append((experiment_id, e.public_model_id, e.display_name, e.description, e.status, False,
                                SEED_TIME if e.status == "active" else None))
        out.bindings.append((e.name, experiment_id, json.dumps(applied_record(e))))
        for v, variant_id, version_id in zip(e.variants, variant_ids, version_ids, strict=True):
            out.variants.append((variant_id, experiment_id, v.label, v.weight))
            out.versions.append((version_id, variant_id, json.dumps(v.upstream), payload(v.key_env), SEED_TIME,
                                 "bench"))
    return out


def applied_record(e: Experiment) -> dict[str, Any]:
    """What expctl records as applied for the unchanged manifest (expctl.core.drift.applied_record),
    so a seeded database is in the steady state a reconcile leaves: no record left to write."""
    return {"status": e.status, "archived": False, "display_name": e.display_name, "description": e.description,
            "public_model_id": e.public_model_id, "metadata": None,
            "variants": {v.label: {"weight": v.weight, "upstream": v.upstream} for v in e.variants}}


def _copy(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], data: list[tuple[Any, ...]]) -> None:
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in data:
            copy.write_row(row)


def copy_rows(conn: psycopg.Connection[Any], data: Rows) -> None:
    """Writes `data` with one COPY per table (the caller commits)."""
    with conn.cursor() as cur:
        _copy(cur, "model_experiment", EXPERIMENT_COLUMNS, data.experiments)
        _copy(cur, "expctl_binding", BINDING_COLUMNS, data.bindings)
        _copy(cur, "model_experiment_variant", VARIANT_COLUMNS, data.variants)
        _copy(cur, "model_experiment_variant_version", VERSION_COLUMNS, data.versions)


def seed_database(url: str, n: int) -> None:
    """Puts the N experiments of the unchanged manifests into an initialised, empty database."""
    with psycopg.connect(url) as conn:
        copy_rows(conn, rows(n))
        conn.execute("ANALYZE")


def membership(n: int) -> list[str]:
    """The Redis membership value PostgreSQL implies once the N experiments exist."""
    return sorted(e.public_model_id for e in experiments(n) if e.status in ("active", "paused"))

