"""`expctl simulate`: which variant the gateway gives a subject, and the split over a sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from expctl.app.simulate import Request, render_text, simulate, to_record
from expctl.cli.options import connection_options, dir_option, open_settings
from expctl.core.bucketing import SUBJECT_KINDS, Subject, parse_subject
from expctl.core.errors import ExitCode


def _subject(ctx: click.Context, param: click.Parameter, value: str | None) -> Subject | None:
    if value is None:
        return None
    try:
        return parse_subject(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.command("simulate")
@click.argument("public_model_id")
@click.option("--subject", callback=_subject, metavar="KIND:VALUE",
              help="user:ID, machine:ID or ip:ADDR (the gateway prefers user, then machine, then ip).")
@click.option("--sample", type=click.IntRange(1, 1_000_000), metavar="N",
              help="Also draw N synthetic subjects (<kind>:sample-<i>, kind of --subject or --sample-kind) "
                   "and show the split: label, weight, expected and observed share.")
@click.option("--sample-kind", type=click.Choice(SUBJECT_KINDS), default=None,
              help="Kind of the synthetic subjects when no --subject is given.  [default: user]")
@click.option("--from-manifests", is_flag=True,
              help="Simulate what the manifests want (a preview where ids are assigned only at apply).")
@dir_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@connection_options
def simulate_command(public_model_id: str, *, subject: Subject | None, sample: int | None, sample_kind: str | None,
                     from_manifests: bool, manifest_dir: Path, fmt: str, **conn: Any) -> int:
    """Show which variant the gateway routes a subject to for PUBLIC_MODEL_ID.

    Uses the experiment that is active or paused on PUBLIC_MODEL_ID in the database, exactly as
    the gateway picks: a hash of the experiment id and the subject, walked over the variants in
    id order by weight. With --from-manifests, uses the manifest that wants the id routed; ids
    not yet in the database are assigned at apply, so that result is marked as a preview.
    A paused experiment means the gateway answers 404 (exit 0); nothing routed exits 1.

    \b
    Examples:
      expctl simulate preview/preview-foo --subject user:42
      expctl simulate preview/preview-foo --subject ip:2001:db8::1 --format json
      expctl simulate preview/preview-foo --subject machine:m-7 --sample 10000
      expctl simulate preview/preview-foo --sample 5000 --from-manifests --dir experiments.d
    """
    if subject is None and sample is None:
        raise click.UsageError("give --subject KIND:VALUE, --sample N, or both")
    if subject is not None and sample_kind is not None and sample_kind != subject.kind:
        raise click.UsageError("--sample-kind differs from the kind of --subject; give one of them")
    kind = subject.kind if subject is not None else sample_kind or "user"
    request = Request(public_model_id, subject, sample or 0, kind)
    with open_settings(manifest_dir, **conn) as settings:
        result = simulate(settings, request, from_manifests)
    click.echo(json.dumps(to_record(result), indent=2) if fmt == "json" else render_text(result), nl=fmt == "json")
    return int(ExitCode.ERROR if result.outcome == "not_routed" else ExitCode.OK)


def register(group: click.Group) -> None:
    group.add_command(simulate_command)
