"""Who holds the apply lock, in words — pure core.

A run that takes the apply lock names itself in PostgreSQL's `application_name` for its transaction
(command, actor, short git revision), which every session can read in `pg_stat_activity`. A run
waiting for the lock finds the holder there and says who it waits for, since when and how long it
will still wait; on timeout the error says the same (docs/design.md#applying-a-plan).

Only the command name, the actor (a user name, as in the audit row) and the revision go into the
name: never a secret.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# PostgreSQL keeps the first 63 bytes of application_name (NAMEDATALEN - 1) and replaces anything
# but printable ASCII with '?': the name is built within both limits, so what is read back is whole.
APPLICATION_NAME_MAX_BYTES = 63
TAG_PREFIX = "expctl|"
SEPARATOR = "|"
REVISION_CHARS = 12


@dataclass(frozen=True)
class RunTag:
    """What a run holding the apply lock says about itself (None: not known)."""

    command: str
    actor: str | None
    revision: str | None


@dataclass(frozen=True)
class ApplyLock:
    """What a run asks of the apply lock: how long it waits, how it names itself while holding the
    lock, and who is told (a line of text) while it waits."""

    timeout_s: float
    tag: RunTag
    on_wait: Callable[[str], None] | None = None


@dataclass(frozen=True)
class LockHolder:
    """A session holding the apply lock, as `pg_locks` and `pg_stat_activity` show it.

    `since` is the start of the holder's transaction (the lock is transaction-scoped, so it is held at
    most that long) and `held_s` the seconds since; both None when PostgreSQL hides them (a session of
    another role, for a role without pg_read_all_stats)."""

    pid: int
    application_name: str
    since: datetime | None
    held_s: float | None


def _printable(value: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in value)


def application_name(tag: RunTag) -> str:
    """`expctl|<command>|<revision>|<actor>` within 63 printable ASCII bytes; the actor comes last
    (it may hold a '|') and is what gets cut when the name is too long."""
    command = _printable(tag.command).replace(SEPARATOR, " ")
    revision = _printable(tag.revision or "")[:REVISION_CHARS].replace(SEPARATOR, " ")
    name = f"{TAG_PREFIX}{command}{SEPARATOR}{revision}{SEPARATOR}{_printable(tag.actor or '')}"
    return name[:APPLICATION_NAME_MAX_BYTES]


def parse_application_name(name: str) -> RunTag | None:
    """The tag an expctl holder wrote, or None when the name was not written by `application_name`."""
    if not name.startswith(TAG_PREFIX):
        return None
    parts = name[len(TAG_PREFIX):].split(SEPARATOR, 2)
    if len(parts) != 3 or not parts[0]:
        return None
    command, revision, actor = parts
    return RunTag(command, actor or None, revision or None)


def _since(holder: LockHolder) -> str:
    if holder.since is None:
        return "since an unknown time"
    when = holder.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"since {when}" + (f" ({holder.held_s:.0f}s)" if holder.held_s is not None else "")


def describe_holder(holder: LockHolder | None) -> str:
    """The holder in one phrase: `expctl reconcile by alice at revision 1a2b3c4d5e6f (pid 42, since …)`."""
    if holder is None:
        return "a session that could not be identified (it may just have released the lock)"
    tag = parse_application_name(holder.application_name)
    facts = f"pid {holder.pid}, {_since(holder)}"
    if tag is not None:
        return (f"expctl {tag.command} by {tag.actor or 'an unknown actor'} at "
                f"{'revision ' + tag.revision if tag.revision else 'an unknown revision'} ({facts})")
    if holder.application_name == "expctl":
        return f"an expctl run that does not name its command (an older version?) ({facts})"
    shown = _printable(holder.application_name)[:APPLICATION_NAME_MAX_BYTES]
    return f"a session that is not expctl (application_name '{shown}', {facts})"


def waiting_message(holder: LockHolder | None, left_s: float) -> str:
    # Rounded up: "giving up in 0s" would be read as "gave up".
    return f"waiting for the apply lock, held by {describe_holder(holder)}; giving up in {max(math.ceil(left_s), 0)}s"


def timeout_message(holder: LockHolder | None, timeout_s: float) -> str:
    return (f"another run holds the apply lock: {describe_holder(holder)}; gave up after {timeout_s:g}s "
            "(--lock-timeout)")
