"""Loading a manifest directory into desired state, with every problem located — adapter.

Reads files (size, encoding and symlink policy), parses YAML with positions, validates each
document against the strict model, scans for key-looking strings, and runs the cross-file rules.
Every problem of every file is collected; nothing stops at the first one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from expctl.adapters.manifest.profile_rules import profile_problems
from expctl.adapters.manifest.pydantic_problems import problems_from_validation
from expctl.adapters.manifest.reachability import reachability_problems
from expctl.adapters.manifest.subjects import rule_subject
from expctl.adapters.manifest.yamlread import Document, parse_documents, walk
from expctl.adapters.secret_policy import SecretPolicy, is_reserved_env
from expctl.core.codes import problem
from expctl.core.errors import Location, ManifestError, Problem
from expctl.core.manifest import rules
from expctl.core.manifest.model import (
    AnyManifest,
    FromEnv,
    Manifest202611,
    Variant,
    Variant202611,
    manifest_model,
)
from expctl.core.manifest.secretscan import find_key_like, text_may_hold_keys
from expctl.core.profiles import GatewayProfile, gateway_profile
from expctl.core.state import DesiredExperiment, DesiredVariant, SecretRef

MAX_FILE_BYTES = 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadResult:
    experiments: tuple[DesiredExperiment, ...]
    problems: tuple[Problem, ...]
    files: tuple[str, ...]


def _points_inside(link: Path, root: Path) -> bool:
    """Whether a symlink resolves inside `root`; a loop or a dangling chain counts as outside."""
    try:
        return link.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop: not a directory (then refused as a symlink leading nowhere)
        return False


def discover(directory: Path) -> tuple[list[Path], list[Problem]]:
    """Manifest files under `directory`, sorted; symlinks leaving the directory are refused.

    Hidden files and directories are skipped; symlinked directories are never followed (one
    leaving the directory would silently hide manifests, so that case is a problem). Directory
    entries are classified from `scandir` data, without a system call per file.
    """
    if not directory.is_dir():
        where = Location(str(directory), 1, 1)
        return [], [problem("E100", where, "manifest directory not found", "create it or pass DIR")]
    root = directory.resolve()
    found: list[str] = []
    problems: list[Problem] = []
    pending = [str(directory)]
    while pending:
        try:
            with os.scandir(pending.pop()) as scan:
                entries = list(scan)
        except OSError:  # an unreadable subdirectory is skipped, as os.walk does
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            linked = entry.is_symlink()
            if _is_dir(entry):
                if not linked:
                    pending.append(entry.path)
                elif not _points_inside(Path(entry.path), root):
                    problems.append(problem(
                        "E106", Location(entry.path, 1, 1),
                        "a symlinked directory points outside the manifest directory; it is not read",
                        "move the manifests into the directory so reviewers see what is applied"))
            elif entry.name.endswith(MANIFEST_SUFFIXES):
                if linked and not _points_inside(Path(entry.path), root):
                    problems.append(problem(
                        "E106", Location(entry.path, 1, 1),
                        "manifest is a symlink to a file outside the manifest directory"))
                else:
                    found.append(entry.path)
    # Sorted as Path objects sort (component by component), without building them to compare.
    return [Path(p) for p in sorted(found, key=lambda p: p.split(os.sep))], problems


def _read_bounded(path: Path) -> bytes | Problem:
    """The file's bytes, read with plain system calls (open, fstat, read, close), or why not.

    Opened non-blocking and checked with fstat before any read: a FIFO or a device named like a
    manifest would block or never end. Reads at most one byte past the limit, so a file growing
    after the check is still refused.
    """
    display = str(path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return problem("E100", Location(display, 1, 1), "not a regular file", "remove it")
        if info.st_size > MAX_FILE_BYTES:
            return problem("E107", Location(display, 1, 1), f"file is {info.st_size} bytes, over the 1 MiB limit")
        blocks = []
        size = 0
        # Ask for the size fstat gave (plus one byte, to see growth): a read of the whole limit
        # allocates and maps a 1 MiB buffer per file, three times the cost of the read itself.
        chunk = info.st_size + 1
        while size <= MAX_FILE_BYTES and (block := os.read(fd, min(chunk, MAX_FILE_BYTES + 1 - size))):
            blocks.append(block)
            size += len(block)
            chunk = 64 * 1024
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        return problem("E107", Location(display, 1, 1), "file is over the 1 MiB limit")
    return b"".join(blocks)


def read_text(path: Path) -> tuple[str | None, list[Problem]]:
    display = str(path)
    try:
        raw = _read_bounded(path)
    except OSError as err:
        return None, [problem("E100", Location(display, 1, 1), f"cannot read file: {err.strerror}", "")]
    if isinstance(raw, Problem):
        return None, [raw]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        before = raw[: err.start]  # valid UTF-8 up to the bad byte
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8")) + 1  # characters, as editors count
        return None, [problem("E108", Location(display, line, col), "file is not valid UTF-8 text")]
    return text.removeprefix("\ufeff"), []


def _load_files(paths: Sequence[Path], policy: SecretPolicy, profile: GatewayProfile,
                ) -> tuple[list[DesiredExperiment], list[rules.RuleSubject], list[Problem]]:
    """The experiments, what the cross-file rules read of every document, and every problem."""
    experiments: list[DesiredExperiment] = []
    subjects: list[rules.RuleSubject] = []
    problems: list[Problem] = []
    for path in paths:
        read, file_problems = _read_file(path, policy, profile)
        problems.extend(file_problems)
        for doc, experiment in read:
            if experiment is not None:
                experiments.append(experiment)
            subject = rule_subject(doc)
            if subject is not None:
                subjects.append(subject)
    return experiments, subjects, problems


# From this many files on, the second core reads half of them: 10,000 files took 1.9-2.0 s instead
# of 2.3-3.0 s (bench/README.md). Below it, starting a process costs more than it saves.
PARALLEL_FROM_FILES = 2_000


def _load_all(files: Sequence[Path], policy: SecretPolicy, profile: GatewayProfile,
              ) -> tuple[list[DesiredExperiment], list[rules.RuleSubject], list[Problem]]:
    """`_load_files` over all `files`; when there are many, one contiguous slice per core, the first
    read here and the others by worker processes, joined in order: the same result as one process."""
    cores = min(os.cpu_count() or 1, 4)
    if cores < 2 or len(files) < PARALLEL_FROM_FILES:
        return _load_files(files, policy, profile)
    size = -(-len(files) // cores)
    first, rest = files[:size], [files[i:i + size] for i in range(size, len(files), size)]
    with ProcessPoolExecutor(len(rest)) as pool:
        # The profile goes to the workers as data (a frozen dataclass), as the policy does.
        parts = pool.map(_load_files, rest, [policy] * len(rest), [profile] * len(rest))
        # This process reads the first slice itself rather than wait: one core fewer to start, and
        # a slice's results that are never pickled (sending 5,000 back costs 0.4-0.6 s).
        experiments, subjects, problems = _load_files(first, policy, profile)
        for part in parts:
            experiments += part[0]
            subjects += part[1]
            problems += part[2]
    return experiments, subjects, problems


def load_directory(directory: Path, policy: SecretPolicy | None = None,
                   profile: GatewayProfile | None = None) -> LoadResult:
    """Every manifest under `directory`, validated. `policy` says where secret references may
    point (default: `SecretPolicy.default()`, no `expctl.toml` roots); `profile` which gateway reads
    them (default: the default profile, `gateway_profile(None)`)."""
    files, problems = discover(directory)
    experiments, subjects, file_problems = _load_all(files, policy or SecretPolicy.default(),
                                                     profile or gateway_profile(None))
    problems.extend(file_problems)
    # A manifest set that breaks a cross-file rule is not applied at all.
    problems.extend(rules.cross_manifest_problems(subjects))
    return LoadResult(tuple(experiments), tuple(sorted(problems, key=Problem.sort_key)),
                      tuple(str(f) for f in files))


def load_desired(directory: Path, policy: SecretPolicy | None = None,
                 profile: GatewayProfile | None = None) -> tuple[DesiredExperiment, ...]:
    """`load_directory`'s experiments; any problem raises `ManifestError` with all of them."""
    result = load_directory(directory, policy=policy, profile=profile)
    if result.problems:
        raise ManifestError(list(result.problems))
    return result.experiments


