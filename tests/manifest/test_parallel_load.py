"""Loading many files in worker processes gives exactly what one process gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from expctl.adapters.manifest import load
from expctl.core.profiles import gateway_profile

GOOD = """apiVersion: expctl/v1
kind: ModelExperiment
name: {name}
public_model_id: p/{name}
display_name: Experiment {n}
status: draft
variants:
  - label: control
    weight: {n}
    upstream: {{internal_id: up-{n}, base_url: "https://a.example.com/v1"}}
    api_key: {{from_env: KEY_{n}}}
"""


def _write(directory: Path) -> None:
    for n in range(1, 41):
        text = GOOD.format(name=f"exp-{n:02d}", n=n)
        if n % 7 == 0:
            text = text.replace("weight", "wieght")  # a located problem in some files
        if n == 33:
            text = text.replace("name: exp-33", "name: exp-01")  # a cross-file problem
        (directory / f"exp-{n:02d}.yaml").write_text(text)


def test_worker_processes_give_the_same_result_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path)
    monkeypatch.setattr(load, "PARALLEL_FROM_FILES", 10**9)
    one = load.load_directory(tmp_path)
    monkeypatch.setattr(load, "PARALLEL_FROM_FILES", 10)
    many = load.load_directory(tmp_path)
    assert many == one
    assert len(one.experiments) == 35 and {p.code for p in one.problems} == {"E201", "E202", "E401"}


def test_worker_processes_load_under_the_profile_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile reaches the workers: under 2026-05 every file's metadata is refused there too."""
    _write(tmp_path)
    for path in tmp_path.glob("*.yaml"):
        path.write_text(path.read_text() + "metadata: {context_length: 1, max_completion_tokens: 1}\n")
    profile = gateway_profile("2026-05")
    monkeypatch.setattr(load, "PARALLEL_FROM_FILES", 10**9)
    one = load.load_directory(tmp_path, profile=profile)
    monkeypatch.setattr(load, "PARALLEL_FROM_FILES", 10)
    many = load.load_directory(tmp_path, profile=profile)
    assert many == one
    assert sum(p.code == "E213" for p in one.problems) == 40 and not one.experiments
    assert len(load.load_directory(tmp_path).experiments) == 35  # the default profile reads metadata
