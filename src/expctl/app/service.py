"""Use cases wiring the core to the adapters: plan, apply/reconcile, cache check/refresh.

The apply path takes a PostgreSQL advisory lock, re-reads the state inside the lock, re-plans,
and applies in one transaction; Redis is refreshed only after the commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError

from expctl.adapters import crypto
from expctl.adapters.secrets import SecretResolver
from expctl.adapters.store import audit
from expctl.adapters.store.applier import ApplyContext, changed_public_ids, execute
from expctl.adapters.store.db import (
    DatabaseError,
    connect,
    describe_db_error,
    error_from_db,
    read_only,
    require_schema,
    take_apply_lock,
)
from expctl.adapters.store.outbox import (
    drain_cache_invalidations,
    pending_cache_invalidations,
    queue_cache_invalidations,
)
from expctl.adapters.store.reader import read_state, routed_membership
from expctl.app.settings import Settings
from expctl.core.errors import (
    CacheRefreshFailed,
    ConfigError,
    ConflictError,
    ConnectionFailed,
    ExpctlError,
    LockTimeout,
    RefusedError,
    SecretError,
)
from expctl.core.plan import Attention, AttentionKind, Plan
from expctl.core.planner import build_plan
from expctl.core.saved_plan import check_saved_plan
from expctl.core.state import ActualState, DesiredExperiment, KeyComparison
from expctl.core.variant_plan import match_variants


def key_checks(
    desired: Sequence[DesiredExperiment], state: ActualState, resolver: SecretResolver, byok_key: bytes | None
) -> dict[tuple[str, str], KeyComparison]:
    """Compares each desired secret with the stored key, in constant time; never for completed ones.

    A stored key that does not decrypt is that variant's finding (`unreadable`), not a failure of
    the whole plan: the rotation the plan then shows is what repairs it.
    """
    bound = state.by_managed_name()
    rows = {e.id: e for e in state.experiments if e.managed_name is None and e.owner_scope is None}
    checks: dict[tuple[str, str], KeyComparison] = {}
    fingerprints: dict[str, str] = {}  # many variants share a secret: hash each one once

    def fingerprint(secret: str) -> str:
        if secret not in fingerprints:
            fingerprints[secret] = crypto.fingerprint(secret)
        return fingerprints[secret]

    wrong_key = 0  # well-formed stored keys that failed authentication
    for experiment in desired:
        if experiment.status == "completed":
            continue  # secrets of completed experiments are never resolved
        # An adopted row's stored keys are compared as a bound one's: an import plans no rotation.
        row_of = bound.get(experiment.name) or (rows.get(experiment.adopt) if experiment.adopt else None)
        pairs, _ = match_variants(experiment, row_of)
        for variant, row in pairs:
            secret = resolver.resolve(variant.api_key)
            wanted = fingerprint(secret) if secret is not None else None
            version = row.current_version if row else None
            key = (experiment.name, variant.label)
            if secret is not None and row is not None and version is None:
                checks[key] = KeyComparison("changed", wanted)  # no stored key yet: the first one is a change
            elif secret is None or byok_key is None or version is None:
                checks[key] = KeyComparison("unknown", wanted)
            else:
                checks[key], failed_auth = _compare_stored(byok_key, version.encrypted_api_key, secret, wanted)
                wrong_key += failed_auth
    _refuse_wrong_byok_key(checks, wrong_key)
    return checks


def _compare_stored(byok_key: bytes, stored_payload: Mapping[str, object], secret: str, wanted: str | None
                    ) -> tuple[KeyComparison, bool]:
    """The comparison, and whether a well-formed stored key failed authentication."""
    try:
        stored = crypto.decrypt_api_key(byok_key, stored_payload)
    except crypto.DecryptError as err:
        return KeyComparison("unreadable", wanted), isinstance(err, crypto.WrongKeyError)
    if crypto.secrets_equal(stored, secret):
        return KeyComparison("same", wanted, wanted), False
    return KeyComparison("changed", wanted, crypto.fingerprint(stored)), False


def _refuse_wrong_byok_key(checks: Mapping[tuple[str, str], KeyComparison], wrong_key: int) -> None:
    """A key that authenticates none of the stored keys is almost surely not the gateway's BYOK key:
    "repairing" every variant with it would make every key unreadable to the gateway. One bad row
    among readable ones stays that variant's finding."""
    readable = sum(1 for c in checks.values() if c.result in ("same", "changed") and c.current_fingerprint)
    if wrong_key and not readable:
        raise crypto.DecryptError(
            f"{crypto.BYOK_ENV} decrypts none of the {wrong_key} stored api key(s) it was compared with: it is "
            "probably not the gateway's key. Nothing was planned or applied")


