"""Forked workers make loading faster, never different: same results, failures absorbed, and the
children never run the parent's handlers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from expctl import parallel
from expctl.manifest.load import load_directory
from tests.workspace import BYOK_B64, Workspace, manifest

REPO = Path(__file__).resolve().parents[1]
PARENT = os.getpid()


def _squares(chunk: Sequence[int]) -> list[int]:
    time.sleep(0.01)  # long enough for the forked children to take part
    return [n * n for n in chunk]


CHILD_ATTEMPTS: list[Path] = []  # where a child notes that it took a slice (set by the test)


def _in_child() -> bool:
    if os.getpid() == PARENT:
        return False
    with CHILD_ATTEMPTS[0].open("a") as log:
        log.write(f"{os.getpid()}\n")
    return True


def _fails_in_child(chunk: Sequence[int]) -> list[int]:
    if _in_child():
        raise RuntimeError("child failure")
    return _squares(chunk)


def _killed_in_child(chunk: Sequence[int]) -> list[int]:
    if _in_child():
        os.kill(os.getpid(), signal.SIGKILL)
    return _squares(chunk)


def _unpicklable_in_child(chunk: Sequence[int]) -> object:
    if _in_child():
        return lambda: None  # cannot be pickled: the child exits non-zero
    return _squares(chunk)


def _where_and_handlers(chunk: Sequence[int]) -> tuple[int, object, object]:
    time.sleep(0.05)
    return os.getpid(), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)


@pytest.mark.parametrize(("count", "workers", "min_chunk"), [(0, 2, 1), (1, 2, 1), (7, 3, 1), (10, 2, 5), (100, 4, 10)])
def test_results_come_back_in_order(count: int, workers: int, min_chunk: int) -> None:
    items = list(range(count))
    chunks = parallel.map_chunks(_squares, items, workers=workers, min_chunk=min_chunk)
    assert [n for chunk in chunks for n in chunk] == [n * n for n in items]
    processes = max(1, min(workers, count // min_chunk))
    assert len(chunks) == (1 if processes == 1 else min(count, processes * parallel.SLICES_PER_WORKER))


def test_meanwhile_runs_once_here_while_the_children_take_slices() -> None:
    ran: list[int] = []

    def meanwhile() -> None:
        ran.append(os.getpid())
        time.sleep(0.5)  # the child takes every slice it can meanwhile

    chunks = parallel.map_chunks(_where_and_handlers, list(range(16)), workers=2, min_chunk=1, meanwhile=meanwhile)
    assert ran == [PARENT]
    pids = [pid for pid, _, _ in chunks]
    assert pids[0] != PARENT  # the first slice went to the child while the parent was busy
    assert pids.count(PARENT) < len(pids)
    serial: list[int] = []
    parallel.map_chunks(_squares, [1, 2], workers=1, min_chunk=1, meanwhile=lambda: serial.append(1))
    assert serial == [1]


@pytest.mark.parametrize("func", [_fails_in_child, _killed_in_child, _unpicklable_in_child],
                         ids=["raises", "killed", "unpicklable"])
def test_a_failed_child_is_done_by_the_parent(func: Callable[[Sequence[int]], list[int]], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHILD_ATTEMPTS", [tmp_path / "attempts"])
    chunks = parallel.map_chunks(func, list(range(40)), workers=3, min_chunk=5)
    assert [n for chunk in chunks for n in chunk] == [n * n for n in range(40)]
    assert (tmp_path / "attempts").read_text().split()  # children did take slices, and failed them


def test_children_run_with_default_signal_handlers() -> None:
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        results = parallel.map_chunks(_where_and_handlers, list(range(16)), workers=2, min_chunk=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    by_child = [handlers for pid, *handlers in results if pid != PARENT]
    by_parent = [handlers for pid, *handlers in results if pid == PARENT]
    assert by_child and by_parent  # both took part
    assert all(h == [signal.SIG_DFL, signal.SIG_DFL] for h in by_child)
    assert all(h[0] is not signal.SIG_DFL for h in by_parent)


def test_children_never_run_atexit_handlers_nor_flush_output(tmp_path: Path) -> None:
    marker = tmp_path / "atexit.log"
    script = textwrap.dedent(f"""
        import atexit, os, sys
        from expctl import parallel
        atexit.register(lambda: open({str(marker)!r}, "a").write(f"{{os.getpid()}}\\n"))
        sys.stdout.write("buffered once ")
        print(parallel.map_chunks(sorted, list(range(40, 0, -1)), workers=2, min_chunk=1))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    expected = [sorted(s) for s in parallel.split(list(range(40, 0, -1)), 2 * parallel.SLICES_PER_WORKER)]
    assert run.stdout == f"buffered once {expected}\n"
    assert len(marker.read_text().split()) == 1  # the parent's handler only


