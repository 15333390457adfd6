"""`cache check` and `cache refresh` with the per-id routing keys of routed ids (gateway profile 2026-05), on the
suite's real PostgreSQL and Redis: a corrupt value is drift, `cache refresh` deletes it, and the
check stays one round trip per Redis target whatever the number of ids."""

from __future__ import annotations

import pytest
import redis

from expctl.adapters import cache
from tests.test_roundtrips import counting
from tests.workspace import Workspace, manifest

PREFIX = "ai-gateway.model-experiments:by-public-id:"


@pytest.fixture(autouse=True)
def _gateway_2026_05(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-id keys exist only for the 2026-05 gateway (the 2026-11 one reads the membership key only)."""
    monkeypatch.setenv("EXPCTL_GATEWAY_PROFILE", "2026-05")


def routed(ws: Workspace, *ids: str) -> None:
    """One active experiment per public id, applied, Redis fresh."""
    ws.write(*(manifest(f"exp-{i}", "active", public_id=pid) for i, pid in enumerate(ids)))
    applied = ws.reconcile()
    assert applied.code == 0, applied.err
    assert ws.expctl("cache", "check").code == 0


@pytest.mark.parametrize("value", [b"not json", b"{", b"42", b'"a string"', b"true", b"NaN", b"[1, NaN]",
                                   b"\xff\xfe", b"", b"[" * 100_000])
def test_a_corrupt_per_id_value_of_a_routed_id_is_drift_and_refresh_deletes_it(ws: Workspace, value: bytes) -> None:
    routed(ws, "preview/x", "preview/y")
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set(PREFIX + "preview/y", value)
        client.set(PREFIX + "preview/x", b'{"experiment": "cached lookup"}')  # valid: left alone
        check = ws.expctl("cache", "check")
        assert check.code == 2, (check.out, check.err)
        assert 'per-id routing key of "preview/y" is corrupt (not a JSON object, array or null)' in check.out
        assert '"preview/x"' not in check.out
        refreshed = ws.expctl("cache", "refresh")
        assert refreshed.code == 0, refreshed.err
        assert client.get(PREFIX + "preview/y") is None
    assert ws.expctl("cache", "check").code == 0


def test_a_per_id_key_of_another_redis_type_is_drift(ws: Workspace) -> None:
    routed(ws, "preview/x")
    with redis.Redis.from_url(ws.redis_url) as client:
        client.hset(PREFIX + "preview/x", "field", "value")
        check = ws.expctl("cache", "check")
        assert check.code == 2 and 'per-id routing key of "preview/x" is corrupt (not a string value)' in check.out
        assert ws.expctl("cache", "refresh").code == 0
        assert not client.exists(PREFIX + "preview/x")
    assert ws.expctl("cache", "check").code == 0


def test_valid_missing_and_unrouted_per_id_keys_are_not_drift(ws: Workspace) -> None:
    ws.write(manifest("exp-0", "active", public_id="preview/x"), manifest("exp-1", "active", public_id="preview/y"),
             manifest("exp-2", "active", public_id="preview/z"), manifest("drafted", public_id="preview/draft"))
    assert ws.reconcile().code == 0
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set(PREFIX + "preview/x", b'{"id": "e1", "variants": [{"label": "a", "weight": 1}]}')
        client.set(PREFIX + "preview/y", b"null")  # a cached "no experiment"
        # preview/z: no per-id key at all (the gateway fills it on its next lookup)
        client.set(PREFIX + "preview/draft", b"garbage the gateway never reads: not routed")
        client.set(PREFIX + "preview/gone", b"garbage")
    check = ws.expctl("cache", "check")
    assert check.code == 0, check.out


def test_hostile_public_ids_are_escaped_in_the_drift_line(ws: Workspace) -> None:
    hostile = "preview/x\x1b[31m\u202e"
    routed(ws, hostile)
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set(PREFIX + hostile, b"corrupt")
    check = ws.expctl("cache", "check")
    assert check.code == 2 and "\x1b" not in check.out and "\u202e" not in check.out, check.out
    assert 'per-id routing key of "preview/x\\u001b[31m\\u202e" is corrupt' in check.out


def test_cache_check_is_one_round_trip_per_target_whatever_the_ids(ws: Workspace,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    trips = []
    for n in (2, 40):
        routed(ws, *(f"preview/m{i:03d}" for i in range(n)))
        with counting(monkeypatch) as counted:
            check = ws.expctl("cache", "check", "--redis-url", ws.redis_url)  # two targets
        assert check.code == 0, check.out
        trips.append(counted.redis)
    # Each target: the connection's handshake, then one pipeline of every GET.
    assert trips[0] == trips[1] <= 12, trips


def test_the_rule_for_per_id_values() -> None:
    for good in (None, b"null", b"{}", b"[]", b'{"a": [1, 2.5, "\\ud800"]}', '{"x": 1}'):
        assert cache.routing_value_ok(good), good
    for bad in (b"", b"1", b'"s"', b"false", b"Infinity", b'{"a": -Infinity}', b"{'a': 1}", b"\xc3\x28",
                b"[" * 5000 + b"]" * 5000):
        assert not cache.routing_value_ok(bad), bad
