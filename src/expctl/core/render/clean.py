"""Making user text safe to print — pure core, shared by every renderer.

Manifests, rows and reasons hold user text; printed as is, a control character could forge a
terminal colour and a bidi override could reorder a line a reviewer reads. `clean` escapes both.
"""

from __future__ import annotations

import re

_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Unicode category Cc is exactly C0, DEL and C1 (U+0000-U+001F, U+007F-U+009F); plus the bidi overrides.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(sorted(_BIDI)) + "]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def clean(text: str) -> str:
    """Escapes control and bidi-override characters: user text cannot forge colours or reorder a line."""
    return _UNSAFE.sub(_escape, text)
