"""Names `expctl import` gives what it writes: manifest names, file names, placeholder variables."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 60
ENV_PREFIX = "EXPCTL_KEY_"



def slugify(display_name: str) -> str:
    """A manifest name ([a-z0-9-]) from a display name: accents folded, other runs become '-'."""
    folded = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:MAX_NAME_LENGTH].rstrip("-") or "experiment"


def unique(base: str, taken: set[str], separator: str) -> str:
    """`base`, else `base<sep>2`, `base<sep>3`…; the result is added to `taken`."""
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}{separator}{n}"
    taken.add(candidate)
    return candidate


def env_var_name(name: str, label: str) -> str:
    """`EXPCTL_KEY_<NAME>_<LABEL>`, upper-cased, every other character than A-Z 0-9 made '_'."""
    return re.sub(r"[^A-Z0-9]", "_", f"{ENV_PREFIX}{name}_{label}".upper())
