"""Shared pytest configuration; server fixtures live in the plugin modules listed below."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_servers"]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty repository as the working directory, with no connection, profile, configuration or
    CI settings leaking in from the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("EXPCTL_CONFIG", "EXPCTL_GATEWAY_PROFILE", "DATABASE_URL", "REDIS_URL", "CI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path
