"""`expctl import`: adopt unmanaged experiments into manifests and bind them
(docs/design.md#ownership-and-identity).

For each chosen unmanaged experiment: derive a manifest `name`, render the manifest (status,
archived, variants, weights, the current upstream exactly as stored, and the api key as a
`{from_env: EXPCTL_KEY_<NAME>_<LABEL>}` placeholder), and check in memory that it validates and
round-trips to exactly what the planner reads from the row, under the settings' gateway profile
(2026-11 writes the stored `metadata`; an upstream the profile's gateway would reject is not
importable). Files are written first (an existing file only with `force`), each re-validated from
disk; then every binding is inserted in one transaction under the apply lock, after checking that
no row changed meanwhile. Any failure rolls the files back (restoring overwritten ones), so an
import never leaves a half-done state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from expctl.adapters.manifest.load import discover, load_document, load_file
from expctl.adapters.manifest.subjects import rule_subject
from expctl.adapters.manifest.yamlread import parse_documents
from expctl.adapters.store import audit
from expctl.adapters.store.db import connect, missing_tables, read_only, take_apply_lock
from expctl.adapters.store.reader import read_state
from expctl.adapters.store.tables import expctl_binding
from expctl.app.import_names import env_var_name, slugify, unique
from expctl.app.settings import Settings
from expctl.core.errors import ConfigError, ConflictError, ManifestError, Problem
from expctl.core.manifest import rules
from expctl.core.manifest.model import API_VERSION, KIND, SCHEMA_URL_COMMENT, upstream_model
from expctl.core.profiles import PROFILES, GatewayProfile, gateway_profile
from expctl.core.state import ActualExperiment, ActualState, ActualVariant, DesiredExperiment, canonical_json, same_json


@dataclass(frozen=True)
class Imported:
    """One experiment adopted into `path` as manifest `name`; `env_vars` are (label, variable)."""

    experiment: ActualExperiment
    name: str
    path: Path
    content: str
    env_vars: tuple[tuple[str, str], ...]

    @property
    def needs_keys(self) -> bool:
        # Secrets of completed experiments are never resolved (docs/design.md#secret-references).
        return self.experiment.status != "completed" and bool(self.env_vars)


@dataclass(frozen=True)
class NotImportable:
    experiment: ActualExperiment
    reasons: tuple[str, ...]


@dataclass
class ImportResult:
    imported: list[Imported] = field(default_factory=list)
    skipped: list[NotImportable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.errors


@dataclass
class _Taken:
    """Names and env vars already used: by bindings, by manifests in the out dir, by this run."""

    names: set[str]
    env_vars: set[str]


def _existing(out_dir: Path, state: ActualState, profile: GatewayProfile) -> _Taken:
    taken = _Taken(set(state.by_managed_name()), set())
    files, _ = discover(out_dir) if out_dir.is_dir() else ([], [])
    for path in files:
        experiments, documents, _ = load_file(path, profile=profile)
        taken.names.update(s.name for s in map(rule_subject, documents) if s is not None)
        taken.env_vars.update(v.api_key.name for e in experiments for v in e.variants if v.api_key.kind == "env")
    return taken


# --- selection -----------------------------------------------------------------------------------


def select(state: ActualState, public_ids: Sequence[str], result: ImportResult) -> list[ActualExperiment]:
    """Unmanaged experiments (on `public_ids` if given); routed ones first so they get plain names."""
    unmanaged = [e for e in state.experiments if e.managed_name is None]
    if public_ids:
        wanted = set(public_ids)
        unmanaged = [e for e in unmanaged if e.public_model_id in wanted]
        for public_id in sorted(wanted - {e.public_model_id for e in unmanaged}):
            managed = sorted(e.managed_name or "" for e in state.experiments if e.public_model_id == public_id)
            if managed:
                result.notes.append(f"{public_id}: already managed (manifest {', '.join(managed)}): nothing to do")
            else:
                result.errors.append(f"{public_id}: no experiment has this public_model_id")
    return sorted(unmanaged, key=lambda e: (not e.routed, e.public_model_id, e.name, e.id))


# --- rendering and checks ------------------------------------------------------------------------


def _ordered_upstream(stored: Any, profile: GatewayProfile) -> Any:
    """The stored upstream, unchanged, with the profile's model's fields first in the model's order."""
    if not isinstance(stored, dict):
        return stored
    known = [k for k in upstream_model(profile.name).model_fields if k in stored]
    return {k: stored[k] for k in [*known, *(k for k in stored if k not in known)]}


def manifest_record(experiment: ActualExperiment, name: str, env_vars: Sequence[str],
                    profile: GatewayProfile | None = None) -> dict[str, Any]:
    """The manifest document, fields in the documented order (docs/design.md#manifests); variants in
    the gateway's id order; `metadata` as stored when the profile has it (absent = NULL)."""
    profile = profile or gateway_profile(None)
    record: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": KIND, "name": name,
        "public_model_id": experiment.public_model_id, "display_name": experiment.name,
    }
    if experiment.description is not None:
        record["description"] = experiment.description
    record["status"] = experiment.status
    record["archived"] = experiment.is_archived
    if profile.has_metadata and experiment.metadata is not None:
        record["metadata"] = dict(experiment.metadata)
    record["variants"] = [
        {
            "label": v.label, "weight": v.weight,
            "upstream": _ordered_upstream(v.current_version.upstream if v.current_version else None, profile),
            "api_key": {"from_env": env},
        }
        for v, env in zip(_variants(experiment), env_vars, strict=True)
    ]
    # A JSON round trip gives fresh, plain containers: no shared objects, so no YAML aliases.
    fresh: dict[str, Any] = json.loads(json.dumps(record))
    return fresh


