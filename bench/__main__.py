"""`python -m bench`: scale figures for validate, plan and apply at N = 100, 1,000 and 10,000.

Starts its own throwaway PostgreSQL (`tests.servers.PostgresServer`: fsync, full page writes and
synchronous commit off, so commits cost what they cost on a fast disk) and Redis on 127.0.0.1, and
for each N:

- writes N manifests (and a copy where one experiment in ten changed) into a temporary directory,
- seeds a database with the same N experiments via COPY (for the plans),
- runs every `expctl` command as a subprocess and measures the whole process: wall time, CPU time
  and peak RSS (from `os.wait4` of that very process, see `_LAUNCHER`), best of `--repeat` runs,
- runs each command once more under `bench.probe` to count SQL statements and Redis round trips,
  and reads Redis' INFO commandstats around it to count Redis commands (and writes),
- measures the floor (`bench.floor`, a subprocess as well) and a bare batched insert of the rows an
  apply creates (`bench.baseline`, in this process: only the database work is timed).

Prints one table and the ratios against the targets; `--json FILE` keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import psycopg
import redis
from psycopg import sql
from sqlalchemy.dialects import postgresql
from tests.servers import PostgresServer, RedisServer

from bench import baseline, generate
from expctl.adapters.store import reader
from expctl.adapters.store.db import connect, init_schema

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (100, 1_000, 10_000)
MEMBERSHIP_KEY = "ai-gateway.model-experiments:experimented-public-ids"
WRITE_COMMANDS = frozenset({"set", "del", "unlink", "setex", "mset", "expire", "hset", "hdel"})
TEMPLATE_DB = "bench_template"
EXPCTL = [sys.executable, "-c", "import sys; from expctl.cli import main; sys.exit(main())"]
PROBE = [sys.executable, "-m", "bench.probe"]


@dataclass
class ProcessRun:
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    code: int
    stdout: str
    stderr: str


@dataclass
class Step:
    """One measured command at one N: the best of the timed runs, and the counts of the probed run."""

    name: str
    n: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_mb: float = 0.0
    walls: list[float] = field(default_factory=list)
    sql_statements: int | None = None
    sql_detail: dict[str, Any] = field(default_factory=dict)
    redis_round_trips: int | None = None
    redis_commands: int | None = None
    redis_writes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, run: ProcessRun) -> None:
        self.walls.append(round(run.wall_s, 3))
        if not self.wall_s or run.wall_s < self.wall_s:
            self.wall_s, self.cpu_s = run.wall_s, run.cpu_s
        self.maxrss_mb = max(self.maxrss_mb, run.maxrss_mb)


# Runs CMD as a grandchild forked from this small interpreter and reports the grandchild's own
# rusage. (A child forked straight from the runner would report the runner's RSS as its peak:
# Linux carries the high-water mark across fork and exec.)
_LAUNCHER = r"""
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as handle:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
               "code": os.waitstatus_to_exitcode(status)}, handle)
"""


def run_process(args: Sequence[str], env: dict[str, str], cwd: Path) -> ProcessRun:
    """Runs one command and returns its own wall time, CPU time and peak RSS (see _LAUNCHER)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as usage_file:
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, usage_file.name, *args]
        subprocess.run(launcher, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd, check=True)
        usage = json.loads(Path(usage_file.name).read_text())
        out.seek(0)
        err.seek(0)
        return ProcessRun(usage["wall"], usage["cpu"], usage["maxrss_kb"] / 1024, usage["code"],
                          out.read().decode(errors="replace"), err.read().decode(errors="replace"))


