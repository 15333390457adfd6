"""The planner's field edits of one experiment: name, description, public id, archive flag and
`metadata` (docs/design.md#plans) — pure core, split from `planner` to keep each module short.

Whether an edit is allowed in a status comes from the lifecycle edit table; a refused edit is a
change with its reason, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping

from expctl.core import lifecycle
from expctl.core.errors import Location
from expctl.core.lifecycle import Edit
from expctl.core.plan import Change, ChangeKind
from expctl.core.state import ActualExperiment, DesiredExperiment, same_json


def edit(kind: ChangeKind, what: Edit, status: str, location: Location, **values: object) -> Change:
    """The change, refused with the lifecycle's wording when `what` is not allowed in `status`."""
    allowed = lifecycle.edit_allowed(what, status)
    reason = None if allowed else lifecycle.edit_refusal(what, status)
    return Change(kind, allowed=allowed, reason=reason, location=location, **values)  # type: ignore[arg-type]


def json_value(value: Mapping[str, object] | None) -> dict[str, object] | None:
    return None if value is None else dict(value)


def metadata_changes(desired: DesiredExperiment, actual: ActualExperiment, status: str) -> list[Change]:
    """`metadata` as one field with its whole JSON values (renderers show the keys that changed).
    Not a routing change: the gateway reads it to list models, not to pick a variant."""
    before, after = json_value(actual.metadata), json_value(desired.metadata)
    if same_json(before, after):
        return []
    return [edit(ChangeKind.UPDATE_FIELD, Edit.EXPERIMENT_METADATA, status, desired.loc("metadata"),
                 field="metadata", before=before, after=after)]


def field_changes(desired: DesiredExperiment, actual: ActualExperiment, status: str) -> list[Change]:
    changes = []
    for field, before, after in (
        ("display_name", actual.name, desired.display_name),
        ("description", actual.description, desired.description),
    ):
        if before != after:
            changes.append(edit(ChangeKind.UPDATE_FIELD, Edit.METADATA, status, desired.loc(field),
                                field=field, before=before, after=after))
    if actual.public_model_id != desired.public_model_id:
        changes.append(edit(ChangeKind.UPDATE_FIELD, Edit.PUBLIC_MODEL_ID, actual.status,
                            desired.loc("public_model_id"), field="public_model_id",
                            before=actual.public_model_id, after=desired.public_model_id, routing=True))
    if desired.archived != actual.is_archived:
        kind, what = (ChangeKind.ARCHIVE, Edit.ARCHIVE) if desired.archived else (ChangeKind.UNARCHIVE, Edit.UNARCHIVE)
        changes.append(edit(kind, what, status, desired.loc("archived"), field="archived",
                            before=actual.is_archived, after=desired.archived))
    return changes
