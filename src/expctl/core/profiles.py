"""Gateway profiles: what differs between the gateway versions expctl serves, in one place.

`2026-11` (the default) is the gateway as of November 2026: experiment metadata, a stricter
upstream with `extra_headers`/`compression`, public ids reserved for the operator's own models,
and only the membership key in Redis. `2026-05` is the gateway of the original admin router: no
metadata, the older upstream, per-id routing keys in Redis. See docs/design.md#gateway-profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from expctl.core.errors import ConfigError

DEFAULT_PROFILE = "2026-11"


@dataclass(frozen=True)
class GatewayProfile:
    name: str
    # Public model id prefixes the gateway keeps for its operator's own models.
    reserved_prefixes: tuple[str, ...]
    # Whether the gateway reads `model_experiment.metadata` (a manifest field under this profile).
    has_metadata: bool
    # Whether the gateway reads the per-id `by-public-id:` Redis keys (expctl deletes them on routing changes).
    per_id_keys: bool


PROFILES: dict[str, GatewayProfile] = {
    "2026-11": GatewayProfile("2026-11", ("kilo/", "kilocode/", "kilo-internal/"), has_metadata=True,
                              per_id_keys=False),
    "2026-05": GatewayProfile("2026-05", (), has_metadata=False, per_id_keys=True),
}


def gateway_profile(name: str | None) -> GatewayProfile:
    """The profile called `name` (the default when None), or a ConfigError listing the known ones."""
    key = DEFAULT_PROFILE if name is None else name
    try:
        return PROFILES[key]
    except KeyError:
        raise ConfigError(f"unknown gateway profile {key[:40]!r}: use one of {', '.join(sorted(PROFILES))}") from None