def _variants(experiment: ActualExperiment) -> list[ActualVariant]:
    return sorted(experiment.variants, key=lambda v: v.id.lower())


def render(experiment: ActualExperiment, record: dict[str, Any]) -> str:
    header = (f"{SCHEMA_URL_COMMENT}\n# Imported by `expctl import` from experiment {experiment.id}.\n"
              "# api_key: set the named environment variables to the stored keys (never commit keys).\n")
    body = yaml.safe_dump(record, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return header + body


def _problem_text(problem: Problem) -> str:
    return f"{problem.code} {problem.message}"


def check_rendered(path: Path, content: str, experiment: ActualExperiment,
                   profile: GatewayProfile | None = None) -> list[str]:
    """Why `content` is not a faithful manifest of `experiment` under `profile` (empty when it is)."""
    profile = profile or gateway_profile(None)
    documents, problems = parse_documents(str(path), content)
    if problems or len(documents) != 1:
        return [f"the generated YAML cannot be read back: {', '.join(map(_problem_text, problems)) or '?'}"]
    desired, problems = load_document(documents[0], profile=profile)
    subject = rule_subject(documents[0])
    problems += rules.cross_manifest_problems([subject]) if subject is not None else []
    if problems or desired is None:
        return [f"the manifest would be invalid: {_problem_text(p)}" for p in problems]
    return round_trip_differences(desired, experiment, compare_metadata=profile.has_metadata)


def round_trip_differences(desired: DesiredExperiment, actual: ActualExperiment,
                           compare_metadata: bool = True) -> list[str]:
    """Fields where the manifest would not read back as exactly what the row holds (`metadata` only
    when the profile plans it)."""
    differences = [
        f"{field} does not round-trip" for field, a, b in (
            ("public_model_id", desired.public_model_id, actual.public_model_id),
            ("display_name", desired.display_name, actual.name),
            ("description", desired.description, actual.description),
            ("status", desired.status, actual.status), ("archived", desired.archived, actual.is_archived),
        ) if a != b
    ]
    if compare_metadata and not same_json(_plain(desired.metadata), _plain(actual.metadata)):
        differences.append("metadata cannot be written exactly as stored (null values, or fields the 2026-11 "
                           "metadata model does not have): fix it in the admin UI first")
    rows = {v.label: v for v in actual.variants}
    for variant in desired.variants:
        row = rows.get(variant.label)
        version = row.current_version if row else None
        if version is None or canonical_json(dict(variant.upstream)) != canonical_json(version.upstream):
            differences.append(
                f"variant '{variant.label}': the stored upstream cannot be written exactly as stored "
                "(null values, or values the manifest model normalises): fix it in the admin UI first")
    return differences


def _plain(value: Any) -> Any:
    return None if value is None else dict(value)


def _row_problems(experiment: ActualExperiment, profile: GatewayProfile) -> list[str]:
    """Problems that no manifest could express under `profile`, found before rendering."""
    problems = [
        f"variant '{v.label[:64]}' has no current version (no upstream in effect): give it one in the "
        "admin UI, then import"
        for v in _variants(experiment) if v.current_version is None
    ]
    fields = upstream_model(profile.name).model_fields
    for v in _variants(experiment):
        stored = v.current_version.upstream if v.current_version else {}
        foreign = sorted(k for k in stored if k not in fields)[:5] if isinstance(stored, dict) else []
        if foreign:
            problems.append(_upstream_misfit(v.label, foreign, profile))
    return problems


def _upstream_misfit(label: str, keys: Sequence[str], profile: GatewayProfile) -> str:
    moved = (" (opencode_settings now belongs in the experiment's metadata.opencode_settings)"
             if "opencode_settings" in keys and profile.has_metadata else "")
    other = " or ".join(f"--gateway-profile {name}" for name in sorted(PROFILES) if name != profile.name)
    return (f"variant '{label[:64]}': its stored upstream has {', '.join(repr(k[:40]) for k in keys)}, which the "
            f"gateway of profile {profile.name} does not accept in an upstream{moved}: fix the row in the admin "
            f"UI first (or, if the gateway reading it is another version, import with {other})")


def prepare(
    experiment: ActualExperiment, out_dir: Path, taken: _Taken, profile: GatewayProfile | None = None,
) -> Imported | NotImportable:
    profile = profile or gateway_profile(None)
    problems = _row_problems(experiment, profile)
    if problems:
        return NotImportable(experiment, tuple(problems))
    names, envs = set(taken.names), set(taken.env_vars)
    name = unique(slugify(experiment.name), names, "-")
    env_vars = [unique(env_var_name(name, v.label), envs, "_") for v in _variants(experiment)]
    path = out_dir / f"{name}.yaml"
    content = render(experiment, manifest_record(experiment, name, env_vars, profile))
    problems = check_rendered(path, content, experiment, profile)
    if problems:
        return NotImportable(experiment, tuple(problems))
    taken.names, taken.env_vars = names, envs
    labels = [v.label for v in _variants(experiment)]
    return Imported(experiment, name, path, content, tuple(zip(labels, env_vars, strict=True)))


# --- files ---------------------------------------------------------------------------------------


@dataclass
class _Written:
    """Files this run wrote, with what they held before (None: did not exist), for rollback."""

    originals: dict[Path, bytes | None] = field(default_factory=dict)

    def write(self, path: Path, content: str) -> None:
        self.originals.setdefault(path, path.read_bytes() if path.exists() else None)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(path)

    def rollback(self) -> None:
        for path, original in self.originals.items():
            if original is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(original)


def write_files(imported: Sequence[Imported], force: bool, profile: GatewayProfile | None = None) -> _Written:
    """Writes every manifest, then validates each from disk; any failure undoes all writes."""
    existing = [str(i.path) for i in imported if i.path.exists()]
    if existing and not force:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)}: move the file(s) away or pass --force; "
                          "nothing was written or bound")
    written = _Written()
    try:
        for item in imported:
            try:
                item.path.parent.mkdir(parents=True, exist_ok=True)
                written.write(item.path, item.content)
            except OSError as err:
                raise ConfigError(f"cannot write {item.path}: {err.strerror or type(err).__name__}; "
                                  "nothing was written or bound") from None
        problems = [p for item in imported for p in load_file(item.path, profile=profile)[2]]
        if problems:
            raise ManifestError(problems)
    except BaseException:
        written.rollback()
        raise
    return written


