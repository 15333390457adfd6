"""The README's main command, run as a newcomer would, in a fresh copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from expctl.local import local_instance
from expctl.store.db import connect
from tests.workspace import MEMBERSHIP_KEY

REPO = Path(__file__).resolve().parents[1]


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(n in cmdline for n in needles) and "pytest" not in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("---", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", quickstart)


def test_readme_has_exactly_two_quickstart_commands() -> None:
    main, tests = quickstart_commands()
    assert main.endswith("expctl reconcile --auto-approve --local")
    assert "pip install -e '.[test]'" in tests and tests.endswith("python -m pytest")
    ci = (REPO / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in ci


def test_quickstart_main_command_in_a_fresh_copy(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
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
    data_dir = (repo / ".expctl" / "postgres-data-dir").read_text().strip()
    assert not _processes_mentioning(data_dir, str(repo)), "the local servers must stop when the command ends"
    with local_instance(repo) as local, connect(local.database_url) as conn:
        rows = conn.execute(text("SELECT b.name, e.status FROM expctl_binding b JOIN model_experiment e "
                                 "ON e.id = b.experiment_id ORDER BY b.name")).all()
        import redis

        with redis.Redis.from_url(local.redis_url) as client:
            membership = client.get(MEMBERSHIP_KEY)
    assert [tuple(r) for r in rows] == [
        ("preview-bar-routing", "draft"), ("preview-baz-first-try", "draft"),
        ("preview-baz-long-context", "active"), ("preview-foo-rc-bakeoff", "active"),
    ]
    assert membership == b'["kilo/preview-baz","kilo/preview-foo"]'
    assert not _processes_mentioning(data_dir, str(repo))
    assert (repo / ".expctl" / ".gitignore").read_text() == "*\n"


def test_ci_without_database_url_needs_local(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"CI": "true"}
    done = subprocess.run([sys.executable, "-m", "expctl", "plan"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1 and "--local" in done.stderr
    assert not (tmp_path / ".expctl").exists()


def test_sigterm_stops_the_local_servers(tmp_path: Path) -> None:
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom expctl.local import local_instance\n"
        "with local_instance(Path(sys.argv[1])):\n    print('ready', flush=True)\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    data_dir = (tmp_path / ".expctl" / "postgres-data-dir").read_text().strip()
    assert _processes_mentioning(data_dir), "the servers run while the command runs"
    proc.terminate()
    assert proc.wait(timeout=60) == 128 + 15
    assert not _processes_mentioning(data_dir, str(tmp_path))
