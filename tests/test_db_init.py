"""`expctl db init`: creates what is missing, is idempotent, never alters existing tables."""

from __future__ import annotations

import json

import jsonschema
from sqlalchemy import text

from expctl.adapters.store.db import connect
from expctl.core.render.json_plan import load_plan_schema
from tests.workspace import Workspace, manifest

GATEWAY_DDL = """
CREATE TABLE users (id text PRIMARY KEY);
CREATE TABLE model_experiment (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), public_model_id text NOT NULL, name text NOT NULL,
  description text, status text NOT NULL DEFAULT 'draft', is_archived boolean NOT NULL DEFAULT false,
  created_by_user_id text REFERENCES users(id), created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz, ended_at timestamptz, metadata jsonb,
  gateway_only_column text,
  CONSTRAINT model_experiment_status_valid CHECK (status IN ('draft','active','paused','completed')),
  CONSTRAINT model_experiment_active_not_archived CHECK (status <> 'active' OR is_archived = false));
CREATE UNIQUE INDEX "UQ_model_experiment_public_model_id_routing" ON model_experiment (public_model_id)
  WHERE status IN ('active','paused');
CREATE TABLE model_experiment_variant (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  experiment_id uuid NOT NULL REFERENCES model_experiment(id) ON DELETE CASCADE, label text NOT NULL,
  weight integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "UQ_model_experiment_variant_experiment_label" UNIQUE (experiment_id, label),
  CONSTRAINT model_experiment_variant_weight_positive CHECK (weight > 0));
CREATE TABLE model_experiment_variant_version (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  variant_id uuid NOT NULL REFERENCES model_experiment_variant(id) ON DELETE CASCADE, upstream jsonb NOT NULL,
  encrypted_api_key jsonb NOT NULL, effective_at timestamptz NOT NULL DEFAULT now(), created_by text,
  created_at timestamptz NOT NULL DEFAULT now());
"""


def _schema(ws: Workspace) -> list[tuple[str, str]]:
    return [(r["table_name"], r["column_name"]) for r in ws.rows(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "ORDER BY table_name, ordinal_position")]


def _constraints(ws: Workspace) -> set[str]:
    names = ws.rows("SELECT conname AS n FROM pg_constraint JOIN pg_namespace ns ON ns.oid = connamespace "
                    "WHERE nspname = 'public' UNION SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    return {r["n"] for r in names}


def test_fresh_database_gets_the_contracts_names(ws: Workspace) -> None:
    names = _constraints(ws)
    assert {
        "model_experiment_status_valid", "model_experiment_active_not_archived",
        "UQ_model_experiment_public_model_id_routing", "IDX_model_experiment_status",
        "UQ_model_experiment_variant_experiment_label", "model_experiment_variant_weight_positive",
        "IDX_model_experiment_variant_experiment_id", "IDX_model_experiment_variant_version_variant_effective",
    } <= names
    index = ws.rows("SELECT indexdef FROM pg_indexes WHERE indexname = 'UQ_model_experiment_public_model_id_routing'")
    assert "WHERE (status = ANY (ARRAY['active'::text, 'paused'::text]))" in index[0]["indexdef"]
    fks = ws.rows("SELECT confdeltype FROM pg_constraint WHERE contype = 'f' AND conrelid IN "
                  "('model_experiment_variant'::regclass, 'model_experiment_variant_version'::regclass)")
    assert [r["confdeltype"] for r in fks] == ["c", "c"]
    assert not ws.rows("SELECT 1 FROM information_schema.tables WHERE table_name = 'users'")


def test_init_is_idempotent(ws: Workspace) -> None:
    before = _schema(ws)
    result = ws.expctl("db", "init", redis_url=None)
    assert result.code == 0 and "Nothing to do" in result.out
    assert _schema(ws) == before


def test_on_the_gateways_database_only_expctl_tables_are_added(ws: Workspace) -> None:
    with connect(ws.db_url) as conn, conn.begin():
        conn.execute(text("DROP TABLE expctl_run, expctl_binding, model_experiment_variant_version, "
                          "model_experiment_variant, model_experiment"))
        for statement in GATEWAY_DDL.split(";"):
            if statement.strip():
                conn.execute(text(statement))
    result = ws.expctl("db", "init", redis_url=None)
    assert result.code == 0
    assert "expctl_binding" in result.out and "expctl_run" in result.out and "model_experiment," not in result.out
    columns = _schema(ws)
    assert ("model_experiment", "gateway_only_column") in columns  # existing tables untouched
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    assert ws.experiment("exp")["status"] == "active"


def test_plan_without_tables_says_to_init(ws: Workspace) -> None:
    ws.execute("DROP TABLE expctl_run")
    ws.write(manifest("exp"))
    result = ws.expctl("plan")
    assert result.code == 1 and "expctl db init" in result.err


def test_cli_json_plan_matches_the_published_schema(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"), manifest("other", "draft", public_id="preview/y"))
    result = ws.expctl("plan", "--format", "json")
    assert result.code == 0
    record = json.loads(result.out)
    jsonschema.validate(record, load_plan_schema())
    assert record["format_version"] == 1 and record["summary"]["create_experiment"] == 2