# --- bindings ------------------------------------------------------------------------------------


def _check_unchanged(imported: Sequence[Imported], state: ActualState) -> None:
    now = {e.id: e for e in state.experiments}
    bound = state.by_managed_name()
    for item in imported:
        current = now.get(item.experiment.id)
        if item.name in bound:
            raise ConflictError(f"manifest name '{item.name}' was bound by another run meanwhile")
        if current is None or current.managed_name is not None:
            raise ConflictError(f"experiment {item.experiment.id} was deleted or bound by another run meanwhile")
        if current.fingerprint_record() != item.experiment.fingerprint_record():
            raise ConflictError(f"experiment {item.experiment.id} ('{item.experiment.name[:80]}') changed while "
                                "importing")


def bind(settings: Settings, imported: Sequence[Imported]) -> None:
    """Inserts every binding in one transaction under the apply lock, or none."""
    try:
        with connect(settings.database_url) as conn, conn.begin():
            take_apply_lock(conn, settings.apply_lock())
            _check_unchanged(imported, read_state(conn))
            conn.execute(insert(expctl_binding),
                         [{"name": i.name, "experiment_id": i.experiment.id} for i in imported])
            audit.record(conn, "import", None, "imported", settings.env)
    except IntegrityError:
        raise ConflictError("another run bound one of these experiments or names concurrently") from None


# --- the use case --------------------------------------------------------------------------------


def _read(settings: Settings) -> ActualState:
    with read_only(settings.database_url) as conn:
        missing = missing_tables(conn)
        if missing:
            raise ConfigError(f"the database lacks tables {', '.join(missing)}: run `expctl db init` first")
        return read_state(conn)


def _cross_file_warnings(out_dir: Path, imported: Iterable[Imported], profile: GatewayProfile) -> list[str]:
    """Conflicts between the new manifests and those already in the directory (e.g. two want active)."""
    new_paths = {str(i.path) for i in imported}
    subjects = []
    for path in discover(out_dir)[0]:
        subjects += [s for s in map(rule_subject, load_file(path, profile=profile)[1]) if s is not None]
    return [f"{p.location}: {p.message}: the manifests now conflict; change one of them before `expctl plan`"
            for p in rules.cross_manifest_problems(subjects) if p.location.path in new_paths]


def import_experiments(settings: Settings, out_dir: Path, public_ids: Sequence[str], force: bool) -> ImportResult:
    """Chooses, renders, writes and binds; see the module docstring for the guarantees."""
    result, profile = ImportResult(), settings.gateway_profile
    state = _read(settings)
    taken = _existing(out_dir, state, profile)
    for experiment in select(state, public_ids, result):
        outcome = prepare(experiment, out_dir, taken, profile)
        if isinstance(outcome, NotImportable):
            result.skipped.append(outcome)
        else:
            result.imported.append(outcome)
    if not result.imported:
        return result
    written = write_files(result.imported, force, profile)
    try:
        bind(settings, result.imported)
    except BaseException as err:
        written.rollback()
        if isinstance(err, ConflictError):
            raise ConflictError(f"{err}; the manifests written were removed, nothing was bound: run "
                                "`expctl import` again") from None
        raise
    result.warnings = _cross_file_warnings(out_dir, result.imported, profile)
    return result
