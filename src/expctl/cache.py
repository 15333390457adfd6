"""The Redis keys the gateway reads (DESIGN §1.5): refresh after commit, and drift checks.

Redis never holds a key or secret: only public model ids. Writes go through one pipeline per
target, so a refresh is one round trip per Redis whatever the number of ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis

from expctl.errors import ConnectionFailed
from expctl.settings import DEFAULT_REDIS_PREFIX as DEFAULT_PREFIX

SOCKET_TIMEOUT_S = 5.0


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


def safe_redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Drift:
    url: str
    problem: str


class Cache:
    """One or more Redis targets (gateway regions) sharing a key prefix."""

    def __init__(self, urls: Sequence[str], prefix: str = DEFAULT_PREFIX) -> None:
        self.urls = list(urls)
        self.prefix = prefix

    def _client(self, url: str) -> redis.Redis:
        return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)

    def _get_membership(self, client: redis.Redis) -> tuple[bytes | str | None, bool]:
        """The raw membership value; (None, False) when the key holds another Redis type, which is a
        corrupt value (drift that a refresh overwrites), not an unreachable Redis."""
        try:
            raw: bytes | str | None = client.get(membership_key(self.prefix))
        except redis.ResponseError as err:
            if _wrong_type(err):
                return None, False
            raise
        return raw, True

    def read_membership(self) -> tuple[tuple[str, ...] | None, bool]:
        """The first target's membership value (what plans show as "before")."""
        if not self.urls:
            return None, True
        url = self.urls[0]
        try:
            with self._client(url) as client:
                raw, same_type = self._get_membership(client)
        except redis.RedisError as err:
            raise ConnectionFailed(f"cannot read Redis at {safe_redis_url(url)}: {type(err).__name__}") from None
        return decode_membership(raw) if same_type else (None, False)

    def check(self, expected: Sequence[str]) -> list[Drift]:
        drifts = []
        for url in self.urls:
            try:
                with self._client(url) as client:
                    raw, same_type = self._get_membership(client)
            except redis.RedisError as err:
                drifts.append(Drift(safe_redis_url(url), f"unreachable ({type(err).__name__})"))
                continue
            ids, ok = decode_membership(raw) if same_type else (None, False)
            if not ok:
                drifts.append(Drift(safe_redis_url(url), "membership value is corrupt (not a JSON array of strings)"))
            elif ids is None:
                drifts.append(Drift(safe_redis_url(url), "membership key is missing"))
            elif list(ids) != list(expected) or raw != encode_membership(expected).encode():
                drifts.append(Drift(safe_redis_url(url), f"membership is {list(ids)}, expected {list(expected)}"))
        return drifts

    def refresh(self, membership: Sequence[str], changed_ids: Iterable[str]) -> list[str]:
        """Deletes per-id routing keys and writes the membership where it differs.

        Returns the URLs that failed (password hidden) with the kind of error; an empty list means
        every target is fresh. A membership key of another Redis type is overwritten (SET replaces it).
        """
        failed = []
        stale_keys = sorted({routing_key(self.prefix, pid) for pid in changed_ids})
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
                failed.append(f"{safe_redis_url(url)} ({type(err).__name__})")
        return failed


def _wrong_type(err: redis.RedisError) -> bool:
    return str(err).startswith("WRONGTYPE")
