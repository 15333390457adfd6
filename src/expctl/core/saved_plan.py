"""Saved plans are contracts: what a reviewer approved is exactly what apply writes — pure core.

`read_saved_plan` turns a plan file's bytes into its record or a clear error (exit 1): bounded in
size and depth, the published shape, and content that still hashes to its own `plan_id` (an
edited file is refused, whatever was edited). `check_saved_plan` compares it with the plan apply
makes under its lock: the same `plan_id` — the full change list, every key fingerprint before and
after, the api key findings, the state and manifests it was made from — or exit 4 (stale), naming
the first difference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from expctl.core.errors import PlanFileError, StalePlanError
from expctl.core.plan import CHECKED_AT_APPLY, DRIFT_MODES, FORMAT_VERSION, Plan, plan_digest
from expctl.core.render.text import deferred_key_checks

MAX_PLAN_BYTES = 256 * 1024 * 1024  # a 10,000-experiment plan is about 30 MB
MAX_PLAN_DEPTH = 128  # a plan nests its manifests' JSON (at most 64 levels) about ten levels deep
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "plan_id": str, "state_fingerprint": str, "manifests_digest": str, "options": dict, "summary": dict,
    "experiments": list, "unmanaged": list, "attention": list, "cache": dict, "gateway_profile": str,
}


def read_saved_plan(raw: bytes, name: str) -> dict[str, Any]:
    """The record in a plan file, or `PlanFileError` saying why it is not a usable saved plan."""
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanFileError(f"{name} is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB: not a saved expctl plan")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PlanFileError(f"{name} is not JSON (truncated or not a plan file): "
                            "save one with `expctl plan --out FILE`") from None
    except RecursionError:
        raise PlanFileError(f"{name} is nested too deeply to be a saved expctl plan") from None
    if not isinstance(record, dict):
        raise PlanFileError(f"{name} is not a saved expctl plan (a JSON object is expected)")
    if _depth_exceeds(record, MAX_PLAN_DEPTH):
        raise PlanFileError(f"{name} is nested more than {MAX_PLAN_DEPTH} levels deep: not a saved expctl plan")
    if record.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(f"{name} has format_version {str(record.get('format_version'))[:20]!r}; this expctl "
                            f"reads {FORMAT_VERSION}: create the plan again with this version")
    _check_shape(record, name)
    if plan_digest(record) != record["plan_id"]:
        raise PlanFileError(f"{name} does not match its own plan_id: it was edited after `expctl plan --out` "
                            "(or made by another expctl version); create the plan again")
    return record


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _check_shape(record: Mapping[str, Any], name: str) -> None:
    wrong = [key for key, kind in _REQUIRED.items() if not isinstance(record.get(key), kind)]
    if wrong:
        raise PlanFileError(f"{name} is not a saved expctl plan: {', '.join(wrong)} missing or of the wrong type")
    if not _DIGEST.fullmatch(record["plan_id"]):
        raise PlanFileError(f"{name} is not a saved expctl plan: plan_id is not a sha256 digest")
    if not isinstance(record["options"].get("prune"), bool):
        raise PlanFileError(f"{name} is not a saved expctl plan: options.prune must be true or false")
    if record["options"].get("drift", "hold") not in DRIFT_MODES:
        raise PlanFileError(f"{name} is not a saved expctl plan: options.drift must be one of {', '.join(DRIFT_MODES)}")


def check_saved_plan(saved: Mapping[str, Any], fresh: Plan) -> None:
    """Raises `StalePlanError` (exit 4) unless `fresh` is exactly the saved plan."""
    if saved["plan_id"] == fresh.plan_id:
        return
    raise StalePlanError(f"the saved plan is stale: {_first_difference(saved, fresh.to_record())}; "
                         "nothing was applied. Run `expctl plan --out` again and review it")


def _describe_target(target: Any) -> str:
    if not isinstance(target, list) or not target:
        return "every manifest (no --only)"
    return "only " + ", ".join(repr(str(t)[:100]) for t in target[:10]) + (" …" if len(target) > 10 else "")


def _first_difference(saved: Mapping[str, Any], fresh: Mapping[str, Any]) -> str:
    if saved.get("environment") != fresh["environment"]:
        return (f"it was made for environment {str(saved.get('environment'))[:40]}, this run targets "
                f"{fresh['environment']} (--env / EXPCTL_ENV)")
    if saved.get("scope", fresh["scope"]) != fresh["scope"]:
        return f"it was made for scope {str(saved.get('scope'))[:100]!r}, this run's scope is {fresh['scope']!r}"
    if saved.get("target") != fresh["target"]:
        return (f"it targets {_describe_target(saved.get('target'))}, this run targets "
                f"{_describe_target(fresh['target'])}: give the same --only to apply it")
    if saved["manifests_digest"] != fresh["manifests_digest"]:
        return "the manifests changed since it was saved"
    if saved["state_fingerprint"] != fresh["state_fingerprint"]:
        return "the database changed since it was saved (rows the plan touches differ)"
    if saved.get("gateway_profile") != fresh["gateway_profile"]:
        return (f"it was made for gateway profile {str(saved.get('gateway_profile'))[:20]}, this run uses "
                f"{fresh['gateway_profile']} (--gateway-profile, EXPCTL_GATEWAY_PROFILE or expctl.toml)")
    if saved["options"] != fresh["options"]:
        return "it was made with other options"
    deferred = deferred_key_checks(saved)
    if deferred:
        return (f"it deferred {deferred} api key comparison(s) ('{CHECKED_AT_APPLY}') that this run resolved; a "
                "saved plan must be made where BYOK_ENCRYPTION_KEY and the secrets are available (or use "
                "`expctl reconcile`, which shows the plan it applies)")
    return _changed_experiment(saved, fresh) or _other_difference(saved, fresh)


def _changed_experiment(saved: Mapping[str, Any], fresh: Mapping[str, Any]) -> str | None:
    saved_by_name = {e.get("name"): e for e in saved["experiments"] if isinstance(e, dict)}
    fresh_by_name = {e["name"]: e for e in fresh["experiments"]}
    for name in sorted(set(saved_by_name) | set(fresh_by_name), key=str):
        before, now = saved_by_name.get(name), fresh_by_name.get(name)
        if before != now:
            if before is None or now is None:
                return f"experiment {str(name)[:200]!r} is {'new in' if before is None else 'gone from'} the plan"
            return (f"the changes of experiment {str(name)[:200]!r} differ (an api key, a secret or a row changed "
                    "since it was saved)")
    return None


def _other_difference(saved: Mapping[str, Any], fresh: Mapping[str, Any]) -> str:
    if saved["attention"] != fresh["attention"]:
        return "the api key findings differ (a secret became available or unavailable, or a key moved host)"
    if saved["unmanaged"] != fresh["unmanaged"]:
        return "the unmanaged experiments changed"
    return "its content differs from a fresh plan"
