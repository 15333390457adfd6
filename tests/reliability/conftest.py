"""The reliability suite: every test here is marked `reliability`; `slow` ones run only with EXPCTL_SLOW=1.

The default run (`python -m pytest`) includes this directory and stays within a few minutes; the
heavier variants (more kill points, more concurrent rounds) are marked `slow` and skipped unless
`EXPCTL_SLOW=1` is set: `EXPCTL_SLOW=1 python -m pytest tests/reliability -m slow`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def slow_enabled() -> bool:
    return os.environ.get("EXPCTL_SLOW", "") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow reliability scenario: run with EXPCTL_SLOW=1")
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        assert item.get_closest_marker("reliability") is not None, f"{item.nodeid} lacks the reliability marker"
        if item.get_closest_marker("slow") is not None and not slow_enabled():
            item.add_marker(skip_slow)


FIGURES: dict[str, dict[str, object]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, object]:
    """Counts a scenario reports (runs, kills, faults, inputs); printed in the terminal summary."""
    return FIGURES.setdefault(request.node.nodeid, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shown = {k: v for k, v in FIGURES.items() if v}
    if shown:
        terminalreporter.section("reliability figures")
        for nodeid, values in shown.items():
            terminalreporter.write_line(f"{nodeid}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
