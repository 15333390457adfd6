"""The baseline an apply is measured against: a bare batched insert of the rows it creates.

`executemany_insert` is psycopg's `executemany` in pipeline mode (one statement per table, every
row streamed without waiting for replies, one sync at the end); `copy_insert` is one COPY per
table. Both connect, write the four tables and commit; the rows are built beforehand (with each
api key encrypted under its own nonce, as `expctl` does), so only the database work is timed.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.generate import (
    BINDING_COLUMNS,
    EXPERIMENT_COLUMNS,
    VARIANT_COLUMNS,
    VERSION_COLUMNS,
    Rows,
    copy_rows,
)

_TABLES = (
    ("model_experiment", EXPERIMENT_COLUMNS, "experiments"),
    ("expctl_binding", BINDING_COLUMNS, "bindings"),
    ("model_experiment_variant", VARIANT_COLUMNS, "variants"),
    ("model_experiment_variant_version", VERSION_COLUMNS, "versions"),
)


def executemany_insert(url: str, data: Rows) -> float:
    """Seconds to connect, insert every row with pipelined executemany, and commit."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for table, columns, attr in _TABLES:
            placeholders = ", ".join(["%s"] * len(columns))
            rows: list[tuple[Any, ...]] = getattr(data, attr)
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
        conn.commit()
    return time.perf_counter() - start


def copy_insert(url: str, data: Rows) -> float:
    """Seconds to connect, COPY every row in, and commit."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        copy_rows(conn, data)
        conn.commit()
    return time.perf_counter() - start