def _check_target(settings: Settings, desired: Sequence[DesiredExperiment], state: ActualState) -> None:
    """Every --only pattern must match a manifest or a bound experiment: a typo must not plan nothing."""
    scope = settings.plan_scope
    unmatched = scope.unmatched({d.name for d in desired} | set(state.by_managed_name()))
    if unmatched:
        raise ConfigError(f"--only {', '.join(repr(p) for p in unmatched)} matches no manifest and no experiment "
                          f"of scope {scope.scope!r}: nothing would be planned")


def _plan(settings: Settings, desired: Sequence[DesiredExperiment], state: ActualState, prune: bool) -> Plan:
    _check_target(settings, desired, state)
    byok_key = settings.byok_key()
    desired = [d for d in desired if settings.plan_scope.selects(d.name)]
    checks = key_checks(desired, state, settings.resolver(), byok_key)
    return build_plan(desired, state, checks, prune, byok_available=byok_key is not None,
                      host_pins=settings.config.host_pins, profile=settings.gateway_profile,
                      scope=settings.plan_scope)


def make_plan(settings: Settings, prune: bool = False) -> Plan:
    """The plan for the manifests against the state (a READ ONLY transaction)."""
    desired = settings.load_manifests()
    membership, ok = settings.cache().read_membership()
    with read_only(settings.database_url) as conn:
        require_schema(conn)
        state = read_state(conn, membership, ok, membership_read=bool(settings.redis_urls),
                           scope=settings.plan_scope.scope)
    return _plan(settings, desired, state, prune)


