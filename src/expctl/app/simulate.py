"""`expctl simulate`: which variant the gateway gives a subject, and the split over a sample.

From the database, the experiment that is active or paused on the public id is used exactly as
the gateway uses it (docs/design.md#variant-pick): the pick depends on the experiment id and the variants in
ascending id order. From the manifests (`--from-manifests`), the manifest that wants the public id
routed is used with the database ids of its bound experiment and variants; ids that do not exist
yet are replaced by stand-ins (new variants after known ones, in label order) and the result is
marked as a preview, since the real assignment depends on ids assigned at apply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from expctl.adapters.store.db import read_only
from expctl.adapters.store.reader import read_state
from expctl.app.settings import Settings
from expctl.core.bucketing import Subject, WeightedVariant, bucket, pick_variant
from expctl.core.errors import ExpctlError
from expctl.core.state import ROUTED_STATUSES, ActualExperiment, ActualState, DesiredExperiment
from expctl.core.variant_plan import match_variants

Source = Literal["database", "manifests"]
Outcome = Literal["routed", "paused", "not_routed"]

# Stand-in ids sort after every uuid ('~' > hex digits and '-'), so new variants come last.
STANDIN_PREFIX = "~new:"


def is_standin(identifier: str) -> bool:
    return identifier.startswith(STANDIN_PREFIX)


@dataclass(frozen=True)
class SampleRow:
    label: str
    weight: int
    expected_share: float
    observed_share: float
    count: int


@dataclass(frozen=True)
class Simulation:
    public_model_id: str
    source: Source
    outcome: Outcome
    message: str
    experiment_id: str | None = None
    display_name: str | None = None
    manifest_name: str | None = None
    preview: bool = False
    notes: tuple[str, ...] = ()
    variants: tuple[WeightedVariant, ...] = ()
    subject: Subject | None = None
    picked: WeightedVariant | None = None
    bucket: int | None = None
    sample_kind: str | None = None
    sample: tuple[SampleRow, ...] = field(default=())

    @property
    def total_weight(self) -> int:
        return sum(v.weight for v in self.variants)

    @property
    def sample_size(self) -> int:
        return sum(row.count for row in self.sample)


def sample_subjects(kind: str, size: int) -> list[Subject]:
    """`<kind>:sample-0` … `<kind>:sample-<size-1>`: synthetic, deterministic subjects."""
    return [Subject(kind, f"sample-{i}") for i in range(size)]


def draw_sample(experiment_id: str, variants: Sequence[WeightedVariant], kind: str, size: int) -> tuple[SampleRow, ...]:
    """Counts the picks of `size` synthetic subjects; rows in the gateway's walk order."""
    counts = Counter(pick_variant(experiment_id, variants, s).id for s in sample_subjects(kind, size))
    total = sum(v.weight for v in variants)
    return tuple(
        SampleRow(v.label, v.weight, v.weight / total, counts[v.id] / size if size else 0.0, counts[v.id])
        for v in walk_order(variants)
    )


def walk_order(variants: Sequence[WeightedVariant]) -> list[WeightedVariant]:
    return sorted(variants, key=lambda v: v.id.lower())


@dataclass(frozen=True)
class Request:
    public_model_id: str
    subject: Subject | None
    sample_size: int = 0
    sample_kind: str = "user"


def _routed(sim: Simulation, request: Request) -> Simulation:
    """Fills in the pick for the subject and the sample split."""
    if not sim.variants:
        raise ExpctlError(f"{request.public_model_id}: the experiment has no variants, the gateway cannot route it")
    assert sim.experiment_id is not None
    picked = point = None
    if request.subject is not None:
        picked = pick_variant(sim.experiment_id, sim.variants, request.subject)
        point = bucket(sim.experiment_id, request.subject, sim.total_weight)
    sample = draw_sample(sim.experiment_id, sim.variants, request.sample_kind, request.sample_size) \
        if request.sample_size else ()
    return replace(sim, variants=tuple(walk_order(sim.variants)), subject=request.subject, picked=picked,
                   bucket=point, sample_kind=request.sample_kind if sample else None, sample=sample)