def load_file(path: Path, policy: SecretPolicy | None = None, profile: GatewayProfile | None = None,
              ) -> tuple[list[DesiredExperiment], list[Document], list[Problem]]:
    read, problems = _read_file(path, policy, profile)
    return [e for _, e in read if e is not None], [doc for doc, _ in read], problems


def _read_file(path: Path, policy: SecretPolicy | None = None, profile: GatewayProfile | None = None,
               ) -> tuple[list[tuple[Document, DesiredExperiment | None]], list[Problem]]:
    """Each document of the file with the experiment it validates into, and the file's problems."""
    text, problems = read_text(path)
    if text is None:
        return [], problems
    scan = text_may_hold_keys(text)
    documents, problems = parse_documents(str(path), text)
    read: list[tuple[Document, DesiredExperiment | None]] = []
    for doc in documents:
        experiment, doc_problems = load_document(doc, scan, policy, profile)
        problems.extend(doc_problems)
        read.append((doc, experiment))
    return read, problems


def load_document(doc: Document, scan: bool = True, policy: SecretPolicy | None = None,
                  profile: GatewayProfile | None = None) -> tuple[DesiredExperiment | None, list[Problem]]:
    """Validates one document; `scan=False` skips the per-string key scan (the caller checked the
    whole file's text with `text_may_hold_keys`). `policy` and `profile`: as `load_directory`'s."""
    if not isinstance(doc.data, dict):
        return None, [problem("E109", doc.start, "a manifest document must be a mapping")]
    profile = profile or gateway_profile(None)
    problems = (scan_strings(doc) if scan else []) + check_api_keys(doc, policy)
    problems += reachability_problems(doc, metadata=profile.has_metadata)
    # `skip`: paths whose schema errors a problem of its own already reports.
    profile_found, skip = profile_problems(doc, profile)
    problems += profile_found
    try:
        manifest = manifest_model(profile.name).model_validate(doc.data, strict=True)
    except ValidationError as err:
        # Only api_keys already reported as E301/E302 are left out of the model's errors; a well-shaped
        # reference with a bad value (e.g. from_env: 1KEY) still gets its E204/E206/E207.
        for path in _variant_paths(doc):
            variant = doc.data["variants"][path[1]]
            if isinstance(variant, dict) and "api_key" in variant and not _is_reference_shape(variant["api_key"]):
                skip.add((*path, "api_key"))
        problems.extend(problems_from_validation(err, doc, skip_prefixes=skip))
        if not problems:  # never drop a document silently
            problems.append(problem("E299", doc.start, "the manifest does not match the schema",
                                    "check it against `expctl schema`"))
        return None, problems
    if problems:
        return None, problems
    return to_desired(manifest, doc), []


