"""Terminal rendering of a status record, and the wording shared with markdown — pure core.

Renderers read only the dict of `StatusReport.to_record()`, as the plan renderers read the plan's
record. Every text a user or the admin UI wrote (names, labels, public ids) goes through `clean`.
The split is drawn as a bar of the observed share with `|` where the declared share would put it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from expctl.core.render.clean import clean
from expctl.core.render.text import plural

Record = Mapping[str, Any]
BAR_WIDTH = 20
_VERDICTS = {"ok": "ok", "mismatch": "MISMATCH", "too_few_units": "not tested, too few users",
             "not_applicable": "not tested, one variant"}


def bar(observed: float | None, declared: float, width: int = BAR_WIDTH) -> str:
    """`width` cells filled in proportion to `observed`, with `|` inserted at the declared share."""
    filled = round((observed or 0.0) * width)
    cells = "█" * filled + "░" * (width - filled)
    mark = round(declared * width)
    return cells[:mark] + "|" + cells[mark:]


def number(value: int) -> str:
    return f"{value:,}"


def percent(share: float | None, digits: int = 1) -> str:
    return "-" if share is None else f"{share * 100:.{digits}f}%"


def dollars(microdollars: int) -> str:
    return f"${microdollars / 1_000_000:,.2f}"


def compact(value: int) -> str:
    """Token counts in three significant digits: 950, 12.3k, 4.56M."""
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return str(value)


def tokens(counts: Record) -> str:
    return f"{compact(counts['tokens']['input'])}/{compact(counts['tokens']['output'])}"


def short(identifier: str) -> str:
    return identifier[:8]


def headline(record: Record) -> str:
    summary, rules = record["summary"], record["rules"]
    return (f"{plural(summary['experiments'], 'experiment')}, {summary['flagged']} flagged "
            f"(gateway profile {record['gateway_profile']}; SRM when p < {rules['srm_threshold']:g} over "
            f"distinct users)")


def window_text(experiment: Record) -> str:
    window = experiment["window"]
    why = " (since the current versions took effect)" if window["default_since"] else ""
    return f"{window['since']} .. {window['until']}{why}"


def srm_text(experiment: Record) -> str:
    srm, anonymous = experiment["srm"], experiment["totals"]["anonymous_requests"]
    verdict = _VERDICTS[srm["verdict"]]
    detail = f"chi-square {srm['chi_square']:.2f}, df {srm['df']}, p = {srm['p_value']:.3g}, " \
        if srm["p_value"] is not None else ""
    left_out = f"; {number(anonymous)} machine/ip requests not counted" if anonymous else ""
    return f"SRM {verdict} ({detail}{plural(srm['units'], 'user')}{left_out})"


def version_text(version: Record) -> str:
    state = "current" if version["current"] else f"superseded {version['superseded_at'] or '-'}"
    seen = (f", {version['first_request_at']} .. {version['last_request_at']}"
            if version["first_request_at"] else "")
    return (f"version {short(version['version_id'])} ({state}; effective {version['effective_at']}): "
            f"{plural(version['requests'], 'request')}, {plural(version['users'], 'user')}, "
            f"errors {percent(version['error_rate'])}, {dollars(version['cost_microdollars'])}{seen}")


def experiment_title(experiment: Record) -> str:
    owner = "managed" if experiment["managed"] else "unmanaged"
    archived = ", archived" if experiment["archived"] else ""
    flags = f", {plural(len(experiment['flags']), 'flag')}" if experiment["flags"] else ""
    return f"{experiment['name']} ({experiment['public_model_id']}): {experiment['status']}, {owner}{archived}{flags}"


# ---------------------------------------------------------------- terminal

_COLUMNS = ("variant", "weight", "declared", "observed", "split (users)", "users", "requests", "anon", "errors",
            "cost", "tokens in/out")


def _row(variant: Record) -> list[str]:
    return [clean(variant["label"]), str(variant["weight"]), percent(variant["expected_share"]),
            percent(variant["observed_share"]), bar(variant["observed_share"], variant["expected_share"]),
            number(variant["users"]), number(variant["requests"]), number(variant["anonymous_requests"]),
            percent(variant["error_rate"]), dollars(variant["cost_microdollars"]), tokens(variant)]


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 2, 3, 5, 6, 7, 8, 9, 10}
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in
                      enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


def _experiment_lines(experiment: Record) -> list[str]:
    lines = [clean(experiment_title(experiment)), f"  window {window_text(experiment)}"]
    variants = experiment["variants"]
    if variants:
        table = _table([list(_COLUMNS), *(_row(v) for v in variants)])
        lines += ["  " + table[0]]
        for variant, row in zip(variants, table[1:], strict=True):
            lines.append("  " + row)
            lines += [f"    - {version_text(v)}" for v in variant["versions"]]
    lines.append(f"  {srm_text(experiment)}")
    for flag in experiment["flags"]:
        lines.append(f"  FLAG {flag['kind']}: {clean(flag['message'])}")
        if flag["causes"]:
            lines.append("    likely causes, with what these tables show:")
            lines += [f"    - {clean(cause)}" for cause in flag["causes"]]
    return lines


def render_status_text(record: Record) -> str:
    lines = [f"expctl status: {headline(record)}"]
    for experiment in record["experiments"]:
        lines += ["", *_experiment_lines(experiment)]
    if not record["experiments"]:
        lines += ["", "No experiment to report (managed active or paused ones are shown; --all lists every one)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- one line (markdown plans)

def observed_line(experiment: Record) -> str:
    """The observed status in one line of plain text: split against declared, SRM verdict, error
    rates and flags (the markdown plan escapes it)."""
    variants = experiment["variants"]
    split = " / ".join(f"{v['label']} {percent(v['observed_share'])}" for v in variants)
    declared = " / ".join(percent(v["expected_share"], 0) for v in variants)
    srm = experiment["srm"]
    verdict = _VERDICTS[srm["verdict"]] + (f" (p = {srm['p_value']:.2g})" if srm["p_value"] is not None else "")
    errors = " / ".join(f"{v['label']} {percent(v['error_rate'])}" for v in variants)
    kinds = sorted({f["kind"] for f in experiment["flags"]})
    flags = f"; flags: {', '.join(kinds)}" if kinds else "; no flags"
    return (f"since {experiment['window']['since']}: {number(experiment['totals']['requests'])} requests, "
            f"split {split} (declared {declared}) over {plural(srm['units'], 'user')}, SRM {verdict}, "
            f"errors {errors}{flags}")
