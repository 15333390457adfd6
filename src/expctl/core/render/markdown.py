"""GitHub pull-request comment rendering of a plan record — pure core.

Order (docs/design.md#plans): verdict, irreversible actions and traffic shifts, refusals, a summary table,
then per-experiment details, unmanaged experiments and the Redis membership. A comment holds at
most 65,536 characters, so the output is fitted to `max_chars` by degrading the least important
parts first: details go, then the unmanaged list shrinks to a count, then the table keeps only
the rows that fit. The verdict, the refusals and every irreversible action are never cut; only
when even that does not fit are the traffic shifts first grouped by action (every experiment
still named) and then merely counted.

All user text (names, ids, values, reasons) is escaped: HTML `<`, `>`, `&` and the markdown
punctuation that could forge links, emphasis or table columns.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence

from expctl.core.render.clean import clean
from expctl.core.render.describe import describe_change
from expctl.core.render.drift_view import drift_note, drift_text, is_held, partial_note
from expctl.core.render.text import (
    Record,
    action_word,
    all_changes,
    attention_groups,
    attention_note,
    attention_place,
    change_body,
    counts,
    deferred_note,
    headline_changes,
    is_headline,
    is_traffic_shift,
    membership_text,
    plural,
    profile_note,
    shares_text,
    sign,
    traffic_text,
)

MARKER = "<!-- expctl-plan -->"
GITHUB_COMMENT_LIMIT = 65536
_TABLE_HEAD = "| Experiment | Public model id | Actions | Refused |\n|---|---|---|---|\n"
_MD_SPECIAL = str.maketrans({ch: "\\" + ch for ch in "\\`*_[]|~"})


def escape(text: str) -> str:
    """Safe inline markdown for user text: one line, no HTML, no markdown syntax, no `|`."""
    one_line = clean(text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
    # An arrow reads better than the escaped "-&gt;" the plain-text wording would become.
    return html.escape(one_line.translate(_MD_SPECIAL), quote=False).replace(" -&gt; ", " → ")


def _code(text: str) -> str:
    """A code span when that is safe (no backtick to close it early), else escaped text."""
    return f"`{clean(text)}`" if "`" not in text and "\n" not in text else escape(text)


def _join(*blocks: str) -> str:
    return "\n".join(block for block in blocks if block)


# ---------------------------------------------------------------- parts that are never cut

def _verdict(record: Record) -> str:
    total, irreversible, shifts, refused = counts(record)
    if total == 0:
        return "**No changes.**" + escape(drift_note(record, lead=" ") + attention_note(record))
    tally = (f"{plural(total, 'change')}, {irreversible} irreversible, {plural(shifts, 'traffic shift')}"
             f"{deferred_note(record).replace(';', ',')}{drift_note(record, lead=', ')}")
    note = escape(attention_note(record))
    if refused:
        return f"❌ **{refused} refused: nothing will be applied** ({tally}){note}"
    return f"**{tally}, 0 refused**{note}"


def _head(record: Record) -> str:
    plan = f"Plan {_code(record['plan_id'])}{escape(profile_note(record))}"
    partial = partial_note(record)
    plan += f"\n\n_{escape(partial)}_" if partial else ""
    return f"{MARKER}\n### expctl plan\n{_verdict(record)}\n\n{plan}\n"


def _drift(record: Record) -> str:
    """Every drift change, never cut: an on-call person's pause must not vanish from a comment."""
    bullets = [f"- **{escape(e['name'])}**: {escape(describe_change(c))} — {escape(drift_text(c))}"
               for e, c in all_changes(record) if c.get("drift")]
    if not bullets:
        return ""
    return "#### ↩️ Drift: changed outside expctl since its last apply\n" + "".join(b + "\n" for b in bullets)


def _headline_bullet(experiment: Record, change: Record) -> str:
    icon = "⚠️" if change["irreversible"] else "🔀"
    text = f"{experiment['name']} ({experiment['public_model_id']}): {describe_change(change)}"
    after = change["shares_after"]
    moved = shares_text(experiment["shares_before"], after) if after is not None else None
    if moved:
        text += f"; traffic {moved}"
    refused = " (refused)" if not change["allowed"] else ""
    return f"- {icon} **{escape(action_word(change))}** {escape(text)}{refused}"


def _irreversible_bullets(record: Record) -> list[str]:
    return [_headline_bullet(e, c) for e, c in all_changes(record) if c["irreversible"]]


