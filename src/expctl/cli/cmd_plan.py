"""`expctl plan`, `expctl apply` and `expctl reconcile`: thin commands over `expctl.app.service`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from expctl.app import service
from expctl.app.settings import Settings
from expctl.app.status import observed_for_plan
from expctl.cli.options import connection_options, dir_option, open_settings, plan_options
from expctl.core.errors import ConfigError, ExitCode, PlanFileError
from expctl.core.plan import Plan
from expctl.core.render.github_plan import render_github
from expctl.core.render.markdown import render_markdown
from expctl.core.render.plan_renderers import PLAN_RENDERERS
from expctl.core.render.text import deferred_key_checks
from expctl.core.saved_plan import MAX_PLAN_BYTES, read_saved_plan

PLAN_FORMATS = ("text", "markdown", "json", "github")


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _write_atomic(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)


def _make_plan(settings: Settings, prune: bool) -> Plan:
    return service.make_plan(settings, prune=prune)


def _render(plan: Plan, fmt: str) -> str:
    record = plan.to_record()
    if fmt == "github":
        return render_github(record)
    return PLAN_RENDERERS[fmt](record, _color() and fmt == "text")


@click.command("plan")
@dir_option
@click.option("--format", "fmt", type=click.Choice(PLAN_FORMATS), default="text", show_default=True,
              help="text for terminals, markdown for PR comments, json (the published format), github annotations.")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the JSON plan to FILE (what `expctl apply FILE` consumes).")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when rows would change or Redis drifted, 0 when nothing would change.")
@click.option("--prune", is_flag=True, help="Delete bound drafts whose manifest was removed.")
@click.option("--require-secrets", is_flag=True,
              help="Exit 1 when any secret reference cannot be read here (for jobs that hold the secrets).")
@plan_options
@connection_options
def plan_command(manifest_dir: Path, fmt: str, out: Path | None, detailed_exitcode: bool, prune: bool,
                 require_secrets: bool, **conn: Any) -> int:
    """Show what reconcile would change, without changing anything (read-only transaction).

    Exit 2 with --detailed-exitcode when rows would change, a row drifted from what expctl applied
    (even when held), or Redis has drifted (reconcile would rewrite it).

    \b
    Examples:
      expctl plan
      expctl plan --format markdown > comment.md
      expctl plan --out plan.json --detailed-exitcode
      expctl plan --require-secrets          # merge-queue dry run that holds the secrets
      expctl plan --env staging --only 'search-*'
      expctl plan --drift=revert             # restore what the manifests say, drift included
    """
    with open_settings(manifest_dir, **conn) as settings:
        plan = _make_plan(settings, prune)
        observed = observed_for_plan(settings, plan) if fmt == "markdown" else {}
    if out is not None:
        _write_atomic(out, PLAN_RENDERERS["json"](plan.to_record(), False))
        _warn_deferred(plan)
    click.echo(render_markdown(plan.to_record(), observed=observed) if observed else _render(plan, fmt), nl=False)
    if plan.refused:
        click.echo(f"error: {len(plan.refused)} change(s) refused; apply would change nothing", err=True)
        return int(ExitCode.ERROR)
    missing = plan.summary()["unavailable_secrets"]
    if require_secrets and missing:
        click.echo(f"error: {missing} secret reference(s) cannot be read here (--require-secrets); "
                   "see the attention section", err=True)
        return int(ExitCode.ERROR)
    return int(ExitCode.CHANGES if detailed_exitcode and (
        plan.has_changes or plan.cache_drift or plan.drift) else ExitCode.OK)


def _warn_deferred(plan: Plan) -> None:
    deferred = deferred_key_checks(plan.to_record())
    if deferred:
        click.echo(f"note: this saved plan defers {deferred} api key comparison(s) ('checked at apply'); apply "
                   "refuses a saved plan whose comparisons come out differently. Save plans where "
                   "BYOK_ENCRYPTION_KEY and the secrets are available.", err=True)


class _PlanPrinter:
    """Shows the plan an apply is about to execute and asks for 'yes' unless auto-approved."""

    def __init__(self, auto_approve: bool) -> None:
        self.auto_approve = auto_approve

    def confirm(self, plan: Plan) -> bool:
        click.echo(_render(plan, "text"), nl=False)
        if not plan.has_changes or self.auto_approve:
            return True
        click.echo("")
        answer = click.prompt("Apply these changes? Only 'yes' is accepted", default="", show_default=False)
        return bool(answer.strip() == "yes")


def _check_approval_possible(auto_approve: bool) -> None:
    if not auto_approve and not sys.stdin.isatty():
        raise ConfigError("not on a terminal: pass --auto-approve to apply without a confirmation prompt")


def _check_cache_targets(settings: Settings, skip_cache: bool) -> Settings:
    if skip_cache:
        settings.redis_urls = ()
    elif not settings.redis_urls:
        raise ConfigError("no Redis URL: the gateway would keep stale routing. Pass --redis-url/REDIS_URL, "
                          "or --skip-cache to update PostgreSQL only")
    return settings


def _run_apply(settings: Settings, prune: bool, auto_approve: bool, saved: dict[str, Any] | None,
               command: str) -> int:
    try:
        outcome = service.apply(settings, prune=prune, confirm=_PlanPrinter(auto_approve).confirm, saved=saved,
                                command=command)
    except service.PlanRefused as refused:
        click.echo(_render(refused.plan, "text"), nl=False)
        raise
    if outcome.applied:
        counts = outcome.plan.summary()
        click.echo(f"Applied {counts['total']} change(s) in one transaction (plan {outcome.plan.plan_id[:19]}).")
    else:
        click.echo("Nothing to apply.")
    if settings.redis_urls:
        click.echo(f"Redis refreshed on {len(settings.redis_urls)} target(s).")
    return int(ExitCode.OK)


_APPLY_OPTIONS = [
    click.option("--auto-approve", is_flag=True, help="Apply without asking (required when not on a TTY)."),
    click.option("--prune", is_flag=True, help="Delete bound drafts whose manifest was removed."),
    click.option("--lock-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
                 help="Seconds to wait for another run's lock (exit 5 on timeout)."),
    click.option("--skip-cache", is_flag=True, help="Do not touch Redis (PostgreSQL only)."),
]


def _apply_options(func: Any) -> Any:
    for option in reversed(_APPLY_OPTIONS):
        func = option(func)
    return func


@click.command("apply")
@click.argument("planfile", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@dir_option
@_apply_options
@plan_options
@connection_options
def apply_command(planfile: Path | None, manifest_dir: Path, auto_approve: bool, prune: bool, lock_timeout: float,
                  skip_cache: bool, **conn: Any) -> int:
    """Apply a saved plan (refused if stale: exit 4) or a fresh plan, in one transaction.

    \b
    A saved plan is applied with the options it was made with (--prune, --drift); its environment
    and --only target must be given again and match, or it is refused as stale.

    \b
    Examples:
      expctl plan --out plan.json && expctl apply plan.json
      expctl apply --auto-approve            # fresh plan, no prompt (CI)
      expctl plan --only canary --out p.json && expctl apply --only canary p.json
    """
    _check_approval_possible(auto_approve)
    saved = None
    if planfile is not None:
        saved = read_saved_plan(_read_plan_file(planfile), str(planfile))
        prune = bool(saved["options"]["prune"])  # a saved plan is applied with the options it was made with
        conn["drift_mode"] = str(saved["options"].get("drift", "hold"))
    with open_settings(manifest_dir, lock_timeout_s=lock_timeout, **conn) as settings:
        return _run_apply(_check_cache_targets(settings, skip_cache), prune, auto_approve, saved, "apply")


def _read_plan_file(path: Path) -> bytes:
    """At most one byte past the size limit, so a huge file is refused without reading it all."""
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_PLAN_BYTES + 1)
    except OSError as err:
        raise PlanFileError(f"cannot read the saved plan {path}: {err.strerror or type(err).__name__}") from None


@click.command("reconcile")
@dir_option
@click.option("--dry-run", is_flag=True, help="Plan only; change nothing.")
@_apply_options
@plan_options
@connection_options
def reconcile_command(manifest_dir: Path, dry_run: bool, auto_approve: bool, prune: bool, lock_timeout: float,
                      skip_cache: bool, **conn: Any) -> int:
    """Plan, apply and refresh Redis in one go (what CI runs on merge); also heals cache drift.

    \b
    Examples:
      expctl reconcile --dry-run
      expctl reconcile --auto-approve
      expctl reconcile --env production --auto-approve
      expctl reconcile --only canary --drift=revert --auto-approve
      DATABASE_URL=postgresql://... REDIS_URL=redis://... expctl reconcile --auto-approve
    """
    if dry_run:
        with open_settings(manifest_dir, **conn) as settings:
            plan = _make_plan(settings, prune)
        click.echo(_render(plan, "text"), nl=False)
        return int(ExitCode.ERROR if plan.refused else ExitCode.OK)
    _check_approval_possible(auto_approve)
    with open_settings(manifest_dir, lock_timeout_s=lock_timeout, **conn) as settings:
        return _run_apply(_check_cache_targets(settings, skip_cache), prune, auto_approve, None, "reconcile")


def register(group: click.Group) -> None:
    for command in (plan_command, apply_command, reconcile_command):
        group.add_command(command)
