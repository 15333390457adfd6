"""Renders manifest problems as text, JSON or GitHub workflow annotations — pure core."""

from __future__ import annotations

import json
from collections.abc import Sequence

from expctl.core.errors import Problem
from expctl.core.manifest.problem_cap import cap_per_file, problem_count


def problems_text(problems: Sequence[Problem], files: int, experiments: int) -> str:
    """Every problem with its hint (at most `problem_cap.MAX_PROBLEMS_PER_FILE` of a file, then
    one E199 line); the last line counts all of them."""
    if not problems:
        return _last_line(problems, files, experiments) + "\n"
    lines = []
    for p in cap_per_file(problems):
        lines.append(f"{p.location}: {p.code} {p.message}")
        if p.hint:
            lines.append(f"    hint: {p.hint}")
    lines.append(_last_line(problems, files, experiments))
    return "\n".join(lines) + "\n"


def _last_line(problems: Sequence[Problem], files: int, experiments: int) -> str:
    if not problems:
        return f"OK: {experiments} experiment(s) in {files} file(s), no problems"
    paths = {p.location.path for p in problems}
    return f"{problem_count(problems)} problem(s) in {len(paths)} file(s)"


def problems_json(problems: Sequence[Problem], files: int, experiments: int) -> str:
    record = {
        "ok": not problems,
        "files": files,
        "experiments": experiments,
        "problems": [p.to_record() for p in cap_per_file(problems)],
    }
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(level: str, path: str, line: int, col: int, title: str, message: str) -> str:
    """One GitHub Actions workflow command, escaped as the runner expects."""
    props = f"file={_escape_property(path)},line={line},col={col},title={_escape_property(title)}"
    return f"::{level} {props}::{_escape_data(message)}"


def problems_github(problems: Sequence[Problem], files: int, experiments: int) -> str:
    lines = [
        github_annotation("error", p.location.path, p.location.line, p.location.col, p.code,
                          f"{p.message}" + (f" — {p.hint}" if p.hint else ""))
        for p in cap_per_file(problems)
    ]
    lines.append(_last_line(problems, files, experiments))
    return "\n".join(lines) + "\n"


PROBLEM_RENDERERS = {"text": problems_text, "json": problems_json, "github": problems_github}
