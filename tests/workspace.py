"""A throwaway repository for end-to-end tests: manifests on disk, the CLI run in-process, and
helpers to look at the rows and Redis values it produced."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from sqlalchemy import text

from expctl.adapters.store.db import connect
from expctl.cli import run

BYOK_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
UPSTREAM_A = {"internal_id": "up-a", "base_url": "https://a.example.com/v1"}
UPSTREAM_B = {"internal_id": "up-b", "base_url": "https://b.example.com/v1"}
MEMBERSHIP_KEY = "ai-gateway.model-experiments:experimented-public-ids"


def manifest(name: str, status: str = "draft", public_id: str = "preview/x",
             variants: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    if variants is None:
        variants = [
            {"label": "control", "weight": 1, "upstream": dict(UPSTREAM_A), "api_key": {"from_env": "KEY_A"}},
            {"label": "treatment", "weight": 1, "upstream": dict(UPSTREAM_B), "api_key": {"from_env": "KEY_B"}},
        ]
    return {"apiVersion": "expctl/v1", "kind": "ModelExperiment", "name": name, "public_model_id": public_id,
            "display_name": name.replace("-", " ").title(), "status": status, **extra, "variants": variants}


@dataclass
class Result:
    code: int
    out: str
    err: str


class Workspace:
    def __init__(self, root: Path, db_url: str, redis_url: str, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.db_url, self.redis_url = root, db_url, redis_url
        self.capsys, self.monkeypatch = capsys, monkeypatch
        self.dir = root / "experiments.d"
        self.dir.mkdir()
        monkeypatch.chdir(root)
        monkeypatch.setenv("BYOK_ENCRYPTION_KEY", BYOK_B64)
        monkeypatch.setenv("KEY_A", "secret-a")
        monkeypatch.setenv("KEY_B", "secret-b")
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("REDIS_URL", raising=False)
        assert self.expctl("db", "init").code == 0

    def write(self, *manifests: dict[str, Any]) -> None:
        for path in self.dir.glob("*.yaml"):
            path.unlink()
        for m in manifests:
            (self.dir / f"{m['name']}.yaml").write_text(yaml.safe_dump(m, sort_keys=False))

    def expctl(self, *args: str, redis_url: str | None = "default") -> Result:
        self.capsys.readouterr()
        argv = [*args, "--database-url", self.db_url]
        url = self.redis_url if redis_url == "default" else redis_url
        if url is not None:
            argv += ["--redis-url", url]
        code = run(argv)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def reconcile(self, *args: str) -> Result:
        return self.expctl("reconcile", "--auto-approve", *args)

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with connect(self.db_url) as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def execute(self, sql: str, **params: Any) -> None:
        """A committed write, as the admin UI would make it."""
        with connect(self.db_url) as conn, conn.begin():
            conn.execute(text(sql), params)

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of the gateway's tables and the bindings, for before/after comparisons."""
        return {
            table: self.rows(f"SELECT * FROM {table} ORDER BY id")
            for table in ("model_experiment", "model_experiment_variant", "model_experiment_variant_version")
        } | {"expctl_binding": self.rows("SELECT * FROM expctl_binding ORDER BY name")}

    def experiment(self, name: str) -> dict[str, Any]:
        rows = self.rows("SELECT e.* FROM model_experiment e JOIN expctl_binding b ON b.experiment_id = e.id "
                         "WHERE b.name = :name", name=name)
        assert len(rows) == 1, rows
        return rows[0]

    def membership(self) -> list[str] | None:
        with redis.Redis.from_url(self.redis_url) as client:
            raw = client.get(MEMBERSHIP_KEY)
        return None if raw is None else list(json.loads(raw))

    def redis_dump(self) -> dict[str, bytes]:
        with redis.Redis.from_url(self.redis_url) as client:
            return {k.decode(): client.dump(k) or b"" for k in client.keys("*")}