def _not_routed(state: ActualState, request: Request, source: Source, why: str) -> Simulation:
    public_id = request.public_model_id
    others = sorted((e for e in state.experiments if e.public_model_id == public_id), key=lambda e: (e.status, e.id))
    listed = ", ".join(f"'{e.name[:80]}' is {e.status}" for e in others)
    message = f"{public_id} is not routed ({why}" + (f"; in the database: {listed}" if listed else "") + \
        "): the gateway serves it without any experiment"
    return Simulation(public_id, source, "not_routed", message)


def _paused(sim: Simulation) -> Simulation:
    message = f"{sim.public_model_id}: the experiment is paused, so the gateway answers 404 for this model id"
    return replace(sim, outcome="paused", message=message)


def from_database(state: ActualState, request: Request) -> Simulation:
    """The gateway's pick today, from the experiment routed on the public id."""
    routed = [e for e in state.experiments if e.public_model_id == request.public_model_id and e.routed]
    if not routed:
        return _not_routed(state, request, "database", "no active or paused experiment")
    experiment = routed[0]  # the routing unique index allows one
    sim = Simulation(
        request.public_model_id, "database", "routed", f"{request.public_model_id} is routed by an experiment",
        experiment_id=experiment.id, display_name=experiment.name, manifest_name=experiment.managed_name,
        variants=tuple(WeightedVariant(v.id, v.label, v.weight) for v in experiment.variants),
    )
    return _paused(sim) if experiment.status == "paused" else _routed(sim, request)


def _manifest_variants(
    desired: DesiredExperiment, actual: ActualExperiment | None
) -> tuple[tuple[WeightedVariant, ...], list[str]]:
    pairs, leftovers = match_variants(desired, actual)
    variants = tuple(
        WeightedVariant(row.id if row else f"{STANDIN_PREFIX}{v.label}", v.label, v.weight) for v, row in pairs)
    notes = []
    new = sorted(v.label for v, row in pairs if row is None)
    if actual is None:
        notes.append(f"PREVIEW: '{desired.name}' is not in the database yet; the experiment and variant ids are "
                     "assigned at apply, so this subject's real assignment will differ. Stand-ins: a "
                     "placeholder experiment id and the label order. The sample split (the shares) holds.")
    elif new:
        notes.append(f"PREVIEW: variant(s) {', '.join(new)} get their ids at apply; as a stand-in they are placed "
                     "after the existing variants in label order, so assignments may differ after apply.")
    if leftovers:
        notes.append(f"variant(s) {', '.join(v.label for v in leftovers)} would be removed by the manifest")
    if actual is not None and {(v.label, v.weight) for v in variants} != {(v.label, v.weight) for v in actual.variants}:
        frozen = "" if actual.status == "draft" else \
            f" (while it is {actual.status}, variants and weights are frozen: the plan refuses this)"
        notes.append(f"the manifest's variants or weights differ from the database{frozen}; shown as the manifest "
                     "wants them")
    return variants, notes


def _blockers(state: ActualState, desired: DesiredExperiment, actual: ActualExperiment | None) -> list[str]:
    return [
        f"the database routes {desired.public_model_id} through another experiment ('{e.name[:80]}', id {e.id}, "
        f"{e.status}) today; this manifest takes over only once that one is completed"
        for e in state.experiments
        if e.public_model_id == desired.public_model_id and e.routed and (actual is None or e.id != actual.id)
    ]


def from_manifests(desired: Sequence[DesiredExperiment], state: ActualState, request: Request) -> Simulation:
    """The pick the manifests would give once applied (a preview where ids are not known yet)."""
    wanted = [d for d in desired if d.public_model_id == request.public_model_id and d.status in ROUTED_STATUSES]
    if not wanted:
        return _not_routed(state, request, "manifests", "no manifest wants it active or paused")
    manifest = wanted[0]  # validation refuses two manifests routing one public id
    actual = state.by_managed_name().get(manifest.name)
    variants, notes = _manifest_variants(manifest, actual)
    sim = Simulation(
        request.public_model_id, "manifests", "routed", f"{request.public_model_id} would be routed by a manifest",
        experiment_id=actual.id if actual else f"{STANDIN_PREFIX}{manifest.name}", display_name=manifest.display_name,
        manifest_name=manifest.name, preview=actual is None or any(is_standin(v.id) for v in variants),
        notes=tuple(notes + _blockers(state, manifest, actual)), variants=variants,
    )
    return _paused(sim) if manifest.status == "paused" else _routed(sim, request)