def _shifts(record: Record) -> list[tuple[Record, Record]]:
    return [(e, c) for e, c in all_changes(record) if is_traffic_shift(c) and not c["irreversible"]]


def _grouped_shifts(record: Record, with_names: bool) -> list[str]:
    """Traffic shifts as one bullet per action; names listed only when `with_names`."""
    groups: dict[str, list[str]] = defaultdict(list)
    for experiment, change in _shifts(record):
        groups[action_word(change)].append(experiment["name"])
    bullets = []
    for action, names in groups.items():
        head = f"- 🔀 **{escape(action)}** in {plural(len(names), 'experiment')}"
        tail = ": " + ", ".join(escape(n) for n in names) if with_names else " (see the table and the plan artifact)"
        bullets.append(head + tail)
    return bullets


def _headline_levels(record: Record) -> Iterator[str]:
    """The irreversible/traffic section, from fullest to most compact; irreversible always in full."""
    if not any(is_headline(c) for _, c in all_changes(record)):
        yield ""
        return
    title = "#### Irreversible actions and traffic shifts\n"
    irreversible = _irreversible_bullets(record)
    yield title + "".join(_headline_bullet(e, c) + "\n" for e, c in headline_changes(record))
    for with_names in (True, False):
        yield title + "".join(line + "\n" for line in irreversible + _grouped_shifts(record, with_names))


def _refusals(record: Record) -> str:
    bullets = []
    for experiment, change in all_changes(record):
        if change["allowed"] or is_held(change):
            continue
        loc = change["location"]
        where = f" at {_code(loc['path'] + ':' + str(loc['line']))}" if loc is not None else ""
        reason = f"{describe_change(change)}: {change['reason']}"
        bullets.append(f"- **{escape(experiment['name'])}**{where} — {escape(reason)}")
    if not bullets:
        return ""
    return "#### ❌ Refused changes (nothing will be applied)\n" + "".join(b + "\n" for b in bullets)


def _attention_levels(record: Record) -> list[str]:
    """The api key findings, from fullest to most compact: up to ten places per finding, then the
    findings without places, then only the counts (every place is in the JSON plan)."""
    groups = attention_groups(record)
    if not groups:
        return [""]
    title = "#### 🔑 Api keys: look here\n"

    def bullet(message: str, items: list[Record], places: int) -> str:
        shown = ", ".join(escape(attention_place(item)) for item in items[:places])
        more = f", … and {len(items) - places} more" if len(items) > places else ""
        where = f": {shown}{more}" if places else f" ({plural(len(items), 'variant')})"
        return f"- ⚠️ {escape(message)}{where}\n"

    return [title + "".join(bullet(m, items, places) for m, items in groups) for places in (10, 0)] + [
        title + f"{escape(attention_note(record).strip())} See the JSON plan for each place.\n"]


_OBSERVED_LIMIT = 20


def _observed(observed: Mapping[str, str] | None) -> str:
    """One line of observed traffic per routed experiment the plan changes (`expctl status`),
    at most `_OBSERVED_LIMIT` of them: a size the never-cut part can afford."""
    if not observed:
        return ""
    names = sorted(observed)
    lines = [f"- **{escape(name)}**: {escape(observed[name])}\n" for name in names[:_OBSERVED_LIMIT]]
    if len(names) > _OBSERVED_LIMIT:
        lines.append(f"- … and {len(names) - _OBSERVED_LIMIT} more (`expctl status`)\n")
    return "#### Observed traffic of the experiments changed\n" + "".join(lines)


# ---------------------------------------------------------------- parts that shrink to fit

def _actions(changes: Sequence[Record]) -> str:
    tally = Counter(action_word(c) for c in changes)
    return ", ".join(word if n == 1 else f"{word} x{n}" for word, n in tally.items())


def _row_rank(experiment: Record) -> int:
    # A collapsed table keeps its first rows, so those a reviewer must see come first.
    changes = experiment["changes"]
    if any(not c["allowed"] for c in changes):
        return 0
    if any(c["irreversible"] for c in changes):
        return 1
    return 2 if any(is_traffic_shift(c) for c in changes) else 3


def _table_rows(record: Record) -> list[str]:
    rows = []
    for experiment in sorted((e for e in record["experiments"] if e["changes"]), key=_row_rank):
        changes = experiment["changes"]
        refused = sum(1 for c in changes if not c["allowed"])
        cells = [experiment["name"], experiment["public_model_id"], _actions(changes), str(refused)]
        rows.append("| " + " | ".join(escape(cell) for cell in cells) + " |\n")
    return rows


