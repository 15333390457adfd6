"""The cache outbox: public ids whose Redis routing key must be dropped, kept until it is done.

Queued in the same transaction as the apply that changed their routing, so a Redis failure after
the commit never loses an invalidation: the next reconcile or `cache refresh` drains it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, Text, any_, bindparam, cast, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from expctl.adapters.store.tables import expctl_cache_outbox


def _id_array(public_ids: list[str]) -> ColumnElement[Any]:
    # One array parameter: one statement whatever the number of ids (no per-row executemany).
    return cast(bindparam(None, public_ids, type_=ARRAY(Text)), ARRAY(Text))


def queue_cache_invalidations(conn: Connection, public_ids: Iterable[str]) -> None:
    ids = sorted(set(public_ids))
    if ids:
        rows = select(func.unnest(_id_array(ids)))
        conn.execute(insert(expctl_cache_outbox).from_select(["public_model_id"], rows).on_conflict_do_nothing())


def pending_cache_invalidations(conn: Connection) -> list[str]:
    return list(conn.execute(select(expctl_cache_outbox.c.public_model_id)).scalars())


def drain_cache_invalidations(conn: Connection, public_ids: Iterable[str]) -> None:
    ids = list(public_ids)
    if ids:
        conn.execute(delete(expctl_cache_outbox).where(expctl_cache_outbox.c.public_model_id == any_(_id_array(ids))))
