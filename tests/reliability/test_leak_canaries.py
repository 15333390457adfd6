"""Leak canaries: recognisable secret values pushed through every command and every output channel.

Channels searched: stdout and stderr of every command and format (text, markdown, JSON, GitHub
annotations), saved plan files, imported manifest files, the audit table and every other table
(except the ciphertext column), every Redis key and value, and the tracebacks `--debug` prints when
a run fails while a canary is resolved (a database error mid-apply, Redis failing after the commit,
a stored key that does not decrypt, a malformed or wrong BYOK key, unreachable servers whose URLs
carry passwords). The BYOK key is never echoed either, not even when it is malformed. Database and
Redis passwords are also given in URL query strings (`?password=…`), to unreachable servers, to a
reachable PostgreSQL that refuses the database, and to a reachable Redis that fails every refresh
after the commit (exit 3), through every command that connects, with and without `--debug`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from expctl.adapters.crypto import encrypt_api_key
from expctl.app.settings import Settings
from expctl.cli import run
from tests.fixtures_servers import REDIS_PASSWORD
from tests.reliability.helpers import (
    BYOK,
    Outcome,
    child_env,
    exact_dump,
    redis_everything,
    refused_port,
    spawn,
    sql,
)
from tests.servers import RedisEndpoint
from tests.workspace import BYOK_B64, Result, Workspace, manifest

pytestmark = pytest.mark.reliability

CANARY_ENV = "sk-ant-api03-CANARYenv7f3a9c1e5b2d4f6a8c0e"
CANARY_FILE = "CANARY-file-4b1d9e0c7a3f5e2d8c6b"
CANARY_ROTATED = "CANARY-rotated-0e9d8c7b6a5f4e3d"
CANARY_IMPORTED = "CANARY-imported-a1b2c3d4e5f60718"
CANARY_DB_PASSWORD = "CANARY-db-pw-5a4b3c2d1e"
CANARY_REDIS_PASSWORD = "CANARY-redis-pw-9f8e7d6c"
# Passwords given in the query string (`?password=…`), which libpq and redis-py both accept.
CANARY_DB_QUERY = "CANARY-dbq-pw-7e6d5c4b3a29"
CANARY_DB_SSL = "CANARY-dbssl-pw-3c2b1a0f9e"
CANARY_REDIS_QUERY = "CANARY-redisq-pw-1a2b3c4d5e"
WRONG_BYOK = base64.b64encode(bytes(range(100, 132))).decode()
CANARIES = (CANARY_ENV, CANARY_FILE, CANARY_ROTATED, CANARY_IMPORTED, CANARY_DB_PASSWORD, CANARY_REDIS_PASSWORD,
            CANARY_DB_QUERY, CANARY_DB_SSL, CANARY_REDIS_QUERY, BYOK_B64, WRONG_BYOK)
# Every command that connects to PostgreSQL (and, for the first four, to Redis), with its exit code
# when PostgreSQL works and Redis fails: plan cannot read it, reconcile commits then cannot refresh
# it, check reports drift, refresh fails, and history and db init do not use Redis.
WHEN_REDIS_FAILS: dict[tuple[str, ...], int] = {
    ("plan",): 1, ("reconcile", "--auto-approve"): 3, ("cache", "check"): 2, ("cache", "refresh"): 3,
    ("history",): 0, ("db", "init"): 0}
CONNECTING = tuple(WHEN_REDIS_FAILS)


def leaks(text: str | bytes) -> list[str]:
    """The canaries found in `text`, also in the forms a careless encoder would produce."""
    data = text.encode() if isinstance(text, str) else text
    found = []
    for canary in CANARIES:
        forms = {canary.encode(), json.dumps(canary).encode(), base64.b64encode(canary.encode()),
                 canary.encode().hex().encode(), canary[: len(canary) // 2].encode()}
        if any(form in data for form in forms):
            found.append(canary)
    if BYOK in data or BYOK.hex().encode() in data:
        found.append("BYOK raw bytes")
    return found


def assert_clean(results: Iterable[Result | Outcome | str | bytes]) -> int:
    count = 0
    for item in results:
        text = item.out + item.err if isinstance(item, Result | Outcome) else item
        assert not leaks(text), (leaks(text), text[-3000:])
        count += 1
    return count


def debug_run(ws: Workspace, *args: str, redis_url: str | None = "default", db_url: str | None = None) -> Result:
    """`expctl --debug …` in-process: failures print their traceback to stderr."""
    ws.capsys.readouterr()
    argv = ["--debug", *args, "--database-url", db_url or ws.db_url]
    url = ws.redis_url if redis_url == "default" else redis_url
    if url is not None:
        argv += ["--redis-url", url]
    code = run(argv, debug=True)
    captured = ws.capsys.readouterr()
    return Result(code, captured.out, captured.err)


def validate(ws: Workspace, *args: str) -> Result:
    ws.capsys.readouterr()
    code = run(["validate", *args])
    captured = ws.capsys.readouterr()
    return Result(code, captured.out, captured.err)


def canary_manifests(status: str = "active") -> list[dict[str, Any]]:
    exp = manifest("exp", status)
    exp["variants"][1]["api_key"] = {"from_file": "secrets/treatment"}
    return [exp, manifest("other", "draft", public_id="preview/other")]


def setup_canaries(ws: Workspace) -> None:
    ws.monkeypatch.setenv("KEY_A", CANARY_ENV)
    (ws.root / "secrets").mkdir(exist_ok=True)
    (ws.root / "secrets" / "treatment").write_text(CANARY_FILE + "\n")


def everything_stored(ws: Workspace) -> str:
    dump = exact_dump(ws.db_url)
    for row in dump["model_experiment_variant_version"]:
        row.pop("encrypted_api_key")  # ciphertext: what the gateway decrypts; checked not to be plaintext below
    tables = {t: sql(ws.db_url, f"SELECT * FROM {t}") for t in ("expctl_run", "expctl_cache_outbox")}
    return json.dumps([dump, tables], default=str)


def test_the_detector_finds_what_it_looks_for() -> None:
    assert leaks(f"x{CANARY_FILE}y") == [CANARY_FILE]
    assert leaks(base64.b64encode(CANARY_ENV.encode())) == [CANARY_ENV]
    assert leaks(BYOK) == ["BYOK raw bytes"] and leaks("nothing here") == []


def test_canaries_through_every_command_and_channel(ws: Workspace, tmp_path: Path,
                                                    figures: dict[str, object]) -> None:
    setup_canaries(ws)
    ws.write(*canary_manifests())
    outputs: list[Result | str | bytes] = []
    outputs += [validate(ws, str(ws.dir), "--format", fmt) for fmt in ("text", "json", "github")]
    for fmt in ("text", "markdown", "json", "github"):
        outputs.append(ws.expctl("plan", "--format", fmt, "--out", str(tmp_path / f"plan-{fmt}.json")))
    outputs.append(ws.expctl("reconcile", "--dry-run"))
    outputs.append(ws.expctl("apply", str(tmp_path / "plan-json.json"), "--auto-approve"))
    ws.monkeypatch.setenv("KEY_A", CANARY_ROTATED)  # rotation: only fingerprints may show
    outputs += [ws.expctl("plan", "--format", fmt) for fmt in ("text", "markdown", "json", "github")]
    outputs.append(ws.reconcile())
    ws.write(*canary_manifests("paused"))
    outputs.append(ws.reconcile())

    # An unmanaged experiment made in the admin UI, its key the canary, imported into a manifest.
    eid = sql(ws.db_url, "INSERT INTO model_experiment (public_model_id, name, status, started_at) "
                         "VALUES ('preview/ui', 'Made in the UI', 'active', now()) RETURNING id")[0]["id"]
    vid = sql(ws.db_url, "INSERT INTO model_experiment_variant (experiment_id, label, weight) VALUES (%s, 'only', 1) "
                         "RETURNING id", (eid,))[0]["id"]
    sql(ws.db_url, "INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key) "
                   "VALUES (%s, %s, %s)", (vid, psycopg.types.json.Jsonb({"internal_id": "ui", "base_url":
                                                                           "https://ui.example.com/v1"}),
                                          psycopg.types.json.Jsonb(encrypt_api_key(BYOK, CANARY_IMPORTED))))
    imported = ws.expctl("import")
    assert imported.code == 0, (imported.out, imported.err)
    outputs.append(imported)
    env_var = next(word for word in imported.out.split() if word.startswith("EXPCTL_KEY_"))
    ws.monkeypatch.setenv(env_var, CANARY_IMPORTED)
    after_import = ws.expctl("plan", "--detailed-exitcode")
    # The resolved key equals the stored one: the adoption is the only change (exit 2).
    assert after_import.code == 2 and "Plan: 1 change" in after_import.out, after_import.out
    assert "adopt experiment" in after_import.out or "adopt_experiment" in after_import.out, after_import.out
    outputs.append(after_import)
    outputs.append(ws.reconcile())

    for args in (("simulate", "preview/x", "--subject", "user:42"), ("simulate", "preview/ui", "--sample", "200"),
                 ("simulate", "preview/x", "--sample", "50", "--from-manifests", "--format", "json"),
                 ("history",), ("history", "--format", "json"), ("cache", "refresh"), ("cache", "check"),
                 ("db", "init")):
        result = ws.expctl(*args)
        assert result.code == 0, (args, result.out, result.err)
        outputs.append(result)
    outputs += [p.read_text() for p in sorted(tmp_path.glob("*.json"))]
    outputs += [p.read_text() for p in sorted(ws.dir.glob("*.yaml"))]
    outputs.append(everything_stored(ws))
    outputs.append(redis_everything(ws.redis_url))
    checked = assert_clean(outputs)
    # The ciphertext is not the plaintext in any encoding either.
    assert not leaks(json.dumps(sql(ws.db_url, "SELECT encrypted_api_key FROM model_experiment_variant_version"),
                                default=str))
    figures.update(outputs_checked=checked, canaries=len(CANARIES))


def test_tracebacks_on_failures_hold_no_canary(ws: Workspace, figures: dict[str, object]) -> None:
    setup_canaries(ws)
    ws.write(*canary_manifests("draft"))
    assert ws.reconcile().code == 0
    ws.write(*canary_manifests("active"))
    ws.monkeypatch.setenv("KEY_A", CANARY_ROTATED)  # this run must encrypt a canary: a rotation
    failures: list[Result] = []

    # 1. A database error in the middle of the apply, after the keys were encrypted.
    sql(ws.db_url, "CREATE FUNCTION reliability_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "RAISE EXCEPTION 'injected failure on %', row_to_json(NEW); END $$")
    sql(ws.db_url, "CREATE TRIGGER reliability_boom BEFORE INSERT ON model_experiment_variant_version "
                   "FOR EACH ROW EXECUTE FUNCTION reliability_boom()")
    before = exact_dump(ws.db_url)
    db_error = debug_run(ws, "reconcile", "--auto-approve")
    assert db_error.code == 1 and "injected failure" in db_error.err and "Traceback" in db_error.err
    assert "nothing was applied" in db_error.err
    assert exact_dump(ws.db_url) == before
    failures.append(db_error)
    sql(ws.db_url, "DROP TRIGGER reliability_boom ON model_experiment_variant_version")

    # 2. Redis failing after the commit.
    with refused_port() as port:
        redis_down = debug_run(ws, "reconcile", "--auto-approve",
                               redis_url=f"redis://:{CANARY_REDIS_PASSWORD}@127.0.0.1:{port}/0")
    assert redis_down.code == 3 and "Traceback" in redis_down.err and "PostgreSQL is committed" in redis_down.err
    failures.append(redis_down)

    # 3. A stored key that does not decrypt: a wrong but well-formed BYOK key.
    ws.monkeypatch.setenv("BYOK_ENCRYPTION_KEY", WRONG_BYOK)
    for command in (("plan",), ("reconcile", "--auto-approve")):
        wrong = debug_run(ws, *command)
        assert wrong.code == 1, (wrong.out, wrong.err)
        assert "BYOK_ENCRYPTION_KEY decrypts none of the" in wrong.err
        failures.append(wrong)

    # 4. Malformed BYOK keys: not base64, wrong length, the canary itself.
    for bad in (f"{CANARY_ENV}!!", base64.b64encode(CANARY_FILE.encode()).decode(), CANARY_ROTATED):
        ws.monkeypatch.setenv("BYOK_ENCRYPTION_KEY", bad)
        malformed = debug_run(ws, "reconcile", "--auto-approve")
        assert malformed.code == 1 and "BYOK_ENCRYPTION_KEY" in malformed.err, malformed.err
        assert bad not in malformed.out + malformed.err
        failures.append(malformed)
    ws.monkeypatch.setenv("BYOK_ENCRYPTION_KEY", BYOK_B64)

    # 5. Unreachable PostgreSQL whose URL carries a password.
    with refused_port() as port:
        unreachable = debug_run(ws, "reconcile", "--auto-approve",
                                db_url=f"postgresql://expctl:{CANARY_DB_PASSWORD}@127.0.0.1:{port}/gateway")
    assert unreachable.code == 1 and "cannot connect to PostgreSQL" in unreachable.err
    failures.append(unreachable)

    # 6. A manifest that asks for expctl's own key as an api key (E304): refused, the key never read out.
    exfiltrate = canary_manifests()
    exfiltrate[0]["variants"][0]["api_key"] = {"from_env": "BYOK_ENCRYPTION_KEY"}
    ws.write(*exfiltrate)
    refused = debug_run(ws, "reconcile", "--auto-approve")
    assert refused.code == 1 and "E304" in refused.err, refused.err
    failures.append(refused)

    assert all("Traceback (most recent call last)" in f.err for f in failures)
    assert_clean(failures)
    assert not leaks(everything_stored(ws)) and not leaks(redis_everything(ws.redis_url))
    figures["failures_with_traceback"] = len(failures)


def test_debug_traceback_from_the_real_entry_point(ws: Workspace, tmp_path: Path) -> None:
    """`python -m expctl --debug` (main(), not run()) failing mid-apply with canaries resolved."""
    setup_canaries(ws)
    ws.write(*canary_manifests())
    sql(ws.db_url, "CREATE FUNCTION reliability_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "RAISE EXCEPTION 'injected failure on %', row_to_json(NEW); END $$")
    sql(ws.db_url, "CREATE TRIGGER reliability_boom BEFORE INSERT ON model_experiment "
                   "FOR EACH ROW EXECUTE FUNCTION reliability_boom()")
    env = child_env({"KEY_A": CANARY_ENV})
    done = spawn(ws.root, ["--debug", "reconcile", "--auto-approve", "--database-url", ws.db_url, "--redis-url",
                           ws.redis_url], env, tmp_path).wait(60)
    assert done.code == 1 and "Traceback" in done.err and "injected failure" in done.err, done.err
    assert not leaks(done.out + done.err), leaks(done.out + done.err)


def test_settings_repr_hides_the_environment(ws: Workspace) -> None:
    settings = Settings(ws.dir, ws.db_url, env={"KEY_A": CANARY_ENV, "BYOK_ENCRYPTION_KEY": BYOK_B64})
    assert not leaks(repr(settings)) and not leaks(repr(settings.resolver()))


# --- passwords in query strings -------------------------------------------------------------------


def cli(ws: Workspace, args: tuple[str, ...], db_url: str, redis_url: str, debug: bool) -> Result:
    """`expctl [--debug] ARGS --database-url DB --redis-url REDIS` in-process."""
    ws.capsys.readouterr()
    code = run([*(["--debug"] if debug else []), *args, "--database-url", db_url, "--redis-url", redis_url],
               debug=debug)
    captured = ws.capsys.readouterr()
    return Result(code, captured.out, captured.err)


def every_connecting_command(ws: Workspace, db_url: str, redis_url: str) -> list[tuple[tuple[str, ...], Result]]:
    """Each command of CONNECTING, plain and with `--debug`, whose failures print their traceback."""
    runs = []
    for args in CONNECTING:
        for debug in (False, True):
            result = cli(ws, args, db_url, redis_url, debug)
            assert ("Traceback (most recent call last)" in result.err) == (debug and result.code in (1, 3)), \
                (args, debug, result.err)
            runs.append((args, result))
    return runs


def test_query_string_passwords_of_unreachable_or_refusing_servers(ws: Workspace,
                                                                   figures: dict[str, object]) -> None:
    setup_canaries(ws)
    ws.write(*canary_manifests())
    query = f"password={CANARY_DB_QUERY}&sslpassword={CANARY_DB_SSL}&application_name=canary"
    outputs: list[Result] = []
    with refused_port() as port:
        db_down = f"postgresql://expctl@127.0.0.1:{port}/gateway?{query}"
        shown = f"postgresql://expctl@127.0.0.1:{port}/gateway?password=***&sslpassword=***&application_name=canary"
        for args, result in every_connecting_command(ws, db_down, ws.redis_url):
            assert result.code == 1, (args, result.out, result.err)
            assert f"cannot connect to PostgreSQL at {shown}: connection failed" in result.err, (args, result.err)
            outputs.append(result)

        # A password with an unencoded `/`: which part is the password depends on the parser, so the
        # URL is not shown at all, and neither is the driver's message.
        ambiguous = f"postgres://expctl:{CANARY_DB_PASSWORD}/x@127.0.0.1:{port}/gateway?{query}"
        for args, result in every_connecting_command(ws, ambiguous, ws.redis_url):
            assert result.code == 1, (args, result.out, result.err)
            assert "cannot connect to PostgreSQL at <unparseable URL>: details hidden" in result.err, result.err
            outputs.append(result)

    # A reachable PostgreSQL that refuses: the driver's message names the database, not the password.
    no_db = ws.db_url.rsplit("/", 1)[0] + f"/no_such_database?{query}"
    for args, result in every_connecting_command(ws, no_db, ws.redis_url):
        assert result.code == 1 and 'database "no_such_database" does not exist' in result.err, (args, result.err)
        assert "?password=***&sslpassword=***" in result.err
        outputs.append(result)

    # An ambiguous Redis URL is refused before anything is read or written.
    with refused_port() as port:
        bad_redis = f"redis://:{CANARY_REDIS_PASSWORD}/x@127.0.0.1:{port}/0?password={CANARY_REDIS_QUERY}"
        for args, result in every_connecting_command(ws, ws.db_url, bad_redis):
            if args[0] in ("history", "db"):
                assert result.code == 0, (args, result.err)  # they do not use Redis
            else:
                assert result.code == 1 and "not a valid Redis URL: <unparseable URL>" in result.err, result.err
            outputs.append(result)
    assert ws.rows("SELECT id FROM model_experiment") == []

    checked = assert_clean(outputs)
    assert not leaks(everything_stored(ws)) and not leaks(redis_everything(ws.redis_url))
    figures["query_string_runs"] = checked


def test_query_string_redis_password_when_the_refresh_fails_after_the_commit(
        ws: Workspace, tmp_path: Path, password_redis: RedisEndpoint, figures: dict[str, object]) -> None:
    setup_canaries(ws)
    ws.write(*canary_manifests())
    outputs: list[Result | Outcome] = []

    # Unreachable Redis: plan cannot read it (1), reconcile commits then fails (3), check drifts (2).
    with refused_port() as port:
        down = f"redis://127.0.0.1:{port}/0?password={CANARY_REDIS_QUERY}&db=0"
        shown = f"redis://127.0.0.1:{port}/0?password=***&db=0"
        for args, result in every_connecting_command(ws, ws.db_url, down):
            assert result.code == WHEN_REDIS_FAILS[args], (args, result.err)
            assert result.code == 0 or shown in result.out + result.err, (args, result.out, result.err)
            outputs.append(result)
    assert ws.experiment("exp")["status"] == "active"  # committed by the first reconcile

    # A reachable Redis that wants a password, given a wrong one in the query string: PostgreSQL is
    # committed, the refresh fails, exit 3 names the URL with the password masked.
    wrong = f"{password_redis.url}?password={CANARY_REDIS_QUERY}"
    for debug, status in ((False, "paused"), (True, "active")):
        ws.write(*canary_manifests(status))
        committed = cli(ws, ("reconcile", "--auto-approve"), ws.db_url, wrong, debug)
        assert committed.code == 3, (committed.out, committed.err)
        assert "PostgreSQL is committed" in committed.err, committed.err
        assert f"refreshing Redis failed for {password_redis.url}?password=*** (AuthenticationError)" in committed.err
        assert ws.experiment("exp")["status"] == status
        outputs.append(committed)
    for args, result in every_connecting_command(ws, ws.db_url, wrong):
        assert result.code == WHEN_REDIS_FAILS[args], (args, result.err)
        outputs.append(result)
    # With the right password in the query string the same URL works: the password is the one used.
    right = f"{password_redis.url}?password={REDIS_PASSWORD}"
    assert cli(ws, ("cache", "refresh"), ws.db_url, right, False).code == 0
    assert cli(ws, ("cache", "check"), ws.db_url, right, False).code == 0

    # The real entry point (`python -m expctl --debug`), its traceback included.
    env = child_env({"KEY_A": CANARY_ENV})
    done = spawn(ws.root, ["--debug", "reconcile", "--auto-approve", "--database-url", ws.db_url, "--redis-url",
                           wrong], env, tmp_path).wait(60)
    assert done.code == 3 and "Traceback" in done.err and "password=***" in done.err, done.err
    outputs.append(done)

    checked = assert_clean(outputs)
    assert not leaks(everything_stored(ws)) and not leaks(redis_everything(right))
    figures["query_string_runs_after_commit"] = checked


@pytest.mark.parametrize("reference", ["/proc/self/environ", "/proc/self/cmdline", "secrets/environ-link",
                                       ".expctl/byok.key", "secrets/byok-link"])
def test_proc_style_references_never_carry_the_byok_key_or_the_db_password_out(
        ws: Workspace, reference: str) -> None:
    """The BYOK key and a database password sit in the environment (and the local key file) of a run
    whose manifest points a secret at them: every command refuses, prints neither, stores nothing."""
    ws.monkeypatch.setenv("PGPASSWORD", CANARY_DB_PASSWORD)
    (ws.root / ".expctl").mkdir()
    (ws.root / ".expctl" / "byok.key").write_text(BYOK_B64)
    (ws.root / "secrets").mkdir()
    (ws.root / "secrets" / "environ-link").symlink_to("/proc/self/environ")
    (ws.root / "secrets" / "byok-link").symlink_to(ws.root / ".expctl" / "byok.key")
    ws.write(manifest("exp", "active", variants=[
        {"label": "only", "weight": 1, "upstream": {"internal_id": "u", "base_url": "https://collector.example.net"},
         "api_key": {"from_file": reference}}]))
    before = exact_dump(ws.db_url)
    ws.capsys.readouterr()
    validated = Result(run(["validate"]), *ws.capsys.readouterr())
    assert "E306" in validated.out + validated.err or reference.startswith("secrets/")
    outputs = [validated] + [debug_run(ws, *args) for args in (
        ("plan",), ("plan", "--format", "json"), ("reconcile", "--auto-approve"), ("apply", "--auto-approve"))]
    assert all(result.code == 1 for result in outputs[1:]), [(r.code, r.err) for r in outputs]
    for result in outputs:
        assert leaks(result.out + result.err) == [], result.err
    assert exact_dump(ws.db_url) == before
    assert not redis_everything(ws.redis_url)


@pytest.mark.parametrize("upstream_extra", [
    {"extra_headers": {"x-team": CANARY_ENV}},
    {"extra_headers": {"Authorization": f"Bearer {CANARY_FILE}"}},
    {"extra_headers": {"X-Api-Key": CANARY_ROTATED}},
    {"compression": {"enabled": True, "model_alias": "small", "api_key": CANARY_IMPORTED}},
], ids=["header-value", "authorization", "x-api-key", "compression-api-key"])
def test_credentials_in_extra_headers_or_compression_never_leave(ws: Workspace, upstream_extra: dict[str, Any]) -> None:
    """The 2026-11 upstream has free-form headers and a compression block: a credential put there is
    refused at validate time, named by its place, never echoed, and nothing is written."""
    upstream = {"internal_id": "u", "base_url": "https://partner.example.com/v1", **upstream_extra}
    ws.write(manifest("exp", "active", variants=[
        {"label": "only", "weight": 1, "upstream": upstream, "api_key": {"from_env": "KEY_A"}}]))
    before = exact_dump(ws.db_url)
    ws.capsys.readouterr()
    validated = Result(run(["validate"]), *ws.capsys.readouterr())
    outputs = [validated] + [debug_run(ws, *args) for args in (
        ("plan",), ("plan", "--format", "json"), ("plan", "--format", "github"), ("reconcile", "--auto-approve"))]
    assert all(result.code == 1 for result in outputs), [(r.code, r.err) for r in outputs]
    assert any(code in validated.out + validated.err for code in ("E303", "E307", "E308"))
    for result in outputs:
        assert leaks(result.out + result.err) == [], result.out + result.err
    assert exact_dump(ws.db_url) == before
    assert not redis_everything(ws.redis_url)
