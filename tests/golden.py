"""Golden plan cases: `tests/cases/<scenario>/` holds manifests, seeded rows and the expected plan.

Layout of a case:
  manifests/*.yaml   the desired state (may be empty: removed manifests)
  state.yaml         rows to seed (experiments, variants, current versions — a variant's
                     `encrypted_api_key` seeds a raw stored value —, bindings), the secrets
                     visible to the run (`env`) and options (`prune`, `byok: false`, `profile`:
                     the gateway profile, default 2026-11); an experiment's `metadata` seeds
                     `model_experiment.metadata`
  expected.txt       the plan summarised one change per line (see `summarise`)

Set UPDATE_GOLDEN=1 to rewrite expected.txt from the current output (then review the diff).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, insert

from expctl.adapters.crypto import encrypt_api_key
from expctl.adapters.store.tables import (
    expctl_binding,
    model_experiment,
    model_experiment_variant,
    model_experiment_variant_version,
)

CASES_DIR = Path(__file__).parent / "cases"
TEST_BYOK_KEY_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
TEST_BYOK_KEY = bytes(range(32))


def case_names() -> list[str]:
    return sorted(p.name for p in CASES_DIR.iterdir() if (p / "state.yaml").exists())


def load_case(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CASES_DIR / name / "state.yaml").read_text()) or {}
    data.setdefault("experiments", [])
    data.setdefault("env", {})
    return data


def _stable_id(*parts: str) -> str:
    """Deterministic uuids, so variant order (by id) and plans are reproducible."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "expctl-test:" + ":".join(parts)))


def seed(conn: Connection, case: dict[str, Any]) -> None:
    for index, exp in enumerate(case["experiments"]):
        exp_id = exp.get("id") or _stable_id("exp", str(index), exp["name"])
        conn.execute(insert(model_experiment).values(
            id=exp_id, public_model_id=exp["public_model_id"], name=exp["name"],
            description=exp.get("description"), status=exp.get("status", "draft"),
            is_archived=exp.get("archived", False), metadata=exp.get("metadata"),
        ))
        if exp.get("managed"):
            conn.execute(insert(expctl_binding).values(name=exp["managed"], experiment_id=exp_id))
        for v_index, variant in enumerate(exp.get("variants", [])):
            variant_id = variant.get("id") or _stable_id("var", exp_id, str(v_index))
            conn.execute(insert(model_experiment_variant).values(
                id=variant_id, experiment_id=exp_id, label=variant["label"], weight=variant["weight"]))
            if "upstream" in variant:
                conn.execute(insert(model_experiment_variant_version).values(
                    variant_id=variant_id, upstream=variant["upstream"],
                    # `encrypted_api_key` seeds a stored value as another tool might have written it.
                    encrypted_api_key=variant.get("encrypted_api_key")
                    or encrypt_api_key(TEST_BYOK_KEY, variant.get("key", "unused-key")),
                ))


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in sorted(value.items())) + "}"
    return "null" if value is None else str(value)


def summarise(record: dict[str, Any]) -> str:
    """One line per change: `name: kind [field] [variant] before -> after | allowed/REFUSED (reason)`."""
    lines = []
    for experiment in record["experiments"]:
        for change in experiment["changes"]:
            target = " ".join(x for x in (change["field"], change["variant"]) if x)
            verdict = "allowed" if change["allowed"] else "REFUSED"
            reason = f" ({change['reason']})" if change["reason"] else ""
            routing = " routing" if change["routing"] else ""
            location = change["location"]
            where = f" @{Path(location['path']).name}:{location['line']}" if location else ""
            lines.append(f"{experiment['name']}: {change['kind']} {target} "
                         f"{_value(change['before'])} -> {_value(change['after'])} | {verdict}{routing}{reason}{where}")
        lines.extend(f"{experiment['name']}: note {note}" for note in experiment["notes"])
    lines.extend(f"unmanaged: {u['name']} ({u['public_model_id']}, {u['status']})" for u in record["unmanaged"])
    lines.extend(f"attention: {a['kind']} {a['experiment']}/{a['variant']} {a['secret']}"
                 f"{' blocking' if a['blocking'] else ''} @{Path(a['location']['path']).name}:{a['location']['line']}"
                 for a in record["attention"])
    cache = record["cache"]
    lines.append(f"membership after: {cache['membership_after']}")
    lines.append(f"summary: total={record['summary']['total']} refused={record['summary']['refused']}")
    return "\n".join(lines) + "\n"
