"""`python -m bench.status`: `expctl status` on millions of generated request rows.

Starts its own throwaway PostgreSQL (`tests.servers.PostgresServer`, durability off) on 127.0.0.1,
creates expctl's tables and the gateway's request tables (`tests.traffic.create_traffic_tables`:
the request table partitioned by created_at, the (variant_version_id, created_at) index), seeds
`--experiments` active managed experiments (two variants; one in five hot-swapped mid-way) and
generates `--rows` request rows with their usage rows in batches of INSERT … SELECT over
generate_series (the indexes are built after the load, then VACUUM ANALYZE), spread over 7 days
and over `--users` users, each user bucketed into one experiment and one variant.

Then it times `expctl status` as a subprocess, the whole process (best of `--repeat`), for one
experiment over the 7 days, one experiment over the last 24 hours, and every experiment over the
7 days and over the last 24 hours; runs each once more under `bench.probe` to count the SQL
statements; and prints the EXPLAIN (ANALYZE, BUFFERS) of the counts query for one experiment.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, text
from tests.servers import PostgresServer
from tests.traffic import create_traffic_tables

from bench.__main__ import EXPCTL, PROBE, REPO, run_process
from expctl.adapters.store.db import connect, init_schema
from expctl.adapters.store.tables import (
    expctl_binding,
    model_experiment,
    model_experiment_variant,
    model_experiment_variant_version,
)
from expctl.adapters.store.traffic import COUNTS_QUERY, WORK_MEM, check_tables, read_catalog
from expctl.core.status import select_experiments, targets, window_of

END = datetime(2026, 11, 10, tzinfo=UTC)
START = END - timedelta(days=7)
SWAP_AT = START + timedelta(days=3, hours=12)
BATCH = 1_000_000

GENERATE = """
WITH usage AS (
    INSERT INTO microdollar_usage (id, kilo_user_id, cost, input_tokens, output_tokens, cache_write_tokens,
                                   cache_hit_tokens, has_error, created_at)
    SELECT gen_random_uuid(), 'user-' || (g * 7919 % :users), 500 + g % 4000, 200 + g % 3000, 50 + g % 900,
           g % 64, g % 512, g % 97 = 0, :start + ((g - 1)::float8 / :rows) * interval '7 days'
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
    RETURNING id, kilo_user_id, created_at
), routed AS (
    SELECT id, created_at, kilo_user_id, (hashtext(kilo_user_id) & 2147483647) % :experiments AS e,
           (hashtext('variant ' || kilo_user_id) & 2147483647) % 2 AS v
    FROM usage
)
INSERT INTO model_experiment_request (usage_id, variant_version_id, allocation_subject, client_request_id,
                                      request_kind, request_body_sha256, was_truncated, created_at)
SELECT id,
       CASE WHEN created_at >= (CAST(:swap_at AS timestamptz[]))[e + 1]
            THEN (CAST(:new AS uuid[]))[e * 2 + v + 1] ELSE (CAST(:old AS uuid[]))[e * 2 + v + 1] END,
       'user', NULL, 'chat_completions', md5(id::text), false, created_at
