"""Shared builders for the manifest tests: a valid manifest, edits on it, and position markers.

Expected positions are written into the YAML itself: `«` marks the character a problem must point
at. `unmark` removes the marker and returns the 1-based line and column it stood at, so every case
states its expected `line:col` where a reader can see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from expctl.adapters.manifest.load import LoadResult, load_directory
from expctl.core.errors import Problem
from expctl.core.profiles import gateway_profile

MARK = "«"

BASE = """\
# yaml-language-server: $schema=../experiments.schema.json
apiVersion: expctl/v1
kind: ModelExperiment
name: exp-a
public_model_id: preview/preview-a
display_name: Preview A
description: Compare two checkpoints
status: draft
archived: false
variants:
  - label: control
    weight: 1
    upstream:
      internal_id: partner-checkpoint-rc1
      base_url: https://partner.example.com/v1
    api_key: {from_env: PARTNER_RC1_KEY}
  - label: treatment
    weight: 1
    upstream:
      internal_id: partner-checkpoint-rc2
      base_url: https://partner.example.com/v1
      extra_headers: {X-Team: core}
      compression: {enabled: true, model_alias: small-summarizer}
    api_key: {from_file: /run/secrets/partner-rc2}
metadata:
  context_length: 200000
  max_completion_tokens: 32000
  opencode_settings: {ai_sdk_provider: openai-compatible}
"""

# BASE as the gateway of profile 2026-05 reads it: client settings in the upstream, no metadata.
BASE_2026_05 = BASE.split("metadata:\n", maxsplit=1)[0].replace(
    "      extra_headers: {X-Team: core}\n      compression: {enabled: true, model_alias: small-summarizer}\n",
    "      opencode_settings: {ai_sdk_provider: openai-compatible}\n"
    "      openclaw_settings: {api_adapter: openai-completions}\n")


def edit(text: str, old: str, new: str) -> str:
    """`text` with the single occurrence of `old` replaced (fails loudly when ambiguous)."""
    count = text.count(old)
    assert count == 1, f"{old!r} occurs {count} times"
    return text.replace(old, new)


def unmark(text: str) -> tuple[str, tuple[int, int]]:
    """The text without its one `«` marker, and the (line, col) where the marker was."""
    assert text.count(MARK) == 1, "exactly one position marker expected"
    index = text.index(MARK)
    before = text[:index]
    line = before.count("\n") + 1
    col = index - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, "", 1), (line, col)


def position(text: str, needle: str, offset: int = 0, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the `occurrence`-th `needle` in `text`, moved right by `offset`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    index += offset
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def manifest(
    name: str = "exp-a",
    public_model_id: str = "preview/preview-a",
    status: str = "draft",
    archived: str = "false",
    variants: tuple[tuple[str, str | None], ...] = (("control", None), ("treatment", None)),
) -> str:
    """A valid manifest document with the given identity and variants (label, renamed_from)."""
    lines = [
        "apiVersion: expctl/v1",
        "kind: ModelExperiment",
        f"name: {name}",
        f"public_model_id: {public_model_id}",
        f"display_name: Experiment {name}",
        f"status: {status}",
        f"archived: {archived}",
        "variants:",
    ]
    for index, (label, renamed_from) in enumerate(variants):
        lines.append(f"  - label: {label}")
        if renamed_from is not None:
            lines.append(f"    renamed_from: {renamed_from}")
        lines += [
            "    weight: 1",
            f"    upstream: {{internal_id: up-{index}, base_url: 'https://up.example.com/v1'}}",
            f"    api_key: {{from_env: KEY_{index}}}",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Found:
    """A problem reduced to what the tests compare."""

    code: str
    file: str
    line: int
    col: int


def found(problem: Problem) -> Found:
    return Found(problem.code, Path(problem.location.path).name, problem.location.line, problem.location.col)


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return directory


def load_files(directory: Path, files: dict[str, str | bytes], profile: str | None = None) -> LoadResult:
    """The files loaded under the gateway profile called `profile` (the default one when None)."""
    return load_directory(write(directory, files), profile=gateway_profile(profile))


def load_one(directory: Path, text: str | bytes, filename: str = "m.yaml", profile: str | None = None) -> LoadResult:
    return load_files(directory, {filename: text}, profile)


def only_problem(result: LoadResult) -> Found:
    assert len(result.problems) == 1, [str(p.location) + " " + p.code + " " + p.message for p in result.problems]
    return found(result.problems[0])


def assert_clean(result: LoadResult, experiments: int = 1) -> None:
    assert [f"{p.location}: {p.code} {p.message}" for p in result.problems] == []
    assert len(result.experiments) == experiments
