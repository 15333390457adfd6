"""The cache outbox: public ids whose Redis routing key must be dropped, kept until it is done.

Queued in the same transaction as the apply that changed their routing, so a Redis failure after
the commit never loses an invalidation: the next reconcile or `cache refresh` drains it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert

from expctl.store.tables import expctl_cache_outbox


def queue_cache_invalidations(conn: Connection, public_ids: Iterable[str]) -> None:
    rows = [{"public_model_id": pid} for pid in sorted(set(public_ids))]
    if rows:
        conn.execute(insert(expctl_cache_outbox).on_conflict_do_nothing(), rows)


def pending_cache_invalidations(conn: Connection) -> list[str]:
    return list(conn.execute(select(expctl_cache_outbox.c.public_model_id)).scalars())


def drain_cache_invalidations(conn: Connection, public_ids: Iterable[str]) -> None:
    conn.execute(delete(expctl_cache_outbox).where(expctl_cache_outbox.c.public_model_id.in_(list(public_ids))))