class Bench:
    def __init__(self, pg: PostgresServer, rd: RedisServer, workdir: Path, repeat: int) -> None:
        self.pg, self.rd, self.workdir, self.repeat = pg, rd, workdir, repeat
        self.redis = redis.Redis.from_url(rd.url)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "REDIS_URL", "CI") and not k.startswith("PG")}
        self.env.update(generate.secret_env())
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))
        self.env["NO_COLOR"] = "1"
        self.queries = workdir / "floor-queries.json"
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        self.queries.write_text(json.dumps([
            str(q.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            for q in (reader.CURRENT_VERSIONS_QUERY, reader.VARIANTS_QUERY, reader.EXPERIMENTS_QUERY)
        ]))
        self._make_template()

    # ------------------------------------------------------------------ databases and Redis

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.url, autocommit=True)

    def _make_template(self) -> None:
        with self._admin() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
        with connect(self.pg.database_url(TEMPLATE_DB)) as conn, conn.begin():
            init_schema(conn)

    def new_database(self, name: str) -> str:
        """A fresh database with expctl's schema (a copy of the template); replaced if it exists."""
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)))
        return self.pg.database_url(name)

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def commandstats(self) -> dict[str, int]:
        stats = cast(dict[str, dict[str, Any]], self.redis.info("commandstats"))
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}

    # ------------------------------------------------------------------ measuring

    def expctl_args(self, *args: str, db: str, manifests: Path | None = None) -> list[str]:
        out = list(args)
        if manifests is not None:
            out += ["--dir", str(manifests)]
        return [*out, "--database-url", db, "--redis-url", self.rd.url]

    def measure(self, step: Step, args: list[str], prepare: Callable[[], None] = lambda: None,
                check: Callable[[ProcessRun], None] = lambda run: None, probe: bool = True) -> None:
        """`repeat` timed runs of `expctl ARGS`, then (with `probe`) one counted run."""
        for _ in range(self.repeat):
            prepare()
            run = run_process([*EXPCTL, *args], self.env, self.workdir)
            check(run)
            step.add(run)
        if not probe:
            return
        prepare()
        out = self.workdir / "probe.json"
        before = self.commandstats()
        run = run_process([*PROBE, str(out), "--", *args], self.env, self.workdir)
        after = self.commandstats()
        check(run)
        counts = json.loads(out.read_text())
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta = {k: v for k, v in delta.items() if v and k not in ("info", "config|resetstat")}
        step.sql_statements = counts["sql_statements"]
        step.sql_detail = {k: counts[k] for k in ("sql_by_verb", "sql_executemany", "sql_executemany_rows",
                                                  "sql_seconds", "first_sql_at_s", "process_s")}
        step.redis_round_trips = counts["redis_round_trips"]
        step.redis_commands = sum(delta.values())
        step.redis_writes = sum(v for k, v in delta.items() if k in WRITE_COMMANDS)
        step.extra["redis_command_counts"] = delta
        step.extra["probed_wall_s"] = round(run.wall_s, 3)

    def size(self, n: int) -> list[Step]:
        print(f"== N = {n:,} (load average {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
        base = self.workdir / f"n{n}"
        unchanged = generate.write_manifests(base / "unchanged", n)
        changed = generate.write_manifests(base / "changed", n, changed=True)
        seeded = self.new_database(f"seeded_{n}")
        generate.seed_database(seeded, n)
        membership = json.dumps(generate.membership(n), separators=(",", ":"))

        def set_membership() -> None:
            self.redis.flushdb()
            self.redis.set(MEMBERSHIP_KEY, membership)

        steps = []

        floor = Step("floor", n)
        for _ in range(self.repeat):
            run = run_process([sys.executable, "-m", "bench.floor", str(unchanged), seeded, str(self.queries)],
                              self.env, self.workdir)
            _expect(run.code == 0, "floor", run)
            floor.add(run)
            phases = json.loads(run.stdout)
            if not floor.extra or run.wall_s <= floor.wall_s:
                floor.extra = phases
        floor.sql_statements = 4  # SET TRANSACTION + the three SELECTs
        steps.append(floor)

        validate = Step("validate", n)
        self.measure(validate, ["validate", str(unchanged)], check=lambda run: _expect(
            run.code == 0 and f"{n} experiment(s)" in run.stdout, "validate", run), probe=False)
        steps.append(validate)

        plan = Step("plan (no changes)", n)
        self.measure(plan, self.expctl_args("plan", db=seeded, manifests=unchanged), prepare=set_membership,
                     check=lambda run: _expect(run.code == 0 and "No changes" in run.stdout, "plan", run))
        steps.append(plan)

        plan_changed = Step("plan (10% changed)", n)
        self.measure(plan_changed, self.expctl_args("plan", db=seeded, manifests=changed), prepare=set_membership,
                     check=lambda run: _expect(run.code == 0 and "No changes" not in run.stdout, "plan 10%", run))
        steps.append(plan_changed)
        self.drop_database(f"seeded_{n}")

        apply = Step("apply (create all)", n)
        target = {"url": ""}

        def fresh() -> None:
            target["url"] = self.new_database(f"apply_{n}")
            self.redis.flushdb()
            args[args.index("--database-url") + 1] = target["url"]

        def created(run: ProcessRun) -> None:
            _expect(run.code == 0 and "Applied" in run.stdout, "apply", run)
            _check_rows(target["url"], n)

        args = self.expctl_args("reconcile", "--auto-approve", db="", manifests=unchanged)
        self.measure(apply, args, prepare=fresh, check=created)
        steps.append(apply)

        noop = Step("reconcile (no-op)", n)
        self.measure(noop, self.expctl_args("reconcile", "--auto-approve", db=target["url"], manifests=unchanged),
                     check=lambda run: _expect(run.code == 0 and "Nothing to apply" in run.stdout, "no-op", run))
        steps.append(noop)
        self.drop_database(f"apply_{n}")

        rows = generate.rows(n, encrypt_each=True)
        for name, insert in (("bare insert (executemany)", baseline.executemany_insert),
                             ("bare insert (COPY)", baseline.copy_insert)):
            bare = Step(name, n)
            for _ in range(self.repeat):
                url = self.new_database(f"bare_{n}")
                seconds = insert(url, rows)
                _check_rows(url, n)
                bare.walls.append(round(seconds, 3))
                bare.wall_s = min(bare.walls)
            bare.sql_statements = 4
            steps.append(bare)
        self.drop_database(f"bare_{n}")
        shutil.rmtree(base, ignore_errors=True)
        return steps


def _expect(ok: bool, what: str, run: ProcessRun) -> None:
    if not ok:
        raise SystemExit(f"{what} failed (exit {run.code}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")


def _check_rows(url: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in (
            "model_experiment", "expctl_binding", "model_experiment_variant", "model_experiment_variant_version")]
        active = conn.execute("SELECT count(*) FROM model_experiment WHERE status = 'active'").fetchone()
    got = [c[0] if c else None for c in counts]
    if got != [n, n, 2 * n, 2 * n] or (active and active[0] != (n + 1) // 2):
        raise SystemExit(f"unexpected row counts after apply: {got}, active {active}")


# ---------------------------------------------------------------------- report

TARGET_N = 10_000
TARGETS = {
    "plan_to_floor_ratio": 2.0,
    "apply_to_bare_insert_ratio": 3.0,
    "peak_memory_mb": 500.0,
}


def _fmt(value: float | int | None, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def table(steps: Sequence[Step]) -> str:
    header = ("N", "step", "wall s", "cpu s", "peak MB", "SQL stmts", "Redis RTs", "Redis cmds", "Redis writes")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in steps:
        lines.append("| " + " | ".join((
            f"{s.n:,}", s.name, f"{s.wall_s:.2f}", _fmt(s.cpu_s or None, ".2f"), _fmt(s.maxrss_mb or None, ".0f"),
            _fmt(s.sql_statements), _fmt(s.redis_round_trips), _fmt(s.redis_commands), _fmt(s.redis_writes),
        )) + " |")
    return "\n".join(lines)


def ratios(steps: Sequence[Step]) -> dict[str, Any]:
    by = {(s.name, s.n): s for s in steps}
    out: dict[str, Any] = {}
    for n in sorted({s.n for s in steps}):
        plan, floor = by.get(("plan (no changes)", n)), by.get(("floor", n))
        apply, bare = by.get(("apply (create all)", n)), by.get(("bare insert (executemany)", n))
        copy = by.get(("bare insert (COPY)", n))
        entry: dict[str, Any] = {}
        if plan and floor:
            entry["plan_to_floor_ratio"] = round(plan.wall_s / floor.wall_s, 2)
        if apply and bare:
            entry["apply_to_bare_insert_ratio"] = round(apply.wall_s / bare.wall_s, 2)
            if apply.sql_detail.get("sql_seconds") is not None:
                entry["apply_sql_time_to_bare_insert_ratio"] = round(apply.sql_detail["sql_seconds"] / bare.wall_s, 2)
        if apply and copy:
            entry["apply_to_copy_ratio"] = round(apply.wall_s / copy.wall_s, 2)
        entry["peak_memory_mb"] = round(max(s.maxrss_mb for s in steps if s.n == n), 1)
        out[str(n)] = entry
    return out


def report(steps: Sequence[Step]) -> str:
    lines = [table(steps), ""]
    for n, entry in ratios(steps).items():
        parts = []
        for key, value in entry.items():
            target = TARGETS.get(key) if int(n) == TARGET_N else None  # the targets are stated for N = 10,000
            verdict = "" if target is None else f" (target < {target:g}: {'met' if value < target else 'MISSED'})"
            parts.append(f"{key} = {value}{verdict}")
        lines.append(f"N = {int(n):,}: " + "; ".join(parts))
    floors = [s for s in steps if s.name == "floor"]
    for s in floors:
        lines.append(f"floor N = {s.n:,}: read {s.extra.get('read_s')} s, C YAML parse {s.extra.get('parse_s')} s, "
                     f"3 SELECTs {s.extra.get('sql_s')} s ({s.extra.get('rows')} rows), whole process {s.wall_s:.2f} s")
    return "\n".join(lines)


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[PostgresServer, RedisServer]]:
    with PostgresServer() as pg, RedisServer(workdir / "redis") as rd:
        yield pg, rd


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated experiment counts (default: 100,1000,10000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command; the best is kept (default 3)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--workdir", type=Path, help="where manifests and servers live (default: a temp dir)")
    options = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in options.sizes.split(",") if s.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="expctl-bench-", dir=options.workdir))
    steps: list[Step] = []
    try:
        with servers(workdir) as (pg, rd):
            bench = Bench(pg, rd, workdir, max(1, options.repeat))
            for n in sizes:
                load_before = os.getloadavg()[0]
                sized = bench.size(n)
                for step in sized:
                    step.extra["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                steps += sized
                print(table([s for s in steps if s.n == n]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(steps))
    if options.json:
        options.json.write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "postgres": "tests.servers.PostgresServer: fsync, full_page_writes, synchronous_commit off",
            "repeat": options.repeat, "steps": [asdict(s) for s in steps], "ratios": ratios(steps),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
