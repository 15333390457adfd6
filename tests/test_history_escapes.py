"""`expctl history` cannot be used to drive the reader's terminal (issue 13): the actor comes from the
environment and the rest of the audit row from whoever can write the table, so the text format
escapes control characters (C0, DEL, C1) and bidi overrides in every field; JSON escapes them itself."""

from __future__ import annotations

import json
import re

from tests.workspace import Workspace, manifest

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
ACTOR = "mallory\x1b[2J\x1b[31mroot\r\nfake: line\u202etxt.exe\x9b\x07\x7f"


def test_history_escapes_the_actor_and_every_field(ws: Workspace) -> None:
    ws.monkeypatch.setenv("EXPCTL_ACTOR", ACTOR)
    ws.monkeypatch.setenv("GITHUB_SHA", "\x1b]0;title\x07abc")
    ws.write(manifest("exp", "draft"))
    assert ws.reconcile().code == 0
    ws.execute("INSERT INTO expctl_run (command, actor, git_revision, plan_id, outcome, summary) VALUES "
               "(:command, NULL, NULL, :plan, :outcome, CAST(:summary AS jsonb))",
               command="apply\x1b[8m", plan="sha256:\u2066x", outcome="applied\n#99  forged run",
               summary=json.dumps({"counts": {"total": "3\x1b[1A"}}))

    text = ws.expctl("history")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert len(lines) == 2 and all(line.startswith("#") for line in lines), text.out
    assert not UNSAFE.search(text.out.replace("\n", "")), repr(text.out)
    assert "actor=mallory\\x1b[2J\\x1b[31mroot\\r\\nfake: line\\u202etxt.exe\\x9b\\x07\\x7f" in text.out
    assert "rev=\\x1b]0;title" in text.out
    assert "apply\\x1b[8m" in text.out and "applied\\n#99  forged run" in text.out
    assert "3\\x1b[1A change(s)" in text.out and "plan=sha256:\\u2066x" in text.out

    as_json = ws.expctl("history", "--format", "json")
    runs = json.loads(as_json.out)
    assert runs[1]["actor"] == ACTOR and not UNSAFE.search(as_json.out.replace("\n", ""))


def test_history_text_of_ordinary_runs_is_unchanged(ws: Workspace) -> None:
    ws.monkeypatch.setenv("EXPCTL_ACTOR", "ci-bot")
    ws.monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef0123")
    ws.write(manifest("exp", "draft"))
    assert ws.reconcile().code == 0
    out = ws.expctl("history").out
    assert re.fullmatch(r"#\d+  \S+ \S+  reconcile  applied     \d+ change\(s\)  actor=ci-bot  rev=0123456789ab  "
                        r"plan=sha256:[0-9a-f]{12}\n", out), out
