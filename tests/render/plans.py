"""Builders of real plans for the renderer tests: desired/actual state in, `Plan.to_record()` out."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from expctl.adapters.crypto import fingerprint
from expctl.core.drift import applied_record
from expctl.core.errors import Location
from expctl.core.planner import build_plan
from expctl.core.state import (
    ActualExperiment,
    ActualState,
    ActualVariant,
    ActualVersion,
    DesiredExperiment,
    DesiredVariant,
    KeyComparison,
    SecretRef,
    Status,
)

BASE_URL = "https://partner.example.com/v1"
KeyChecks = dict[tuple[str, str], KeyComparison]


def _id(*parts: str) -> str:
    # Deterministic uuids keep plan ids stable across runs.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def upstream(internal_id: str) -> dict[str, Any]:
    return {"internal_id": internal_id, "base_url": BASE_URL}


def dvar(
    label: str, weight: int = 1, internal_id: str = "rc1", line: int = 10, renamed_from: str | None = None,
) -> DesiredVariant:
    path = "experiments.d/test.yaml"
    return DesiredVariant(
        label=label, weight=weight, upstream=upstream(internal_id),
        api_key=SecretRef("env", f"KEY_{label.upper()}"), renamed_from=renamed_from, location=Location(path, line, 5),
        field_locations={"weight": Location(path, line + 1, 13), "upstream": Location(path, line + 2, 5)},
    )


def desired(
    name: str, status: Status = "active", variants: Sequence[DesiredVariant] | None = None,
    public_model_id: str | None = None, archived: bool = False, display_name: str | None = None,
) -> DesiredExperiment:
    path = f"experiments.d/{name}.yaml"
    return DesiredExperiment(
        name=name, public_model_id=public_model_id or f"preview/{name}", display_name=display_name or name,
        description=None, status=status, archived=archived,
        variants=tuple(variants if variants is not None else (dvar("control"), dvar("treatment"))),
        location=Location(path, 1, 1),
        field_locations={"status": Location(path, 7, 9), "archived": Location(path, 8, 11)},
    )


def avar(experiment: str, label: str, weight: int = 1, internal_id: str = "rc1") -> ActualVariant:
    version = ActualVersion(_id(experiment, label, "v"), upstream(internal_id), {"iv": "", "data": "", "authTag": ""})
    return ActualVariant(_id(experiment, label), label, weight, version)


def actual(
    name: str, status: Status = "active", variants: Sequence[ActualVariant] | None = None,
    public_model_id: str | None = None, managed: bool = True, archived: bool = False,
) -> ActualExperiment:
    return ActualExperiment(
        id=_id(name), public_model_id=public_model_id or f"preview/{name}", name=name, description=None,
        status=status, is_archived=archived,
        variants=tuple(variants if variants is not None else (avar(name, "control"), avar(name, "treatment"))),
        managed_name=name if managed else None,
    )


def same_keys(experiments: Sequence[DesiredExperiment]) -> KeyChecks:
    """Every desired key equals the stored one (the planner needs a check for each existing variant)."""
    return {(d.name, v.label): KeyComparison("same", "sha256:" + "0" * 12) for d in experiments for v in d.variants}


def plan_record(
    desired_: Sequence[DesiredExperiment], actual_: Sequence[ActualExperiment] = (),
    key_checks: Mapping[tuple[str, str], KeyComparison] | None = None, prune: bool = False,
    membership: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    checks: KeyChecks = {**same_keys(desired_), **(key_checks or {})}
    state = ActualState(experiments=tuple(actual_), membership=membership, membership_read=membership is not None)
    return build_plan(desired_, state, checks, prune=prune).to_record()


def varied_record() -> dict[str, Any]:
    """A plan touching most change kinds, incl. refusals, a rotation, an unmanaged row and membership."""
    wanted = [
        desired("brand-new"),
        desired("to-complete", status="completed"),
        desired("frozen", variants=(dvar("control", 1), dvar("treatment", 3))),
        desired("swapped", variants=(dvar("control", 1, "rc2"), dvar("treatment"))),
        desired("rotated", display_name="Rotated experiment"),
        desired("shelf", status="paused", archived=True),
        desired("drafty", status="draft", variants=(dvar("control"), dvar("extra"))),
        desired("unshelf", status="paused"),
        desired("renamed", variants=(dvar("control"), dvar("treatment", renamed_from="candidate"))),
        dataclasses.replace(desired("adoptee"), adopt=_id("adoptee")),
        desired("drifted"),
    ]
    rows = [
        actual("to-complete"), actual("frozen"), actual("swapped"), actual("rotated"), actual("shelf"),
        actual("drafty", status="draft"), actual("old-draft", status="draft"), actual("finished", status="completed"),
        actual("admin", managed=False, public_model_id="preview/admin"),
        actual("swapped-twin", status="draft", variants=(avar("swapped-twin", "only"),)),
        actual("unshelf", status="paused", archived=True),
        actual("renamed", variants=(avar("renamed", "control"), avar("renamed", "candidate"))),
        actual("adoptee", managed=False),
        # Paused in the admin UI after expctl applied it active: drift, held.
        dataclasses.replace(actual("drifted", status="paused"), applied=applied_record(desired("drifted"))),
    ]
    checks = {("rotated", "control"): KeyComparison("changed", fingerprint("x"), fingerprint("y"))}
    return plan_record(wanted, rows, key_checks=checks, prune=True, membership=("preview/frozen",))


def many_record(count: int, irreversible: int, swap_status: Status = "active") -> dict[str, Any]:
    """`count` experiments with one change each: the first `irreversible` complete, the rest hot-swap.

    Hot-swaps of `swap_status: draft` experiments route nothing, so they are no traffic shifts.
    """
    wanted, rows = [], []
    for i in range(count):
        name = f"exp-{i:05d}"
        if i < irreversible:
            wanted.append(desired(name, status="completed"))
        else:
            variants = (dvar("control", internal_id="rc2"), dvar("treatment"))
            wanted.append(desired(name, status=swap_status, variants=variants))
        rows.append(actual(name, status="active" if i < irreversible else swap_status))
    return plan_record(wanted, rows)
