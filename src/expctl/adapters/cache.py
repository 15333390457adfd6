"""The Redis keys the gateway reads (docs/design.md#redis-keys): refresh after commit, and drift checks.

Redis never holds a key or secret: only public model ids. Each target gets one pipeline per
command, so a refresh or a check is one round trip per Redis whatever the number of ids. URLs are
shown only through `redact_url`, and Redis errors only by their type.

A per-id routing key (`by-public-id:{id}`) is the gateway's cache of its own lookup, in a format
expctl does not own. `cache check` reads the one of every routed id and calls it corrupt (drift)
when the key holds another Redis type, or a value that is not JSON or is JSON but not an object, an
array or null (RFC 8259, without NaN or Infinity). A missing per-id key is not drift: the gateway
fills it on its next lookup. Keys of ids that are not routed are never read, as the gateway never
looks them up. `cache refresh` deletes the per-id key of every routed id.

Per-id keys exist only for gateway profile 2026-05 (`per_id_keys`). Under 2026-11 the gateway no
longer reads them, so expctl never reads, writes or deletes them: `check` compares the membership
only and `refresh` writes the membership only (whatever ids it is handed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from expctl.core.errors import ConfigError, ConnectionFailed
from expctl.core.redact import redact_url

SOCKET_TIMEOUT_S = 5.0
DEFAULT_PREFIX = "ai-gateway.model-experiments:"

# A GET's outcome: the raw value (None when the key is missing) and whether the key holds a string.
Fetched = tuple[bytes | str | None, bool]


def membership_key(prefix: str) -> str:
    return f"{prefix}experimented-public-ids"


def routing_key(prefix: str, public_model_id: str) -> str:
    return f"{prefix}by-public-id:{public_model_id}"


def encode_membership(ids: Sequence[str]) -> str:
    # Compact JSON like the gateway's JSON.stringify, so byte-equal values mean no drift.
    return json.dumps(list(ids), separators=(",", ":"), ensure_ascii=False)


def decode_membership(raw: bytes | str | None) -> tuple[tuple[str, ...] | None, bool]:
    """(ids, ok): ids None when missing; ok False when the value is not a JSON array of strings."""
    if raw is None:
        return None, True
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, False
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None, False
    return tuple(value), True


def routing_value_ok(raw: bytes | str | None) -> bool:
    """Whether a per-id routing value may be the gateway's (see the module docstring for the rule)."""
    if raw is None:
        return True
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, NaN/Infinity, nested beyond reason
        return False
    return value is None or isinstance(value, (dict, list))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class Drift:
    url: str
    problem: str


