"""expctl.core.lockinfo: how the apply lock's holder names itself and how a waiting run describes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from expctl.core.lockinfo import (
    APPLICATION_NAME_MAX_BYTES,
    LockHolder,
    RunTag,
    application_name,
    describe_holder,
    parse_application_name,
    timeout_message,
    waiting_message,
)

SINCE = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)


def _holder(name: str, since: datetime | None = SINCE, held_s: float | None = 42.4) -> LockHolder:
    return LockHolder(pid=4242, application_name=name, since=since, held_s=held_s)


def test_a_tag_round_trips_through_the_application_name() -> None:
    tag = RunTag("reconcile", "alice", "1a2b3c4d5e6f7a8b9c0d")
    name = application_name(tag)
    assert name == "expctl|reconcile|1a2b3c4d5e6f|alice"
    assert parse_application_name(name) == RunTag("reconcile", "alice", "1a2b3c4d5e6f")


def test_unknown_actor_and_revision_round_trip_as_none() -> None:
    name = application_name(RunTag("cache refresh", None, None))
    assert name == "expctl|cache refresh||"
    assert parse_application_name(name) == RunTag("cache refresh", None, None)


@pytest.mark.parametrize("actor", ["a" * 200, "jos\u00e9-\u00fcml\u00e4ut-" * 10, "with|pipes|in|it" * 8])
def test_the_name_fits_postgresql_and_survives_its_rules(actor: str) -> None:
    name = application_name(RunTag("reconcile", actor, "f" * 40))
    assert len(name.encode()) <= APPLICATION_NAME_MAX_BYTES
    assert all(" " <= c <= "~" for c in name), "PostgreSQL would turn anything else into '?'"
    parsed = parse_application_name(name)
    assert parsed is not None and parsed.command == "reconcile" and parsed.revision == "f" * 12
    printable = "".join(c if " " <= c <= "~" else "?" for c in actor)
    assert parsed.actor and printable.startswith(parsed.actor), "the actor is what gets cut, from the end"


def test_a_pipe_in_the_command_cannot_shift_the_fields() -> None:
    assert parse_application_name(application_name(RunTag("odd|cmd", "bob", "abc"))) == RunTag("odd cmd", "bob", "abc")


@pytest.mark.parametrize("name", ["", "psql", "expctl", "expctl|", "expctl|only", "pgadmin|a|b|c"])
def test_names_expctl_did_not_write_are_not_tags(name: str) -> None:
    assert parse_application_name(name) is None


def test_an_expctl_holder_is_described_with_every_fact() -> None:
    text = describe_holder(_holder("expctl|reconcile|1a2b3c4d5e6f|alice"))
    assert text == ("expctl reconcile by alice at revision 1a2b3c4d5e6f "
                    "(pid 4242, since 2025-03-01T12:00:05Z (42s))")


def test_since_is_shown_in_utc_whatever_the_session_time_zone() -> None:
    local = SINCE.astimezone(timezone(timedelta(hours=-5)))
    assert "since 2025-03-01T12:00:05Z" in describe_holder(_holder("expctl|plan||", since=local))


def test_missing_facts_are_said_to_be_unknown() -> None:
    text = describe_holder(_holder("expctl|import||", since=None, held_s=None))
    assert text == "expctl import by an unknown actor at an unknown revision (pid 4242, since an unknown time)"


def test_other_holders_are_reported_as_not_expctl() -> None:
    assert describe_holder(_holder("psql")) == (
        "a session that is not expctl (application_name 'psql', pid 4242, since 2025-03-01T12:00:05Z (42s))")
    assert describe_holder(_holder("expctl")).startswith("an expctl run that does not name its command")
    assert describe_holder(None).startswith("a session that could not be identified")


def test_waiting_and_timeout_messages_carry_the_holder_and_the_time() -> None:
    holder = _holder("expctl|apply|abc|carol")
    waiting = waiting_message(holder, 57.6)
    assert waiting.startswith("waiting for the apply lock, held by expctl apply by carol at revision abc")
    assert waiting.endswith("giving up in 58s")
    assert waiting_message(holder, 0.2).endswith("giving up in 1s"), "rounded up: 0s would read as given up"
    assert waiting_message(holder, -0.2).endswith("giving up in 0s")
    timed_out = timeout_message(holder, 60)
    assert timed_out.startswith("another run holds the apply lock: expctl apply by carol at revision abc (pid 4242")
    assert timed_out.endswith("gave up after 60s (--lock-timeout)")
