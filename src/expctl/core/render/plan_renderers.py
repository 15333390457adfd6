"""The plan renderers by `--format` name, all with one signature: (record, color) -> text — pure core.

Each reads only the dict of `Plan.to_record()`. `color` matters only to the terminal renderer;
the others accept and ignore it so the CLI can call any of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from expctl.core.render.json_plan import render_json
from expctl.core.render.markdown import render_markdown
from expctl.core.render.text import render_text

PlanRenderer = Callable[[Mapping[str, Any], bool], str]


def _text(record: Mapping[str, Any], color: bool) -> str:
    return render_text(record, color=color)


def _markdown(record: Mapping[str, Any], color: bool) -> str:
    return render_markdown(record)


def _json(record: Mapping[str, Any], color: bool) -> str:
    return render_json(record)


PLAN_RENDERERS: dict[str, PlanRenderer] = {"text": _text, "markdown": _markdown, "json": _json}
