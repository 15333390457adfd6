"""What the plan says about api keys besides the changes themselves — pure core.

A reviewer approves where a key goes as much as which key it is (docs/security.md): a hot-swap
that moves a variant to another host sends the same secret to someone new, a secret the plan job
could not read hides its comparison until apply, and a stored key that does not decrypt can only
be repaired by a new version. These helpers word those findings as `Attention` items and check
the optional host pins of the project configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from expctl.core.plan import Attention, AttentionKind
from expctl.core.state import DesiredExperiment, DesiredVariant

HostPins = Mapping[str, Sequence[str]]


def host_of(url: object) -> str | None:
    """The lower-cased host of a base URL, or None when there is none to name."""
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def host_matches(pattern: str, host: str) -> bool:
    """`pattern` is an exact host or `*.domain`, which matches subdomains at any depth but not the
    domain itself; case and a trailing dot are ignored."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def pin_refusal(pins: HostPins, variant: DesiredVariant) -> str | None:
    """Why sending this variant's key to its upstream host breaks a host pin, or None."""
    patterns = pins.get(variant.api_key.describe())
    if patterns is None:
        return None
    host = host_of(variant.upstream.get("base_url"))
    if host is not None and any(host_matches(p, host) for p in patterns):
        return None
    return (f"api key {variant.api_key.describe()} may only be sent to {', '.join(patterns)} "
            f"(host pins in expctl.toml), not to {host or 'this base_url'}: fix base_url, or change the pin "
            "in a reviewed commit")


def host_change(experiment: DesiredExperiment, variant: DesiredVariant,
                before_upstream: Mapping[str, object]) -> Attention | None:
    """An item when a hot-swap sends the variant's key to a different host than today."""
    old, new = host_of(before_upstream.get("base_url")), host_of(variant.upstream.get("base_url"))
    if old == new or new is None:
        return None
    ref = variant.api_key.describe()
    return Attention(AttentionKind.KEY_SENT_TO_NEW_HOST, experiment.name, variant.label, ref,
                     f"api key {ref} now sent to {new} (was {old or 'no host'})", variant.loc("upstream"))


def unavailable(experiment: DesiredExperiment, variant: DesiredVariant, byok_available: bool) -> Attention:
    """A secret this run could not read: apply would fail where the BYOK key is present (an
    environment meant to apply); elsewhere the comparison waits for apply."""
    ref = variant.api_key.describe()
    effect = ("apply needs it and would fail" if byok_available
              else "its comparison is checked at apply (no BYOK key here)")
    return Attention(AttentionKind.SECRET_UNAVAILABLE, experiment.name, variant.label, ref,
                     f"secret {ref} is not available here: {effect}", variant.loc("api_key"),
                     blocking=byok_available)


def unreadable(experiment: DesiredExperiment, variant: DesiredVariant) -> Attention:
    ref = variant.api_key.describe()
    return Attention(AttentionKind.STORED_KEY_UNREADABLE, experiment.name, variant.label, ref,
                     "the stored api key cannot be decrypted (malformed, or written with another BYOK key): "
                     f"apply writes a new version with {ref}", variant.loc("api_key"))


def ordered(items: Sequence[Attention]) -> tuple[Attention, ...]:
    """Findings in a stable order: by kind, experiment, variant, secret."""
    return tuple(sorted(items, key=lambda a: (a.kind.value, a.experiment, a.variant, a.secret)))