def _map_integrity(err: IntegrityError, url: str) -> ConflictError:
    diag = getattr(err.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or "a constraint"
    hints = {
        "UQ_model_experiment_public_model_id_routing":
            "another experiment is already active or paused on that public_model_id",
        "model_experiment_active_not_archived": "an active experiment cannot be archived",
        "UQ_model_experiment_variant_experiment_label": "two variants of one experiment share a label",
        "model_experiment_variant_weight_positive": "weights must be positive",
    }
    reason = hints.get(constraint, describe_db_error(err, url))
    return ConflictError(f"the database refused the change ({constraint}): {reason}; nothing was applied")


@dataclass(frozen=True)
class ApplyOutcome:
    plan: Plan
    applied: bool


Confirm = Callable[[Plan], bool]


def apply(
    settings: Settings, *, prune: bool, confirm: Confirm, saved: Mapping[str, object] | None = None,
    command: str = "apply",
) -> ApplyOutcome:
    """Locks, re-reads, re-plans, checks a saved plan for staleness, applies, commits, refreshes Redis."""
    desired = settings.load_manifests()
    try:
        plan = _apply_locked(settings, desired, prune, confirm, saved, command)
    except PlanRefused as refused:
        with connect(settings.database_url) as conn, conn.begin():
            audit.record(conn, command, refused.plan, "refused", settings.env)
        raise
    try:
        refresh_cache(settings, committed=plan.has_changes)
    except (ConnectionFailed, DatabaseError, LockTimeout) as err:  # PostgreSQL failed after the commit, not Redis
        raise CacheRefreshFailed(
            f"{_postgres_outcome(plan.has_changes)}, but the Redis refresh could not read it back ({err}); "
            "re-run `expctl reconcile` or `expctl cache refresh` to heal"
        ) from None
    return ApplyOutcome(plan, plan.has_changes)


def _postgres_outcome(committed: bool) -> str:
    return "PostgreSQL is committed" if committed else "PostgreSQL needed no change"


def _apply_locked(
    settings: Settings, desired: Sequence[DesiredExperiment], prune: bool, confirm: Confirm,
    saved: Mapping[str, object] | None, command: str,
) -> Plan:
    resolver, byok_key = settings.resolver(), settings.byok_key()
    membership, membership_ok = _membership_or_unknown(settings)
    with connect(settings.database_url) as conn, conn.begin():
        try:
            require_schema(conn)
            take_apply_lock(conn, settings.apply_lock())
            state = read_state(conn, membership, membership_ok is not False, membership_read=membership_ok is not None,
                               scope=settings.plan_scope.scope)
            plan = _plan(settings, desired, state, prune)
            if saved is not None:
                check_saved_plan(saved, plan)
            if plan.refused:
                raise PlanRefused(plan)
            _require_secrets(plan)
            if not confirm(plan):
                raise ExpctlError("not approved: nothing was applied")
            if plan.has_changes or plan.records_applied:
                ctx = ApplyContext(resolver, byok_key, audit.actor(settings.env))
                # The plan's record and hash (for the audit row) are pure Python work on frozen data:
                # a thread computes them while this one mostly waits for PostgreSQL to take the rows.
                recording = threading.Thread(target=plan.to_record, name="plan-record", daemon=True)
                recording.start()
                try:
                    execute(conn, plan, ctx)
                except IntegrityError as err:
                    raise _map_integrity(err, settings.database_url) from None
                finally:
                    recording.join()
                queue_cache_invalidations(conn, changed_public_ids(plan))
            audit.record(conn, command, plan, "applied" if plan.has_changes else "no changes", settings.env)
        except DBAPIError as err:
            # Before the COMMIT, so the transaction is rolled back and the run changed nothing. (A failing
            # COMMIT is reported by `connect` without that claim: its outcome is unknown.)
            raise error_from_db(err, settings.database_url, "; nothing was applied") from None
    return plan


def _membership_or_unknown(settings: Settings) -> tuple[tuple[str, ...] | None, bool | None]:
    """(ids, ok), ok None when not read. Redis being down must not block the PostgreSQL apply:
    the refresh after commit reports it."""
    if not settings.redis_urls:
        return None, None
    try:
        return settings.cache().read_membership()
    except ConnectionFailed:
        return None, None


class PlanRefused(RefusedError):
    def __init__(self, plan: Plan) -> None:
        super().__init__(f"{len(plan.refused)} change(s) refused: nothing was applied")
        self.plan = plan


def _require_secrets(plan: Plan) -> None:
    """Apply compares or writes every secret of every experiment that is not completed: name all
    the missing ones at once, before anything is written."""
    missing = [a for a in plan.attention if a.kind is AttentionKind.SECRET_UNAVAILABLE]
    if missing:
        raise SecretError(unavailable_secrets_message(missing) + "; nothing was applied")


def unavailable_secrets_message(missing: Sequence[Attention]) -> str:
    lines = [f"  {a.location or 'no location'}: {a.experiment}/{a.variant}: {a.secret}" for a in missing]
    return (f"{len(missing)} secret(s) not available (set the environment variable or provide the file):\n"
            + "\n".join(lines))


def refresh_cache(settings: Settings, extra_ids: Sequence[str] = (), committed: bool = True) -> None:
    """Writes the membership computed from PostgreSQL after the commit and drops the per-id keys
    queued in the outbox (and `extra_ids`); the outbox is drained only when every target succeeded.

    Runs under the apply lock, held from reading PostgreSQL until Redis is written: a run that
    commits meanwhile refreshes after this one, so an older membership never overwrites a newer one.
    """
    cache = settings.cache()
    if not cache.urls:
        return
    with connect(settings.database_url) as conn, conn.begin():
        take_apply_lock(conn, settings.apply_lock())
        membership = routed_membership(conn)
        pending = pending_cache_invalidations(conn)
        failures = cache.refresh(membership, sorted(set(pending) | set(extra_ids)))
        if pending and not failures:
            drain_cache_invalidations(conn, pending)
    if failures:
        raise CacheRefreshFailed(
            f"{_postgres_outcome(committed)}, but refreshing Redis failed for {', '.join(failures)}; "
            "re-run `expctl reconcile` or `expctl cache refresh` to heal"
        )