def simulate(settings: Settings, request: Request, use_manifests: bool) -> Simulation:
    desired = (settings.load_manifests()
               if use_manifests else ())
    with read_only(settings.database_url) as conn:
        state = read_state(conn)
    return from_manifests(desired, state, request) if use_manifests else from_database(state, request)


# --- output --------------------------------------------------------------------------------------


def _variant_record(variant: WeightedVariant, total: int) -> dict[str, Any]:
    return {"id": None if is_standin(variant.id) else variant.id, "label": variant.label, "weight": variant.weight,
            "expected_share": round(variant.weight / total, 6) if total else None}


def to_record(sim: Simulation) -> dict[str, Any]:
    """The JSON output of `expctl simulate --format json`."""
    experiment = None if sim.experiment_id is None else {
        "id": None if is_standin(sim.experiment_id) else sim.experiment_id,
        "display_name": sim.display_name, "manifest": sim.manifest_name}
    return {
        "public_model_id": sim.public_model_id, "source": sim.source, "outcome": sim.outcome,
        "message": sim.message, "experiment": experiment, "preview": sim.preview, "notes": list(sim.notes),
        "variants": [_variant_record(v, sim.total_weight) for v in sim.variants],
        "subject": None if sim.subject is None else str(sim.subject),
        "bucket": sim.bucket, "total_weight": sim.total_weight if sim.variants else None,
        "variant": None if sim.picked is None else _variant_record(sim.picked, sim.total_weight),
        "sample": None if not sim.sample else {
            "size": sim.sample_size, "kind": sim.sample_kind,
            "rows": [{"label": r.label, "weight": r.weight, "expected_share": round(r.expected_share, 6),
                      "observed_share": round(r.observed_share, 6), "count": r.count} for r in sim.sample]},
    }


def _id_text(identifier: str) -> str:
    return "assigned at apply" if is_standin(identifier) else identifier


def render_text(sim: Simulation) -> str:
    lines = [f"{note}" for note in sim.notes]
    if sim.experiment_id is not None:
        owner = f", manifest {sim.manifest_name}" if sim.manifest_name else ", unmanaged"
        lines.append(f"{sim.public_model_id}: experiment '{(sim.display_name or '')[:80]}' "
                     f"(id {_id_text(sim.experiment_id)}{owner}) [from the {sim.source}]")
    if sim.outcome != "routed":
        return "\n".join([*lines, sim.message]) + "\n"
    if sim.picked is not None and sim.subject is not None:
        verb = "would get" if sim.preview else "gets"
        lines.append(f"{sim.subject} {verb} variant '{sim.picked.label}' (id {_id_text(sim.picked.id)}; "
                     f"bucket {sim.bucket} of total weight {sim.total_weight})")
    if sim.sample:
        lines += _sample_lines(sim)
    return "\n".join(lines) + "\n"


def _sample_lines(sim: Simulation) -> list[str]:
    n = sim.sample_size
    width = max(len("label"), *(len(r.label) for r in sim.sample))
    lines = [f"sample of {n} synthetic {sim.sample_kind} subjects ({sim.sample_kind}:sample-0 … "
             f"{sim.sample_kind}:sample-{n - 1}), variants in the gateway's order:",
             f"  {'label':<{width}}  {'weight':>6}  {'expected':>8}  {'observed':>8}"]
    lines += [f"  {r.label:<{width}}  {r.weight:>6}  {r.expected_share:>8.1%}  {r.observed_share:>8.1%}"
              for r in sim.sample]
    return lines
