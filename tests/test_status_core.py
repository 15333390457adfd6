"""The pure side of `expctl status`: versions, windows, selection, the SRM and health rules, rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from expctl.core.errors import ConfigError
from expctl.core.render.status_json import load_status_schema
from expctl.core.render.status_text import bar, observed_line
from expctl.core.status import (
    Counts,
    Experiment,
    Slot,
    Traffic,
    VersionRow,
    When,
    parse_when,
    select_experiments,
    versions_of,
    window_of,
)
from expctl.core.status_report import (
    ERROR_MIN_REQUESTS,
    FlagKind,
    StatusReport,
    experiment_status,
)

T0 = datetime(2026, 11, 10, tzinfo=UTC)
ID_A, ID_B = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"


def _slot(slot_id: str, label: str, weight: int = 1, effective: datetime = T0 - timedelta(days=3)) -> Slot:
    return Slot(slot_id, label, weight, versions_of([VersionRow(f"{slot_id[:-1]}f", slot_id, effective)], T0))


def _experiment(status: str = "active", managed: str | None = "exp", slots: tuple[Slot, ...] | None = None,
                **extra: object) -> Experiment:
    fields: dict[str, object] = {
        "id": "00000000-0000-4000-8000-000000000001", "title": "Exp", "public_model_id": "preview/exp",
        "status": status, "archived": False, "managed_name": managed, "started_at": None, "ended_at": None,
        "updated_at": T0 - timedelta(days=5),
        "slots": slots if slots is not None else (_slot(ID_A, "control"), _slot(ID_B, "treatment")),
    }
    fields.update(extra)
    return Experiment(**fields)  # type: ignore[arg-type]


def _window(experiment: Experiment) -> object:
    return window_of(experiment, When(ago=timedelta(days=1)), None, T0)


def _status(experiment: Experiment, per_slot: dict[str, Counts]):  # type: ignore[no-untyped-def]
    versions = {s.versions[-1].id: per_slot[s.id] for s in experiment.slots if s.id in per_slot}
    return experiment_status(experiment, window_of(experiment, When(ago=timedelta(days=1)), None, T0),
                             Traffic(versions, per_slot))


def test_parse_when() -> None:
    assert parse_when("24h") == When(ago=timedelta(hours=24))
    assert parse_when("1d12h") == When(ago=timedelta(days=1, hours=12))
    assert parse_when("2w").resolve(T0) == T0 - timedelta(weeks=2)
    assert parse_when("2026-11-09").moment == datetime(2026, 11, 9, tzinfo=UTC)
    assert parse_when("2026-11-09T12:00:00+02:00").moment == datetime(2026, 11, 9, 10, tzinfo=UTC)
    assert parse_when("2026-11-09T12:00:00Z").moment == datetime(2026, 11, 9, 12, tzinfo=UTC)
    with pytest.raises(ConfigError, match="not a duration"):
        parse_when("yesterday")


def test_current_version_and_supersession() -> None:
    rows = [VersionRow("b", "s", T0 - timedelta(days=2)), VersionRow("a", "s", T0 - timedelta(days=2)),
            VersionRow("c", "s", T0 + timedelta(days=1)), VersionRow("0", "s", T0 - timedelta(days=9))]
    versions = versions_of(rows, T0)
    assert [v.id for v in versions] == ["0", "a", "b", "c"]
    # Ties on effective_at go to the greater id; a version not yet effective is not current.
    assert [v.id for v in versions if v.current] == ["b"]
    assert versions[0].superseded_at == T0 - timedelta(days=2)
    assert versions[2].superseded_at == T0 + timedelta(days=1) and versions[3].superseded_at is None


def test_default_window_starts_at_the_newest_current_version() -> None:
    swapped = _slot(ID_B, "treatment", effective=T0 - timedelta(hours=5))
    experiment = _experiment(slots=(_slot(ID_A, "control"), swapped))
    window = window_of(experiment, None, When(moment=T0), T0 + timedelta(days=3))
    assert (window.since, window.until, window.default_since) == (T0 - timedelta(hours=5), T0, True)
    with pytest.raises(ConfigError, match="window is empty"):
        window_of(experiment, When(moment=T0), When(ago=timedelta(hours=1)), T0)
    no_versions = _experiment(slots=(Slot(ID_A, "control", 1, ()),))
    assert window_of(no_versions, None, None, T0).since == T0 - timedelta(hours=24)


def test_selection() -> None:
    managed = _experiment()
    completed = _experiment(status="completed", id="00000000-0000-4000-8000-000000000002", managed_name="old")
    unmanaged = _experiment(managed=None, id="00000000-0000-4000-8000-000000000003", public_model_id="preview/ui")
    catalog = [unmanaged, completed, managed]
    assert select_experiments(catalog, (), False) == [managed]
    assert [e.display_name for e in select_experiments(catalog, (), True)] == ["Exp", "exp", "old"]
    assert select_experiments(catalog, ("old",), False) == [completed]  # a name selects any status
    assert select_experiments(catalog, ("preview/exp",), False) == [managed]  # a public id: routed ones only
    assert len(select_experiments(catalog, ("preview/exp",), True)) == 2
    with pytest.raises(ConfigError, match="add --all"):
        select_experiments(catalog, ("nope",), False)


def test_srm_verdicts() -> None:
    even = _status(_experiment(), {ID_A: Counts(requests=600, users=500), ID_B: Counts(requests=600, users=500)})
    assert even.srm.verdict == "ok" and even.srm.p_value == 1.0 and not even.flags
    skewed = _status(_experiment(), {ID_A: Counts(requests=900, users=560), ID_B: Counts(requests=600, users=440)})
    assert skewed.srm.verdict == "mismatch" and skewed.srm.p_value is not None and skewed.srm.p_value < 0.001
    (flag,) = skewed.flags
    assert flag.kind is FlagKind.SRM and len(flag.causes) == 4
    few = _status(_experiment(), {ID_A: Counts(requests=5, users=8), ID_B: Counts(requests=1, users=1)})
    assert few.srm.verdict == "too_few_units"
    single = _status(_experiment(slots=(_slot(ID_A, "only"),)), {ID_A: Counts(requests=5, users=5)})
    assert single.srm.verdict == "not_applicable"


@pytest.mark.parametrize(("other_errors", "errors", "flagged"), [
    (10, 17, False),  # others 1.0%, this one 2.8%: twice as high, but not 2 points above
    (10, 19, True),  # 3.2%: both
    (1, 9, False),  # others 0.1%, this one 1.5%: fifteen times, but 1.4 points
    (100, 90, False),  # others 10%, this one 15%: 5 points, but 1.5 times
    (100, 150, True),  # 25%
])
def test_error_rate_rule(other_errors: int, errors: int, flagged: bool) -> None:
    others = Counts(requests=1000, users=500, errors=other_errors)
    counts = Counts(requests=ERROR_MIN_REQUESTS * 6, users=500, errors=errors)
    status = _status(_experiment(), {ID_A: others, ID_B: counts})
    kinds = [f.kind for f in status.flags]
    assert (FlagKind.HIGH_ERROR_RATE in kinds) is flagged
    if flagged:
        assert status.flags[-1].variant == "treatment" and status.flags[-1].version_id == ID_B[:-1] + "f"


def test_error_rate_needs_enough_requests() -> None:
    status = _status(_experiment(), {ID_A: Counts(requests=1000, users=500, errors=0),
                                     ID_B: Counts(requests=ERROR_MIN_REQUESTS - 1, users=90, errors=90)})
    assert FlagKind.HIGH_ERROR_RATE not in [f.kind for f in status.flags]


def test_quiet_stopped_and_stale() -> None:
    assert [f.kind for f in _status(_experiment(), {}).flags] == [FlagKind.NO_TRAFFIC]
    assert _status(_experiment(status="paused"), {}).flags == ()
    paused = _status(_experiment(status="paused"), {ID_A: Counts(requests=3, users=3, stopped_requests=3)})
    assert [f.kind for f in paused.flags] == [FlagKind.TRAFFIC_WHILE_STOPPED]
    assert "404" in paused.flags[0].message
    swapped = Slot(ID_B, "treatment", 1, versions_of([
        VersionRow("v1", ID_B, T0 - timedelta(days=3)), VersionRow("v2", ID_B, T0 - timedelta(hours=3))], T0))
    experiment = _experiment(slots=(_slot(ID_A, "control"), swapped))
    traffic = Traffic({"v1": Counts(requests=4, users=2, stale_requests=4)}, {ID_B: Counts(requests=4, users=2)})
    status = experiment_status(experiment, window_of(experiment, None, None, T0), traffic)
    assert [(f.kind, f.version_id) for f in status.flags] == [(FlagKind.STALE_VERSION, "v1")]
    assert [v.id for v, _ in status.slots[1].versions] == ["v1", "v2"]  # traffic or current


def test_record_validates_and_renders_one_line() -> None:
    status = _status(_experiment(), {ID_A: Counts(requests=900, users=560, errors=9),
                                     ID_B: Counts(requests=600, users=440, anonymous_requests=4)})
    record = StatusReport((status,), "2026-11").to_record()
    jsonschema.Draft202012Validator(load_status_schema(), format_checker=jsonschema.FormatChecker()).validate(record)
    assert record["summary"] == {"experiments": 1, "flagged": 1, "flags": {
        "srm": 1, "high_error_rate": 0, "no_traffic": 0, "traffic_while_stopped": 0, "stale_version": 0}}
    line = observed_line(record["experiments"][0])
    assert line == ("since 2026-11-09T00:00:00Z: 1,500 requests, split control 56.0% / treatment 44.0% "
                    "(declared 50% / 50%) over 1000 users, SRM MISMATCH (p = 0.00015), errors control 1.0% / "
                    "treatment 0.0%; flags: srm")


def test_bar_marks_the_declared_share() -> None:
    assert bar(0.5, 0.5, 10) == "█████|░░░░░"
    assert bar(None, 0.25, 8) == "░░|░░░░░░"
    assert bar(1.0, 1.0, 4) == "████|"
