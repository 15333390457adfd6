"""The verdicts of `expctl status`: observed split, sample ratio mismatch and health flags — pure core.

Rules (docs/design.md#observed-traffic, README "expctl status"):
- the split is counted in allocation units: distinct users of the requests bucketed by user, per
  variant slot over all its versions; requests bucketed by machine or ip are reported as
  `anonymous_requests` and left out, because neither table records the machine id or the address
  the gateway bucketed them by (counting their requests would weigh one busy machine many times);
- SRM: Pearson's chi-square of the units per slot against the declared weights; a mismatch when
  p < `SRM_THRESHOLD`; not tested while any slot expects fewer than `MIN_EXPECTED_UNITS` units;
- `high_error_rate`: a version with at least `ERROR_MIN_REQUESTS` requests whose error rate is at
  least `ERROR_RATIO` times, and `ERROR_MARGIN` above, that of the other slots together (which
  need as many requests);
- `no_traffic`: an active experiment with no request in a window of at least `MIN_QUIET_WINDOW`;
- `traffic_while_stopped`: requests after the experiment stopped routing (paused, completed, draft);
- `stale_version`: requests to a version after the next version of its slot took effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from expctl.core.stats import goodness_of_fit
from expctl.core.status import NO_TRAFFIC, Counts, Experiment, Slot, Traffic, Version, Window, iso

FORMAT_VERSION = 1
SRM_THRESHOLD = 0.001
MIN_EXPECTED_UNITS = 5
ERROR_MIN_REQUESTS = 100
ERROR_RATIO = 2.0
ERROR_MARGIN = 0.02
MIN_QUIET_WINDOW = timedelta(hours=1)

SRM_CAUSES = (
    "a hot-swap or key rotation inside the window (users retrying or leaving around the switch)",
    "bucketing drift (the gateway picks differently from `expctl simulate`, or users are seen in several variants)",
    "a failing variant (users who get errors retry less or leave)",
    "caching in front of the gateway (a proxy or client answering some requests without the gateway)",
)


class FlagKind(StrEnum):
    SRM = "srm"
    HIGH_ERROR_RATE = "high_error_rate"
    NO_TRAFFIC = "no_traffic"
    TRAFFIC_WHILE_STOPPED = "traffic_while_stopped"
    STALE_VERSION = "stale_version"


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    message: str
    variant: str | None = None  # the slot's label, for reading only (reports group by id)
    version_id: str | None = None
    causes: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "variant": self.variant, "version_id": self.version_id,
                "message": self.message, "causes": list(self.causes)}


@dataclass(frozen=True)
class Srm:
    """`verdict`: ok, mismatch, too_few_units (some slot expects < MIN_EXPECTED_UNITS) or
    not_applicable (fewer than two slots)."""

    units: int
    verdict: str
    chi_square: float | None = None
    df: int | None = None
    p_value: float | None = None

    def to_record(self) -> dict[str, Any]:
        return {"units": self.units, "verdict": self.verdict, "threshold": SRM_THRESHOLD,
                "chi_square": None if self.chi_square is None else round(self.chi_square, 4),
                "df": self.df, "p_value": None if self.p_value is None else float(f"{self.p_value:.4g}")}


@dataclass(frozen=True)
class SlotStatus:
    slot: Slot
    expected_share: float
    counts: Counts
    versions: tuple[tuple[Version, Counts], ...]  # the current one and those with requests

    def observed_share(self, units: int) -> float | None:
        return self.counts.users / units if units else None


@dataclass(frozen=True)
class ExperimentStatus:
    experiment: Experiment
    window: Window
    slots: tuple[SlotStatus, ...]
    srm: Srm
    flags: tuple[Flag, ...] = field(default=())

    def totals(self) -> Counts:
        return combine(s.counts for s in self.slots)

    def to_record(self) -> dict[str, Any]:
        e, units = self.experiment, self.srm.units
        return {
            "name": e.display_name, "managed": e.managed_name is not None, "experiment_id": e.id,
            "title": e.title, "public_model_id": e.public_model_id, "status": e.status, "archived": e.archived,
            "window": {"since": iso(self.window.since), "until": iso(self.window.until),
                       "default_since": self.window.default_since},
            "totals": self.totals().to_record(),
            "srm": self.srm.to_record(),
            "variants": [_slot_record(s, units) for s in self.slots],
            "flags": [f.to_record() for f in self.flags],
        }


def _slot_record(status: SlotStatus, units: int) -> dict[str, Any]:
    observed = status.observed_share(units)
    return {
        "variant_id": status.slot.id, "label": status.slot.label, "weight": status.slot.weight,
        "expected_share": round(status.expected_share, 4),
        "observed_share": None if observed is None else round(observed, 4),
        "mixed_users": status.counts.mixed_users,
        **status.counts.to_record(),
        "versions": [{"version_id": v.id, "current": v.current, "effective_at": iso(v.effective_at),
                      "superseded_at": None if v.superseded_at is None else iso(v.superseded_at),
                      **c.to_record()} for v, c in status.versions],
    }


@dataclass(frozen=True)
class StatusReport:
    experiments: tuple[ExperimentStatus, ...]
    gateway_profile: str

    @property
    def flagged(self) -> bool:
        return any(e.flags for e in self.experiments)

    def to_record(self) -> dict[str, Any]:
        flags: dict[str, int] = {kind.value: 0 for kind in FlagKind}
        for experiment in self.experiments:
            for flag in experiment.flags:
                flags[flag.kind.value] += 1
        return {
            "format_version": FORMAT_VERSION,
            "gateway_profile": self.gateway_profile,
            "summary": {"experiments": len(self.experiments),
                        "flagged": sum(1 for e in self.experiments if e.flags), "flags": flags},
            "rules": {"srm_threshold": SRM_THRESHOLD, "min_expected_units": MIN_EXPECTED_UNITS,
                      "error_min_requests": ERROR_MIN_REQUESTS, "error_ratio": ERROR_RATIO,
                      "error_margin": ERROR_MARGIN, "units": "distinct users (subject user)"},
            "experiments": [e.to_record() for e in self.experiments],
        }


def combine(counts: Iterable[Counts]) -> Counts:
    """The sum of several counts (users summed too: a user of two slots counts in each)."""
    items = list(counts)
    firsts = [c.first_at for c in items if c.first_at is not None]
    lasts = [c.last_at for c in items if c.last_at is not None]
    sums = {name: sum(getattr(c, name) for c in items) for name in (
        "requests", "users", "anonymous_requests", "errors", "cost_microdollars", "input_tokens", "output_tokens",
        "cache_write_tokens", "cache_hit_tokens", "stale_requests", "stopped_requests", "mixed_users")}
    return Counts(**sums, first_at=min(firsts, default=None), last_at=max(lasts, default=None))


# ---------------------------------------------------------------- building the report

def build_report(experiments: Sequence[Experiment], windows: Mapping[str, Window], traffic: Traffic,
                 gateway_profile: str) -> StatusReport:
    return StatusReport(tuple(experiment_status(e, windows[e.id], traffic) for e in experiments), gateway_profile)


def experiment_status(experiment: Experiment, window: Window, traffic: Traffic) -> ExperimentStatus:
    total_weight = sum(s.weight for s in experiment.slots) or 1
    slots = tuple(
        SlotStatus(slot, slot.weight / total_weight, traffic.slots.get(slot.id, NO_TRAFFIC), tuple(
            (v, traffic.versions.get(v.id, NO_TRAFFIC)) for v in slot.versions
            if v.current or v.id in traffic.versions))
        for slot in experiment.slots
    )
    srm = sample_ratio(slots)
    errors = _error_flags(slots)
    flags = [
        *_srm_flags(experiment, window, slots, srm, errors), *_quiet_flags(experiment, window, slots),
        *_stopped_flags(experiment, slots), *errors, *_stale_flags(slots),
    ]
    return ExperimentStatus(experiment, window, slots, srm, tuple(flags))


def sample_ratio(slots: Sequence[SlotStatus]) -> Srm:
    units = sum(s.counts.users for s in slots)
    if len(slots) < 2:
        return Srm(units, "not_applicable")
    if units == 0 or min(units * s.expected_share for s in slots) < MIN_EXPECTED_UNITS:
        return Srm(units, "too_few_units")
    fit = goodness_of_fit([s.counts.users for s in slots], [s.slot.weight for s in slots])
    verdict = "mismatch" if fit.p_value < SRM_THRESHOLD else "ok"
    return Srm(units, verdict, fit.statistic, fit.df, fit.p_value)


def _srm_flags(experiment: Experiment, window: Window, slots: Sequence[SlotStatus], srm: Srm,
               errors: Sequence[Flag]) -> list[Flag]:
    if srm.verdict != "mismatch":
        return []
    observed = ", ".join(f"{s.slot.label} {s.counts.users / srm.units:.1%} (declared {s.expected_share:.1%})"
                         for s in slots)
    message = (f"sample ratio mismatch: {observed} of {srm.units} users, chi-square {srm.chi_square:.1f}, "
               f"p = {srm.p_value:.2g} < {SRM_THRESHOLD:g}: do not read results until it is explained")
    swaps = [f"{s.slot.label} got version {_short(v.id)} at {iso(v.effective_at)}" for s in slots
             for v in s.slot.versions if window.since < v.effective_at < window.until]
    mixed = [f"{s.counts.mixed_users} users of {s.slot.label}" for s in slots if s.counts.mixed_users]
    evidence = [
        "; ".join(swaps) if swaps else "no version change in the window",
        (", ".join(mixed) + " were also seen in another variant") if mixed else "no user was seen in two variants",
        "; ".join(f.message for f in errors) if errors else "no variant has a high error rate",
        "not visible in these tables",
    ]
    causes = tuple(f"{cause}: {seen}" for cause, seen in zip(SRM_CAUSES, evidence, strict=True))
    return [Flag(FlagKind.SRM, message, causes=causes)]


def _quiet_flags(experiment: Experiment, window: Window, slots: Sequence[SlotStatus]) -> list[Flag]:
    if experiment.status != "active" or window.until - window.since < MIN_QUIET_WINDOW:
        return []
    if any(s.counts.requests for s in slots):
        return []
    return [Flag(FlagKind.NO_TRAFFIC, f"active, but no request from {iso(window.since)} to {iso(window.until)}: "
                                      "is the public id in the gateway's membership key (`expctl cache check`)?")]


_STOPPED = {
    "paused": ("after it was paused", "the gateway should answer 404"),
    "completed": ("after it was completed", "the gateway should not route it"),
    "draft": ("to a draft", "the gateway never routes one"),
}


def _stopped_flags(experiment: Experiment, slots: Sequence[SlotStatus]) -> list[Flag]:
    stopped = sum(s.counts.stopped_requests for s in slots)
    if not stopped:
        return []
    what, expected = _STOPPED.get(experiment.status, ("while stopped", "the gateway should not route it"))
    since = experiment.routing_stopped_at if experiment.status != "draft" else None
    when = f" (by {iso(since)})" if since is not None else ""
    last = max((s.counts.last_at for s in slots if s.counts.last_at is not None), default=None)
    tail = f", the last at {iso(last)}" if last is not None else ""
    return [Flag(FlagKind.TRAFFIC_WHILE_STOPPED, f"{stopped} request(s) {what}{when}{tail}: {expected}")]


def _error_flags(slots: Sequence[SlotStatus]) -> list[Flag]:
    flags = []
    for status in slots:
        others = combine(o.counts for o in slots if o is not status)
        if others.requests < ERROR_MIN_REQUESTS or others.error_rate is None:
            continue
        for version, counts in status.versions:
            rate = counts.error_rate
            if counts.requests < ERROR_MIN_REQUESTS or rate is None:
                continue
            if rate >= ERROR_RATIO * others.error_rate and rate - others.error_rate >= ERROR_MARGIN:
                flags.append(Flag(
                    FlagKind.HIGH_ERROR_RATE,
                    f"{status.slot.label} version {_short(version.id)}: error rate {rate:.1%} "
                    f"({counts.errors}/{counts.requests}) against {others.error_rate:.1%} for the other variants",
                    status.slot.label, version.id))
    return flags


def _stale_flags(slots: Sequence[SlotStatus]) -> list[Flag]:
    return [
        Flag(FlagKind.STALE_VERSION,
             f"{counts.stale_requests} request(s) to {status.slot.label} version {_short(version.id)} after "
             f"{iso(version.superseded_at)}, when a newer version replaced it (an old routing cache?)",
             status.slot.label, version.id)
        for status in slots for version, counts in status.versions
        if counts.stale_requests and version.superseded_at is not None
    ]


def _short(version_id: str) -> str:
    return version_id[:8]
