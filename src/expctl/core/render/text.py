"""Terminal rendering of a plan record, plus the plan-level wording shared with markdown — pure core.

Renderers read only the dict of `Plan.to_record()` (never the Plan object), so a saved JSON plan
re-renders identically. Irreversible actions and traffic shifts come first (docs/design.md#plans),
then the details per experiment, the unmanaged experiments and the Redis membership.

What one change reads as is in `describe` (which also keeps api keys to fingerprints on its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from expctl.core.render.clean import clean
from expctl.core.render.describe import CHECKED_AT_APPLY, describe_change, key_text, limited, value_text
from expctl.core.render.drift_view import context_parts, drift_note, drift_text, is_held, partial_note

Record = Mapping[str, Any]

TRAFFIC_KINDS = frozenset({"transition", "hot_swap", "add_variant", "remove_variant", "reweight_variant"})

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"


# ---------------------------------------------------------------- shared wording (markdown too)

def short_id(plan_id: str) -> str:
    return plan_id[: len("sha256:") + 12]


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def all_changes(record: Record) -> list[tuple[Record, Record]]:
    return [(e, c) for e in record["experiments"] for c in e["changes"]]


def is_traffic_shift(change: Record) -> bool:
    return bool(change["routing"]) and change["kind"] in TRAFFIC_KINDS


def is_headline(change: Record) -> bool:
    """Irreversible or traffic-shifting: what a reviewer must see before anything else."""
    return bool(change["irreversible"]) or is_traffic_shift(change)


def counts(record: Record) -> tuple[int, int, int, int]:
    """(changes, irreversible, traffic shifts that are not also irreversible, refused); held drift,
    which is not applied, is counted apart (`drift_note`)."""
    changes = [c for _, c in all_changes(record) if not is_held(c)]
    irreversible = sum(1 for c in changes if c["irreversible"])
    shifts = sum(1 for c in changes if is_traffic_shift(c) and not c["irreversible"])
    refused = sum(1 for c in changes if not c["allowed"])
    return len(changes), irreversible, shifts, refused


def deferred_key_checks(record: Record) -> int:
    """Key comparisons the plan could not make (no BYOK key or secret here): done at apply."""
    return sum(1 for _, c in all_changes(record)
               if c["kind"] == "rotate_key" and (c["reason"] == CHECKED_AT_APPLY
                                                 or key_text(c["after"]).startswith(CHECKED_AT_APPLY)))


def deferred_note(record: Record) -> str:
    deferred = deferred_key_checks(record)
    return f"; {plural(deferred, 'api key')} checked at apply" if deferred else ""


def action_word(change: Record) -> str:
    """A short verb for tables and groups: complete, activate, hot-swap, rotate key…"""
    kind = change["kind"]
    if kind == "transition":
        after = change["after"]
        if after == "active":
            return "resume" if change["before"] == "paused" else "activate"
        return {"completed": "complete", "paused": "pause"}.get(after, f"status {value_text(after)}")
    if kind == "update_field":
        return f"set {value_text(change['field'])}"
    if kind == "rotate_key" and key_text(change["after"]).startswith(CHECKED_AT_APPLY):
        return "check key"
    words = {"create_experiment": "create", "delete_experiment": "delete", "reweight_variant": "reweight",
             "hot_swap": "hot-swap", "rotate_key": "rotate key", "adopt_experiment": "adopt"}
    return words.get(kind, str(kind).replace("_", " "))


def sign(change: Record) -> str:
    if is_held(change):
        return "="
    if not change["allowed"]:
        return "!"
    return {"create_experiment": "+", "add_variant": "+", "remove_variant": "-", "delete_experiment": "-"}.get(
        change["kind"], "~")


def location_text(change: Record) -> str:
    loc = change["location"]
    return "no manifest location" if loc is None else f"{loc['path']}:{loc['line']}:{loc['col']}"


def change_body(change: Record) -> str:
    """The line after the sign: what the change does, or `REFUSED …: <reason> (path:line:col)`."""
    text = describe_change(change)
    drift = drift_text(change)
    if is_held(change):
        return f"{text} [{drift}]"
    if not change["allowed"]:
        return f"REFUSED {text}: {change['reason']} ({location_text(change)})"
    reason = change["reason"]
    return text + (f" ({reason})" if reason and reason not in text else "") + (f" [{drift}]" if drift else "")


def change_line(change: Record) -> str:
    """`~ status: active -> completed`, or `! REFUSED …: <reason> (path:line:col)`."""
    return f"{sign(change)} {change_body(change)}"


def percent(share: float) -> str:
    value = share * 100
    return f"{round(value)}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"


def shares_text(before: Mapping[str, float], after: Mapping[str, float]) -> str | None:
    """`control 50% -> 33%, treatment 50% -> 67%`, or None when the shares do not move."""
    if dict(before) == dict(after):
        return None
    labels = list(after) + [label for label in before if label not in after]
    return ", ".join(f"{label} {percent(before.get(label, 0.0))} -> {percent(after.get(label, 0.0))}"
                     for label in labels)


def membership_text(cache: Record) -> str:
    """The Redis membership change as a diff, so 10,000 routed ids stay one short line."""
    after = list(cache["membership_after"])
    before = cache["membership_before"]
    drift = "; drift: Redis differs from PostgreSQL (apply or `expctl cache refresh` rewrites it)" \
        if cache["drift"] else ""
    if before is None:
        # With drift the key was read and is missing or corrupt; without, Redis was not consulted.
        state = "missing or unreadable in Redis" if cache["drift"] else "unknown (Redis not read)"
        return f"{state} -> {plural(len(after), 'public id')}{drift}"
    before_set, after_set = set(before), set(after)
    added = [p for p in after if p not in before_set]
    removed = [p for p in before if p not in after_set]
    if not added and not removed:
        return f"unchanged ({plural(len(after), 'public id')}){drift}"
    parts = ([f"+{limited(added)}"] if added else []) + ([f"-{limited(removed)}"] if removed else [])
    return f"{len(before)} -> {plural(len(after), 'public id')} ({'; '.join(parts)}){drift}"


def profile_note(record: Record) -> str:
    """` (gateway profile 2026-11)`; nothing for a record made before profiles existed."""
    profile = record.get("gateway_profile")
    parts = ([f"gateway profile {profile}"] if profile else []) + context_parts(record)
    return clean(f" ({', '.join(parts)})") if parts else ""


def verdict(record: Record) -> str:
    total, irreversible, shifts, refused = counts(record)
    if total == 0:
        return "No changes." + drift_note(record, lead=" ") + attention_note(record)
    text = (f"Plan: {plural(total, 'change')} ({irreversible} irreversible, {plural(shifts, 'traffic shift')}"
            f"{deferred_note(record)}{drift_note(record)}), {refused} refused")
    return text + (": nothing will be applied" if refused else "") + attention_note(record)


# ---------------------------------------------------------------- api key findings (markdown too)

_ATTENTION_COUNTS = (("key_host_changes", "api key sent to a new host", "api keys sent to a new host"),
                     ("unavailable_secrets", "secret not available here", "secrets not available here"),
                     ("unreadable_stored_keys", "stored key unreadable", "stored keys unreadable"))


def attention_note(record: Record) -> str:
    """` Attention: 1 api key sent to a new host, 2 secrets not available here.` or nothing."""
    summary = record["summary"]
    parts = [plural(summary.get(key, 0), one, many) for key, one, many in _ATTENTION_COUNTS if summary.get(key)]
    return f" Attention: {', '.join(parts)}." if parts else ""


def attention_groups(record: Record) -> list[tuple[str, list[Record]]]:
    """Findings grouped by message (a secret shared by many variants reads as one finding), host
    changes first, in record order."""
    groups: dict[str, list[Record]] = {}
    for item in sorted(record.get("attention", ()), key=lambda a: a["kind"] != "key_sent_to_new_host"):
        groups.setdefault(item["message"], []).append(item)
    return list(groups.items())


def attention_place(item: Record) -> str:
    return f"{item['experiment']}/{item['variant']} ({location_text(item)})"


# ---------------------------------------------------------------- terminal rendering

def _paint(line: str, change: Record, color: bool) -> str:
    if not color:
        return line
    if not change["allowed"]:
        return f"{_BOLD}{_RED}{line}{_RESET}"
    if change["irreversible"] or sign(change) == "-":
        return f"{_RED}{line}{_RESET}"
    return f"{_GREEN if sign(change) == '+' else _YELLOW}{line}{_RESET}"


def headline_changes(record: Record) -> list[tuple[Record, Record]]:
    """Irreversible changes first, then traffic shifts, each group in plan order."""
    changes = [(e, c) for e, c in all_changes(record) if not is_held(c)]
    return [(e, c) for e, c in changes if c["irreversible"]] + [
        (e, c) for e, c in changes if is_traffic_shift(c) and not c["irreversible"]]


def traffic_text(experiment: Record) -> str | None:
    """The experiment's share move; flagged when a refusal in it means the move will not happen."""
    moved = shares_text(experiment["shares_before"], experiment["shares_after"])
    if not moved or not experiment["changes"]:
        return None
    blocked = any(not c["allowed"] for c in experiment["changes"])
    return f"traffic{' (blocked by the refusal)' if blocked else ''}: {moved}"