def test_worker_count_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.worker_count() == 3
    monkeypatch.setenv(parallel.WORKERS_ENV, "none")
    assert parallel.worker_count() == (len(os.sched_getaffinity(0)) if sys.platform == "linux" else 1)


def test_split_covers_every_item_once() -> None:
    for count in range(12):
        for parts in range(1, 5):
            pieces = parallel.split(list(range(count)), parts)
            assert len(pieces) == parts
            assert [n for piece in pieces for n in piece] == list(range(count))
            assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_parallel_load_equals_serial_load_with_problems(tmp_path: Path) -> None:
    """Every golden case's manifests (valid and broken ones, cross-file conflicts included) in one
    directory: the same experiments, problems and files whether loaded by 1 or 4 processes."""
    for index, case in enumerate(sorted((REPO / "tests" / "cases").iterdir())):
        manifests = case / "manifests"
        if manifests.is_dir():
            shutil.copytree(manifests, tmp_path / f"{index:03d}-{case.name}")
    (tmp_path / "zz-broken.yaml").write_text("name: [unclosed\n")
    serial = load_directory(tmp_path, workers=1)
    forked = load_directory(tmp_path, workers=4, files_per_worker=1)
    assert len(serial.files) > 40 and serial.problems
    assert forked == serial


def _run_script(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True, text=True,
                          check=True, timeout=60)


def test_background_output_comes_once_and_in_order() -> None:
    run = _run_script("""
        import time
        from expctl import parallel
        print("before", end=" ")  # still buffered when the child forks: it must not be written twice
        job = parallel.Background(lambda: print("from the child", end=" "))
        time.sleep(0.05)
        job.finish()
        print("after")
    """)
    assert run.stdout == "before from the child after\n"


@pytest.mark.parametrize(("redo", "expected"), [(True, "written by the parent\n"), (False, "")])
def test_background_failure_is_redone_by_the_parent_unless_interrupted(redo: bool, expected: str) -> None:
    run = _run_script(f"""
        import os, sys
        from expctl import parallel
        parent = os.getpid()
        def write():
            if os.getpid() != parent:
                raise RuntimeError("child failure")
            print("written by the parent")
        parallel.Background(write).finish(redo={redo})
    """)
    assert run.stdout == expected and run.stderr == ""


def test_reconcile_prints_a_large_plan_from_the_background_before_the_result(ws: Workspace) -> None:
    ws.write(*(manifest(f"exp-{i}", "active" if i % 2 else "draft", public_id=f"kilo/m{i}") for i in range(6)))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")}
    pids = ws.root / "pids"
    script = textwrap.dedent(f"""
        import os, sys
        import expctl.cli.cmd_plan as c
        c.BACKGROUND_PLAN_MIN_CHANGES = 1
        render = c._render
        def recorded(plan, fmt):  # which process renders the plan
            open({str(pids)!r}, "a").write(f"{{os.getpid()}}\\n")
            return render(plan, fmt)
        c._render = recorded
        open({str(pids)!r}, "a").write(f"main {{os.getpid()}}\\n")
        from expctl.cli import main
        sys.exit(main())
    """)
    run = subprocess.run([sys.executable, "-c", script, "reconcile", "--auto-approve", "--database-url", ws.db_url,
                          "--redis-url", ws.redis_url], cwd=ws.root, env={**env, parallel.WORKERS_ENV: "2"},
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    plan_text, _, result = run.stdout.partition("Applied ")
    assert plan_text.startswith("expctl plan sha256:") and plan_text.count("expctl plan sha256:") == 1
    assert all(plan_text.count(f"exp-{i} (kilo/m{i}, new):") == 1 for i in range(6))
    assert " change(s) in one transaction" in result and "Redis refreshed" in result
    main_pid, rendered_by = pids.read_text().split("\n")[:2]
    assert main_pid.startswith("main ") and rendered_by != main_pid.removeprefix("main ")  # a forked child
    assert len(ws.rows("SELECT id FROM model_experiment")) == 6
    assert not any(secret in run.stdout + run.stderr for secret in ("secret-a", "secret-b", BYOK_B64))