def _variant_paths(doc: Document) -> list[tuple[str | int, ...]]:
    variants = doc.data.get("variants")
    return [("variants", i) for i in range(len(variants))] if isinstance(variants, list) else []


def _is_reference_shape(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and set(value) <= {"from_env", "from_file"}


def check_api_keys(doc: Document, policy: SecretPolicy | None = None) -> list[Problem]:
    """A literal api key is refused with its own code; only secret references are allowed, and
    only where `policy` lets them point."""
    problems: list[Problem] = []
    policy = policy or SecretPolicy.default()
    for path in _variant_paths(doc):
        variant = doc.data["variants"][path[1]]
        if not isinstance(variant, dict) or "api_key" not in variant:
            continue
        value = variant["api_key"]
        location = doc.location_of((*path, "api_key"))
        if _is_reference_shape(value):
            problems.extend(_reference_policy(value, location, policy))
            continue
        if isinstance(value, dict):
            problems.append(problem("E302", location, "api_key must have exactly one of from_env or from_file"))
        else:
            problems.append(problem("E301", location, "api_key must be a secret reference, not a literal value"))
    return problems


def _reference_policy(value: dict[str, Any], location: Location, policy: SecretPolicy) -> list[Problem]:
    """from_env may not name a reserved variable (E304); from_file may not climb with '..' (E305)
    nor point outside the repository and the allowed roots, or into a forbidden place (E306).
    The lists live in `expctl.adapters.secret_policy`; the resolver checks the real path again at read time."""
    env, path = value.get("from_env"), value.get("from_file")
    if isinstance(env, str) and is_reserved_env(env):
        return [problem("E304", location, "from_env names a variable that holds expctl's, CI's or the platform's "
                        "own credentials")]
    if isinstance(path, str) and ".." in PurePosixPath(path).parts:
        return [problem("E305", location, "from_file must not contain '..' path components")]
    why = policy.reference_problem(path) if isinstance(path, str) and path else None
    if why is not None:
        return [problem("E306", location, *why)]
    return []


def scan_strings(doc: Document) -> list[Problem]:
    problems = []
    for path, text, is_key in walk(doc.data):
        if not isinstance(text, str):
            continue
        if len(path) == 3 and path[2] == "api_key" and not is_key:
            continue  # a literal key is reported by check_api_keys with a better message
        if "\x00" in text:  # PostgreSQL refuses NUL in text and jsonb; say so here, with a location
            problems.append(problem("E110", doc.location_of(path, prefer_key=is_key),
                                    "a string contains a NUL character"))
            continue
        kind = find_key_like(text)
        if kind is not None:
            problems.append(problem("E303", doc.location_of(path, prefer_key=is_key),
                                    f"this value looks like a live credential ({kind})"))
    return problems


def to_desired(manifest: AnyManifest, doc: Document) -> DesiredExperiment:
    variants = []
    written: Sequence[Variant | Variant202611] = manifest.variants
    for index, v in enumerate(written):
        base = ("variants", index)
        key = v.api_key
        ref = SecretRef("env", key.from_env) if isinstance(key, FromEnv) else SecretRef("file", key.from_file)
        variants.append(DesiredVariant(
            label=v.label, weight=v.weight, upstream=v.upstream.model_dump(exclude_none=True, mode="json"),
            api_key=ref, renamed_from=v.renamed_from, location=doc.location_of(base),
            field_locations=doc.field_locations(base, ("label", "weight", "upstream", "api_key", "renamed_from")),
        ))
    fields = ("name", "public_model_id", "display_name", "description", "status", "archived", "variants",
              "metadata", "adopt")
    # Stored as given, as plain JSON; absent = NULL (the gateway then lists the model with defaults).
    metadata = (manifest.metadata.model_dump(exclude_none=True, mode="json")
                if isinstance(manifest, Manifest202611) and manifest.metadata is not None else None)
    return DesiredExperiment(
        name=manifest.name, public_model_id=manifest.public_model_id, display_name=manifest.display_name,
        description=manifest.description, status=manifest.status, archived=manifest.archived,
        variants=tuple(variants), metadata=metadata, adopt=manifest.adopt, location=doc.start,
        field_locations=doc.field_locations((), fields),
    )
