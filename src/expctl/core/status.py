"""Observed traffic per experiment: the inputs `expctl status` reads, windows and counts — pure core.

The adapter reads a catalog (experiments, variant slots and every version of each) and the
aggregated request rows; this module decides which versions are current and when each was
superseded, which window each experiment is observed over, and holds the counts. The verdicts
(split, SRM, health flags) are in `expctl.core.status_report`. See docs/design.md#observed-traffic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from expctl.core.errors import ConfigError

ROUTED = ("active", "paused")
# A window is never empty of meaning: with no current version to start from, look back this far.
FALLBACK_WINDOW = timedelta(hours=24)
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Version:
    """One `model_experiment_variant_version` row (never its upstream or key): when it took
    effect, when the next version replaced it (None while none has), and whether it is current."""

    id: str
    effective_at: datetime
    superseded_at: datetime | None
    current: bool


@dataclass(frozen=True)
class Slot:
    """A variant slot (`model_experiment_variant` row) and its versions, oldest first."""

    id: str
    label: str
    weight: int
    versions: tuple[Version, ...]

    @property
    def current(self) -> Version | None:
        return next((v for v in self.versions if v.current), None)


@dataclass(frozen=True)
class Experiment:
    id: str
    title: str
    public_model_id: str
    status: str
    archived: bool
    managed_name: str | None
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime
    slots: tuple[Slot, ...]  # in ascending id order, as the gateway walks them

    @property
    def display_name(self) -> str:
        return self.managed_name or self.title

    @property
    def routing_stopped_at(self) -> datetime | None:
        """Since when the gateway should route nothing here: a draft never routed, a completed one
        since `ended_at`; a paused one since the pause, which the rows date no later than
        `updated_at` (so requests after it are certainly after the pause). None while active."""
        if self.status == "completed":
            return self.ended_at or self.updated_at
        if self.status == "paused":
            return self.updated_at
        if self.status == "draft":
            return datetime.min.replace(tzinfo=UTC)
        return None


@dataclass(frozen=True)
class VersionRow:
    """A version as the catalog query returns it."""

    id: str
    variant_id: str
    effective_at: datetime


def versions_of(rows: Sequence[VersionRow], now: datetime) -> tuple[Version, ...]:
    """One slot's versions, oldest first: the current one is the newest effective at `now` (ties
    broken by the greater id, docs/design.md#gateway-tables); each is superseded when the next
    one takes effect."""
    ordered = sorted(rows, key=lambda r: (r.effective_at, r.id))
    effective = [r for r in ordered if r.effective_at <= now]
    current_id = effective[-1].id if effective else None
    return tuple(
        Version(row.id, _utc(row.effective_at),
                _utc(ordered[i + 1].effective_at) if i + 1 < len(ordered) else None, row.id == current_id)
        for i, row in enumerate(ordered)
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------- windows

@dataclass(frozen=True)
class When:
    """A `--since`/`--until` value: a moment, or a duration before now."""

    moment: datetime | None = None
    ago: timedelta | None = None

    def resolve(self, now: datetime) -> datetime:
        return self.moment if self.moment is not None else now - (self.ago or timedelta())


def parse_when(text: str) -> When:
    """`24h`, `90m`, `7d`, `2w`, `1d12h` (a duration before now), or an ISO 8601 date or time
    (`2026-11-09`, `2026-11-09T12:00:00Z`; without a zone it is UTC)."""
    value = text.strip()
    if re.fullmatch(r"(\d+\s*[smhdw]\s*)+", value):
        total = timedelta()
        for amount, unit in _DURATION.findall(value):
            total += timedelta(**{_UNITS[unit]: int(amount)})
        return When(ago=total)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ConfigError(f"not a duration (24h, 7d) or an ISO 8601 time (2026-11-09T12:00:00Z): {text[:40]!r}"
                          ) from None
    return When(moment=_utc(moment))


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    # True when `since` is the default: when the experiment's current versions took effect.
    default_since: bool


def window_of(experiment: Experiment, since: When | None, until: When | None, now: datetime) -> Window:
    """The experiment's window: `since` given, else since its newest current version took effect
    (the configuration now served), else `FALLBACK_WINDOW` back from the end; ends at `until` or now."""
    end = until.resolve(now) if until is not None else now
    if since is not None:
        start = since.resolve(now)
        if start >= end:
            raise ConfigError(f"the window is empty: --since {iso(start)} is not before its end {iso(end)}")
        return Window(start, end, False)
    starts = [s.current.effective_at for s in experiment.slots if s.current is not None]
    return Window(max(starts) if starts else end - FALLBACK_WINDOW, end, True)


@dataclass(frozen=True)
class Target:
    """One version to count requests of, over its experiment's window (the traffic query's input)."""

    version_id: str
    variant_id: str
    experiment_id: str
    since: datetime
    until: datetime
    superseded_at: datetime | None
    stopped_at: datetime | None


def targets(experiments: Sequence[Experiment], windows: Mapping[str, Window]) -> list[Target]:
    return [
        Target(v.id, slot.id, e.id, windows[e.id].since, windows[e.id].until, v.superseded_at, e.routing_stopped_at)
        for e in experiments for slot in e.slots for v in slot.versions
    ]


# ---------------------------------------------------------------- counts

@dataclass(frozen=True)
class Counts:
    """Aggregated requests of one version, or of one slot over all its versions.

    `users` counts distinct `kilo_user_id` of requests bucketed by user; `anonymous_requests` are
    the requests bucketed by machine or ip, which the tables cannot tell apart (no machine id or
    address is recorded). `mixed_users` are users also seen in another slot of the experiment;
    `stale_requests` arrived after the version was superseded; `stopped_requests` after the
    experiment stopped routing (paused, completed, draft).
    """

    requests: int = 0
    users: int = 0
    anonymous_requests: int = 0
    errors: int = 0
    cost_microdollars: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_hit_tokens: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    stale_requests: int = 0
    stopped_requests: int = 0
    mixed_users: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_record(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "users": self.users,
            "anonymous_requests": self.anonymous_requests,
            "errors": self.errors,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 6),
            "cost_microdollars": self.cost_microdollars,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens,
                       "cache_write": self.cache_write_tokens, "cache_hit": self.cache_hit_tokens},
            "first_request_at": _iso(self.first_at),
            "last_request_at": _iso(self.last_at),
        }


NO_TRAFFIC = Counts()


@dataclass(frozen=True)
class Traffic:
    """What the traffic query returned: counts per version id and per slot (variant) id."""

    versions: Mapping[str, Counts]
    slots: Mapping[str, Counts]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _utc(moment).isoformat().replace("+00:00", "Z")


def iso(moment: datetime) -> str:
    """A UTC time as ISO 8601 with `Z`, as every status output writes times."""
    return _iso(moment) or ""


# ---------------------------------------------------------------- which experiments

def select_experiments(catalog: Sequence[Experiment], selectors: Sequence[str], include_all: bool
                       ) -> list[Experiment]:
    """Without selectors: managed experiments that route (active, paused), or every one with
    `include_all`. A selector is a manifest name, an experiment id, or a public model id; a public
    id selects the experiments routed on it (every one that ever used it with `include_all`).
    A selector that matches nothing is an error. Sorted by name, then id."""
    if not selectors:
        chosen = [e for e in catalog if include_all or (e.managed_name is not None and e.status in ROUTED)]
        return sorted(chosen, key=_order)
    picked: dict[str, Experiment] = {}
    for selector in selectors:
        wanted = selector.strip().lower()
        matches = [e for e in catalog if wanted in (e.managed_name, e.id.lower())
                   or (e.public_model_id == wanted and (include_all or e.status in ROUTED))]
        if not matches:
            raise ConfigError(f"no experiment is named {selector[:80]!r}, has that id, or routes that public model id"
                              + ("" if include_all else " (add --all for completed, draft and unrouted ones)"))
        picked.update((e.id, e) for e in matches)
    return sorted(picked.values(), key=_order)


def _order(experiment: Experiment) -> tuple[str, str]:
    return experiment.display_name, experiment.id
