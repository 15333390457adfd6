"""What the cross-manifest rules read of each manifest (`rules.RuleSubject`) — adapter.

Taken from the document (even one with other errors, so that one run reports every problem), or,
for a valid manifest, from the experiment it validated into: a forked loading worker then sends
only the experiment, and the receiving process derives the subject.
"""

from __future__ import annotations

from expctl.manifest import rules
from expctl.manifest.yamlread import Document
from expctl.state import DesiredExperiment

_SUBJECT_FIELDS = ("name", "public_model_id", "status", "archived", "variants")


def rule_subject(doc: Document) -> rules.RuleSubject | None:
    """The fields the cross-manifest rules need, if the document has them with usable types."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    locs = doc.field_locations((), _SUBJECT_FIELDS, every=True)
    variants = []
    for index, item in enumerate(data.get("variants") or []):
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


def desired_rule_subject(d: DesiredExperiment) -> rules.RuleSubject:
    """`rule_subject` of the document `d` was read from, built from `d` alone: for a valid document
    whose root mapping starts where the document does (where `rule_subject` places missing fields)."""
    return rules.RuleSubject(
        name=d.name, public_model_id=d.public_model_id, status=d.status, archived=d.archived,
        variants=tuple(rules.RuleVariant(v.label, v.renamed_from, {
            "label": v.field_locations["label"], "renamed_from": v.field_locations.get("renamed_from", v.location),
        }) for v in d.variants),
        field_locations={name: d.field_locations.get(name, d.location) for name in _SUBJECT_FIELDS})
