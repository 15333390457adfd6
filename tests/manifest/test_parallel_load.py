"""Loading many files in worker processes gives exactly what one process gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from expctl.adapters.manifest import load

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