class Cache:
    """One or more Redis targets (gateway regions) sharing a key prefix.

    Every URL is parsed when the cache is made, so a malformed one stops a command before it
    touches PostgreSQL rather than after a commit.
    """

    def __init__(self, urls: Sequence[str], prefix: str = DEFAULT_PREFIX, *, per_id_keys: bool = True) -> None:
        self.urls = list(urls)
        self.prefix = prefix
        # The gateway profile's `per_id_keys`: False (2026-11) leaves every `by-public-id:` key alone.
        self.per_id_keys = per_id_keys
        for url in self.urls:
            self._client(url).close()

    def _client(self, url: str) -> redis.Redis:
        try:
            client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S,
                                          socket_connect_timeout=SOCKET_TIMEOUT_S)
            pool = client.connection_pool
            # An unknown query option is only refused when a connection object is made: make one
            # now (it does not connect). Not chained: redis-py's messages quote parts of the URL.
            pool.connection_class(**pool.connection_kwargs)
        except (ValueError, TypeError):
            raise ConfigError(f"not a valid Redis URL: {redact_url(url)}") from None
        return client

    def _get_all(self, client: redis.Redis, keys: Sequence[str]) -> list[Fetched]:
        """GET of every key in one round trip. A key of another Redis type reads as (None, False):
        a corrupt value (drift that a refresh overwrites), not an unreachable Redis."""
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        fetched: list[Fetched] = []
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, redis.RedisError):
                if not _wrong_type(result):
                    raise result
                fetched.append((None, False))
            else:
                fetched.append((result, True))
        return fetched

    def read_membership(self) -> tuple[tuple[str, ...] | None, bool]:
        """The first target's membership value (what plans show as "before")."""
        if not self.urls:
            return None, True
        url = self.urls[0]
        try:
            with self._client(url) as client:
                [(raw, same_type)] = self._get_all(client, [membership_key(self.prefix)])
        except redis.RedisError as err:
            raise ConnectionFailed(f"cannot read Redis at {redact_url(url)}: {type(err).__name__}") from None
        return decode_membership(raw) if same_type else (None, False)

    def check(self, expected: Sequence[str]) -> list[Drift]:
        """Drift of every target: its membership against `expected` (the routed ids, sorted) and the
        per-id routing keys of those ids that hold corrupt values."""
        drifts = []
        checked = list(expected) if self.per_id_keys else []
        keys = [membership_key(self.prefix), *(routing_key(self.prefix, pid) for pid in checked)]
        for url in self.urls:
            shown = redact_url(url)
            try:
                with self._client(url) as client:
                    fetched = self._get_all(client, keys)
            except redis.RedisError as err:
                drifts.append(Drift(shown, f"unreachable ({type(err).__name__})"))
                continue
            problem = _membership_problem(fetched[0], expected)
            if problem:
                drifts.append(Drift(shown, problem))
            drifts += [Drift(shown, f"per-id routing key of {json.dumps(pid)} is corrupt ({why}); "
                                    "`expctl cache refresh` deletes it")
                       for pid, (raw, same_type) in zip(checked, fetched[1:], strict=True)
                       if (why := _routing_problem(raw, same_type))]
        return drifts

    def refresh(self, membership: Sequence[str], changed_ids: Iterable[str]) -> list[str]:
        """Deletes per-id routing keys (only with `per_id_keys`) and writes the membership where it differs.

        Returns the URLs that failed (password hidden) with the kind of error; an empty list means
        every target is fresh. A membership key of another Redis type is overwritten (SET replaces it).
        """
        failed = []
        stale_keys = sorted({routing_key(self.prefix, pid) for pid in changed_ids}) if self.per_id_keys else []
        value = encode_membership(membership).encode()
        for url in self.urls:
            try:
                with self._client(url) as client:
                    pipe = client.pipeline(transaction=True)
                    if stale_keys:
                        pipe.delete(*stale_keys)
                    pipe.get(membership_key(self.prefix))
                    results = pipe.execute(raise_on_error=False)
                    for result in results:
                        if isinstance(result, redis.RedisError) and not _wrong_type(result):
                            raise result
                    if results[-1] != value:
                        client.set(membership_key(self.prefix), value)
            except redis.RedisError as err:
                failed.append(f"{redact_url(url)} ({type(err).__name__})")
        return failed


def _membership_problem(fetched: Fetched, expected: Sequence[str]) -> str | None:
    raw, same_type = fetched
    ids, ok = decode_membership(raw) if same_type else (None, False)
    if not ok:
        return "membership value is corrupt (not a JSON array of strings)"
    if ids is None:
        return "membership key is missing"
    if list(ids) != list(expected) or _as_bytes(raw) != encode_membership(expected).encode():
        return f"membership is {list(ids)}, expected {list(expected)}"
    return None


def _routing_problem(raw: bytes | str | None, same_type: bool) -> str | None:
    if not same_type:
        return "not a string value"
    if not routing_value_ok(raw):
        return "not a JSON object, array or null"
    return None


def _as_bytes(raw: bytes | str | None) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


def _wrong_type(err: redis.RedisError) -> bool:
    return str(err).startswith("WRONGTYPE")