FROM routed
"""


def _id(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "expctl-bench-status:" + ":".join(map(str, parts))))


def seed_experiments(conn: Connection, count: int) -> dict[str, list[Any]]:
    """`count` active managed experiments; every fifth has its treatment hot-swapped at SWAP_AT.
    Returns the version arrays the generator indexes by experiment and variant."""
    old, new, swap_at = [], [], []
    for e in range(count):
        exp_id = _id("exp", e)
        conn.execute(insert(model_experiment).values(id=exp_id, public_model_id=f"preview/bench-{e:03d}",
                                                     name=f"bench {e}", status="active", started_at=START))
        conn.execute(insert(expctl_binding).values(name=f"bench-{e:03d}", experiment_id=exp_id))
        swapped = e % 5 == 0
        swap_at.append(SWAP_AT if swapped else END + timedelta(days=365))
        for v, label in enumerate(("control", "treatment")):
            variant_id = _id("var", e, v)
            conn.execute(insert(model_experiment_variant).values(id=variant_id, experiment_id=exp_id, label=label,
                                                                 weight=1))
            versions = [(_id("ver", e, v, 0), START - timedelta(days=1))]
            if swapped and label == "treatment":
                versions.append((_id("ver", e, v, 1), SWAP_AT))
            for version_id, effective in versions:
                conn.execute(insert(model_experiment_variant_version).values(
                    id=version_id, variant_id=variant_id, effective_at=effective,
                    upstream={"internal_id": f"bench-{e}-{label}", "base_url": "https://up.example.com/v1"},
                    encrypted_api_key={"iv": "", "data": "", "authTag": ""}))
            old.append(versions[0][0])
            new.append(versions[-1][0])
    return {"old": old, "new": new, "swap_at": swap_at}


def generate(url: str, rows: int, users: int, experiments: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    with connect(url) as conn, conn.begin():
        init_schema(conn)
        create_traffic_tables(conn)
        # Loaded without the secondary index and the primary key, which are built once afterwards.
        conn.execute(text('DROP INDEX "IDX_model_experiment_request_variant_version_created"'))
        conn.execute(text("ALTER TABLE model_experiment_request DROP CONSTRAINT model_experiment_request_pkey"))
        arrays = seed_experiments(conn, experiments)
    began = time.perf_counter()
    for first in range(1, rows + 1, BATCH):
        with connect(url) as conn, conn.begin():
            conn.execute(text(GENERATE), {"users": users, "rows": rows, "start": START, "first": first,
                                          "last": min(first + BATCH - 1, rows), "experiments": experiments, **arrays})
        print(f"  generated {min(first + BATCH - 1, rows):,} rows", file=sys.stderr, flush=True)
    timings["insert_s"] = time.perf_counter() - began
    began = time.perf_counter()
    with connect(url) as conn, conn.begin():
        conn.execute(text("ALTER TABLE model_experiment_request ADD PRIMARY KEY (usage_id, created_at)"))
        conn.execute(text('CREATE INDEX "IDX_model_experiment_request_variant_version_created" '
                          "ON model_experiment_request (variant_version_id, created_at)"))
    timings["index_s"] = time.perf_counter() - began
    began = time.perf_counter()
    with connect(url) as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    timings["vacuum_analyze_s"] = time.perf_counter() - began
    return timings


def explain(url: str, selector: str, since: datetime, until: datetime) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the counts query as `expctl status SELECTOR` sends it."""
    with connect(url) as conn:
        now = check_tables(conn)
        chosen = select_experiments(read_catalog(conn, now), [selector], False)
        windows = {e.id: window_of(e, None, None, now) for e in chosen}
        windows = {k: type(w)(since, until, False) for k, w in windows.items()}
        compiled = COUNTS_QUERY.compile(dialect=conn.dialect)
        params = _params(targets(chosen, windows))
        conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))  # as read_traffic does
        sql = "EXPLAIN (ANALYZE, BUFFERS) " + compiled.string
        result = conn.exec_driver_sql(sql, compiled.construct_params(params))
        return "\n".join(row[0] for row in result)


def _params(items: Sequence[Any]) -> dict[str, Any]:
    return {"version_ids": [t.version_id for t in items], "variant_ids": [t.variant_id for t in items],
            "experiment_ids": [t.experiment_id for t in items], "since": [t.since for t in items],
            "until": [t.until for t in items], "superseded": [t.superseded_at for t in items],
            "stopped": [t.stopped_at for t in items]}


def measure(url: str, args: list[str], repeat: int, workdir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    full = [*args, "--database-url", url, "--format", "json"]
    walls, run = [], None
    for _ in range(repeat):
        run = run_process([*EXPCTL, "status", *full], env, workdir)
        if run.code != 0:
            raise SystemExit(f"expctl status failed ({run.code}): {run.stderr[-2000:]}")
        walls.append(run.wall_s)
    probe_out = workdir / "probe.json"
    run_process([*PROBE, str(probe_out), "--", "status", *full], env, workdir)
    import json  # noqa: PLC0415 - only here

    probe = json.loads(probe_out.read_text())
    assert run is not None
    requests = sum(e["totals"]["requests"] for e in json.loads(run.stdout)["experiments"])
    return {"wall_s": min(walls), "walls": walls, "cpu_s": run.cpu_s, "maxrss_mb": run.maxrss_mb,
            "requests": requests, "sql_statements": probe["sql_statements"], "sql_s": probe["sql_seconds"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(argv)
    day = ["--since", (END - timedelta(days=1)).isoformat(), "--until", END.isoformat()]
    week = ["--since", START.isoformat(), "--until", END.isoformat()]
    steps = {"one experiment, 7 days": ["bench-001", *week], "one experiment, 24 hours": ["bench-001", *day],
             "all experiments, 7 days": [*week], "all experiments, 24 hours": [*day]}
    with PostgresServer() as pg, tempfile.TemporaryDirectory(prefix="expctl-bench-status-") as tmp:
        url = pg.create_database("bench_status")
        timings = generate(url, options.rows, options.users, options.experiments)
        print(f"rows {options.rows:,}, users {options.users:,}, experiments {options.experiments}; "
              + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
        print("| step | rows read | wall s (best) | cpu s | peak MB | SQL statements | SQL s |")
        print("|---|---|---|---|---|---|---|")
        for name, args in steps.items():
            figures = measure(url, args, options.repeat, Path(tmp))
            print(f"| {name} | {figures['requests']:,} | {figures['wall_s']:.2f} | {figures['cpu_s']:.2f} | "
                  f"{figures['maxrss_mb']:.0f} | {figures['sql_statements']} | {figures['sql_s']:.2f} |", flush=True)
        print("\nEXPLAIN (ANALYZE, BUFFERS), one experiment, 7 days:\n")
        print(explain(url, "bench-001", START, END))
    return 0


if __name__ == "__main__":
    sys.exit(main())
