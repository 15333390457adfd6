"""What the cross-manifest rules read of each manifest (`rules.RuleSubject`) — adapter.

Taken from the document, even one with other errors, so that one run reports every problem.
"""

from __future__ import annotations

from expctl.adapters.manifest.yamlread import Document
from expctl.core.manifest import rules

_SUBJECT_FIELDS = ("name", "public_model_id", "status", "archived", "variants")


def rule_subject(doc: Document) -> rules.RuleSubject | None:
    """The fields the cross-manifest rules need, if the document has them with usable types."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    locs = doc.field_locations((), _SUBJECT_FIELDS, every=True)
    listed = data.get("variants")
    variants = []
    for index, item in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(item, dict) and isinstance(item.get("label"), str):
            renamed = item.get("renamed_from")
            variants.append(rules.RuleVariant(
                item["label"], renamed if isinstance(renamed, str) else None,
                doc.field_locations(("variants", index), ("label", "renamed_from"), every=True)))
    public_model_id = data.get("public_model_id")
    return rules.RuleSubject(
        name=data["name"], public_model_id=public_model_id if isinstance(public_model_id, str) else "",
        status=str(data.get("status", "draft")),
        archived=data.get("archived") is True, variants=tuple(variants), field_locations=locs)