def _table(rows: Sequence[str], kept: int) -> str:
    """The summary table with its first `kept` rows, and a "… and N more" line for the others."""
    if not rows:
        return ""
    more = f"\n… and {len(rows) - kept} more experiments (see the plan artifact)\n" if kept < len(rows) else ""
    return "#### Summary\n" + _TABLE_HEAD + "".join(rows[:kept]) + more


def _fitted_table(rows: Sequence[str], budget: int) -> str | None:
    """The table with as many rows as fit in `budget` characters; None if not even the header fits."""
    full = _table(rows, len(rows))
    if len(full) <= budget:
        return full
    # The "… and N more" line only gets shorter as rows are kept, so its zero-row length is a safe reserve.
    used, kept = len(_table(rows, 0)), 0
    while kept < len(rows) and used + len(rows[kept]) <= budget:
        used += len(rows[kept])
        kept += 1
    return _table(rows, kept) if used <= budget else None


def _detail(experiment: Record) -> str:
    lines = [
        f"- `{sign(c)}` {escape(change_body(c))}" if c["allowed"] else f"- ❌ {escape(change_body(c))}"
        for c in experiment["changes"]
    ]
    traffic = traffic_text(experiment)
    if traffic:
        lines.append(f"- {escape(traffic)}")
    lines += [f"- note: {escape(note)}" for note in experiment["notes"]]
    what = plural(len(experiment["changes"]), "change") if experiment["changes"] else "notes"
    summary = html.escape(clean(f"{experiment['name']} ({experiment['public_model_id']}): {what}"), quote=False)
    return f"<details><summary>{summary}</summary>\n\n" + "\n".join(lines) + "\n\n</details>\n"


def _details(record: Record) -> str:
    shown = [_detail(e) for e in record["experiments"] if e["changes"] or e["notes"]]
    return "#### Details\n" + "".join(shown) if shown else ""


def _omitted(record: Record, artifact_hint: str | None) -> str:
    if not any(e["changes"] or e["notes"] for e in record["experiments"]):
        return ""
    where = f": {escape(artifact_hint)}" if artifact_hint else ""
    return f"_Per-change details omitted to fit in a comment{where}._\n"


def _unmanaged(record: Record, short: bool) -> str:
    unmanaged = record["unmanaged"]
    if not unmanaged:
        return ""
    title = f"#### Unmanaged experiments (never touched): {len(unmanaged)}\n"
    if short:
        return title + "Not listed here for size; see the plan artifact.\n"
    return title + "".join(
        f"- {escape(u['name'])} ({escape(u['public_model_id'])}, {escape(u['status'])})\n" for u in unmanaged)


def _cache(record: Record) -> str:
    return f"**Cache membership:** {escape(membership_text(record['cache']))}\n"


# ---------------------------------------------------------------- fitting

def render_markdown(
    record: Record, max_chars: int = GITHUB_COMMENT_LIMIT, artifact_hint: str | None = None,
    observed: Mapping[str, str] | None = None,
) -> str:
    """The plan as a PR comment of at most `max_chars` characters (see the module docstring);
    `observed` maps experiment names to their one-line observed status, shown after the headline."""
    head, refusals, cache = _head(record), _refusals(record) + _drift(record), _cache(record)
    rows, details, omitted = _table_rows(record), _details(record), _omitted(record, artifact_hint)
    unmanaged_full, unmanaged_short = _unmanaged(record, short=False), _unmanaged(record, short=True)
    full_table = _table(rows, len(rows))
    out = ""
    for attention in _attention_levels(record):
        for headline in _headline_levels(record):
            top = (head, headline, _observed(observed), refusals, attention)
            for tail in ((details, unmanaged_full), (omitted, unmanaged_full), (omitted, unmanaged_short)):
                out = _join(*top, full_table, *tail, cache)
                if len(out) <= max_chars:
                    return out
            table = _fitted_table(rows, budget=max_chars - len(_join(*top, *tail, cache)) - 1)
            if table is not None:
                return _join(*top, table, *tail, cache)
            out = _join(*top, _table(rows, 0), *tail, cache)
    # Only absurd sizes get here (refusals or irreversible actions alone exceed the limit): the
    # most compact form is returned whole rather than cutting what must never be cut.
    return out