def _headline_section(record: Record, color: bool) -> list[str]:
    lines = []
    for experiment, change in headline_changes(record):
        tag = "irreversible" if change["irreversible"] else "traffic shift"
        line = clean(f"  {experiment['name']}: {change_line(change)}  [{tag}]")
        lines.append(_paint(line, change, color))
    return ["Irreversible and traffic-shifting:", *lines, ""] if lines else []


def _experiment_section(experiment: Record, color: bool) -> list[str]:
    where = f"id {experiment['experiment_id']}" if experiment["experiment_id"] else "new"
    lines = [clean(f"{experiment['name']} ({experiment['public_model_id']}, {where}):")]
    lines += [_paint(clean(f"  {change_line(c)}"), c, color) for c in experiment["changes"]]
    traffic = traffic_text(experiment)
    if traffic:
        lines.append(clean(f"  {traffic}"))
    lines += [clean(f"  note: {note}") for note in experiment["notes"]]
    return [*lines, ""]


def _unmanaged_lines(unmanaged: Iterable[Record]) -> list[str]:
    return [clean(f"{_owner(u)}: {u['name']} ({u['public_model_id']}, {u['status']})") for u in unmanaged]


def _owner(unmanaged: Record) -> str:
    scope = unmanaged.get("scope")
    return f"scope {scope} (never touched)" if scope else "unmanaged (never touched)"


def _attention_section(record: Record) -> list[str]:
    lines = []
    for message, items in attention_groups(record):
        lines.append(clean(f"  ! {message}:"))
        lines += [clean(f"      {attention_place(item)}") for item in items]
    return ["Attention (api keys):", *lines, ""] if lines else []


def render_text(record: Record, color: bool = False) -> str:
    """The plan for a terminal; ANSI colours only when `color` (the caller checks for a TTY)."""
    head = f"expctl plan {short_id(record['plan_id'])}{profile_note(record)}"
    summary = verdict(record)
    if color:
        head = f"{_BOLD}{head}{_RESET}"
        summary = f"{_BOLD}{_RED}{summary}{_RESET}" if counts(record)[3] else f"{_BOLD}{summary}{_RESET}"
    partial = partial_note(record)
    lines = [head, summary, *([partial] if partial else []), ""]
    lines += _headline_section(record, color)
    lines += _attention_section(record)
    for experiment in record["experiments"]:
        if experiment["changes"] or experiment["notes"]:
            lines += _experiment_section(experiment, color)
    lines += _unmanaged_lines(record["unmanaged"])
    lines.append(clean(f"cache membership: {membership_text(record['cache'])}"))
    return "\n".join(lines) + "\n"
