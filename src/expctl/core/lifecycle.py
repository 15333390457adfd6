"""The lifecycle (docs/design.md#lifecycle) as data: which transitions and which edits each status
allows.

The planner looks rules up here instead of branching on statuses, so the two tables of the design
document and this file can be read side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

STATUSES = ("draft", "active", "paused", "completed")
# The transitions apply runs first, before any edit, so that edits see the status they lead to.
LEAVING_ROUTING = frozenset({"completed", "paused"})


class Check(Enum):
    """Preconditions of an activation (draft → active, paused → active)."""

    HAS_VARIANTS = "at least one variant"
    WEIGHTS_POSITIVE = "every weight > 0"
    VERSIONS_PRESENT = "every variant has a current version"
    PUBLIC_ID_FREE = "no other active/paused experiment on the public_model_id"
    NOT_ARCHIVED = "not archived"


ACTIVATION_CHECKS = tuple(Check)


@dataclass(frozen=True)
class TransitionRule:
    allowed: bool
    checks: tuple[Check, ...] = ()
    sets_started_at: bool = False
    sets_ended_at: bool = False
    refusal: str = ""


TRANSITIONS: dict[tuple[str, str], TransitionRule] = {
    ("draft", "active"): TransitionRule(True, ACTIVATION_CHECKS, sets_started_at=True),
    ("active", "paused"): TransitionRule(True),
    ("paused", "active"): TransitionRule(True, ACTIVATION_CHECKS),
    ("active", "completed"): TransitionRule(True, sets_ended_at=True),
    ("paused", "completed"): TransitionRule(True, sets_ended_at=True),
    ("draft", "paused"): TransitionRule(False, refusal="a draft cannot be paused: activate it first (status: active)"),
    ("draft", "completed"): TransitionRule(
        False, refusal="a draft cannot be completed: activate it first, or delete it by removing its manifest "
        "and running with --prune"),
    **{
        ("completed", to): TransitionRule(
            False, refusal="completed is terminal: create a new experiment (new name) to run it again")
        for to in ("draft", "active", "paused")
    },
    ("active", "draft"): TransitionRule(False, refusal="an experiment never goes back to draft: pause or complete it"),
    ("paused", "draft"): TransitionRule(False, refusal="an experiment never goes back to draft: complete it"),
}


def transition_rule(current: str, desired: str) -> TransitionRule:
    return TRANSITIONS[(current, desired)]


class Edit(Enum):
    METADATA = "name, description"
    EXPERIMENT_METADATA = "metadata (context length, tokens, opencode settings)"
    PUBLIC_MODEL_ID = "public_model_id"
    VARIANT_STRUCTURE = "add / remove variant, change weight"
    RENAME_VARIANT = "rename a variant"
    HOT_SWAP = "new upstream"
    ROTATE_KEY = "new api key"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete the experiment"


EDITS: dict[Edit, frozenset[str]] = {
    Edit.METADATA: frozenset(STATUSES),
    Edit.EXPERIMENT_METADATA: frozenset({"draft", "active", "paused"}),
    Edit.PUBLIC_MODEL_ID: frozenset({"draft"}),
    Edit.VARIANT_STRUCTURE: frozenset({"draft"}),
    Edit.RENAME_VARIANT: frozenset({"draft", "active", "paused"}),
    Edit.HOT_SWAP: frozenset({"draft", "active", "paused"}),
    Edit.ROTATE_KEY: frozenset({"draft", "active", "paused"}),
    Edit.ARCHIVE: frozenset({"draft", "paused", "completed"}),
    Edit.UNARCHIVE: frozenset(STATUSES),
    Edit.DELETE: frozenset({"draft"}),
}

_ALTERNATIVES: dict[Edit, str] = {
    Edit.PUBLIC_MODEL_ID: "create a new experiment for the new public_model_id and complete this one",
    Edit.VARIANT_STRUCTURE: "variants and weights are frozen after draft; create a new experiment (new name) "
    "with the variants and weights you want, then complete this one",
    Edit.EXPERIMENT_METADATA: "a completed experiment is frozen; create a new experiment (new name) with the "
    "metadata you want",
    Edit.RENAME_VARIANT: "a completed experiment is frozen",
    Edit.HOT_SWAP: "a completed experiment routes nothing; create a new experiment",
    Edit.ROTATE_KEY: "a completed experiment routes nothing; its key is never used",
    Edit.ARCHIVE: "pause or complete the experiment before archiving it",
    Edit.DELETE: "complete it first (status: completed); a completed experiment is released, not deleted",
}


def edit_allowed(edit: Edit, status: str) -> bool:
    return status in EDITS[edit]


_VERBS: dict[Edit, str] = {
    Edit.METADATA: "edit the name or description",
    Edit.EXPERIMENT_METADATA: "change metadata",
    Edit.PUBLIC_MODEL_ID: "change public_model_id",
    Edit.VARIANT_STRUCTURE: "add, remove or reweight variants",
    Edit.RENAME_VARIANT: "rename a variant",
    Edit.HOT_SWAP: "change an upstream (hot-swap)",
    Edit.ROTATE_KEY: "rotate an api key",
    Edit.ARCHIVE: "archive",
    Edit.UNARCHIVE: "unarchive",
    Edit.DELETE: "delete",
}


def edit_refusal(edit: Edit, status: str) -> str:
    return f"cannot {_VERBS[edit]} while {status}: {_ALTERNATIVES.get(edit, '')}".rstrip(": ")


def status_for_edits(current: str, desired: str) -> str:
    """The status an edit runs under in one apply.

    Apply runs completions and pauses before edits and activations after them, so edits see the
    desired status when the experiment leaves `active`, and the current one when it is activated.
    """
    if desired in LEAVING_ROUTING and TRANSITIONS.get((current, desired), TransitionRule(False)).allowed:
        return desired
    return current
