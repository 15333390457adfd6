"""Secrets out of everything expctl prints about a connection: URLs, libpq DSNs and driver messages.

`redact_url` is the one way a database or Redis URL is shown. It masks the password of the
userinfo and the values of query parameters whose name looks like a credential, for any
`scheme://` URL (postgresql, postgres, postgresql+psycopg, redis, rediss, unix) and for libpq
`key=value` strings. It never raises: what it cannot split with certainty is shown as
`<unparseable URL>`, never as itself.

`scrub_error` cleans a driver's exception text before it is shown: it masks the secrets parsed out
of the configured URLs (in the spellings a driver may echo), any URL or `password=…` pair in the
text, and hides the text altogether when a configured URL could not be parsed (its secret is then
unknown, so no text quoting it can be trusted).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote, unquote, unquote_plus

MASK = "***"
UNPARSEABLE = "<unparseable URL>"
DETAILS_HIDDEN = "details hidden (the connection URL could not be parsed, so its secrets could not be masked)"

# Substrings of a parameter name that mark its value as a credential, compared case-insensitively:
# password, sslpassword, passfile, pass, pwd, secret, client_secret, token, apikey, api_key,
# sslkey, auth, credentials. Masking a harmless value (a key file's path) costs nothing.
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
_PAIR_IN_TEXT = re.compile(
    r"(?P<key>[\w.\-]*(?:" + "|".join(_SECRET_WORDS) + r")[\w.\-]*)(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s,;)]+)",
    re.IGNORECASE,
)
_DSN_SPACE = " \t\n\r\f\v"


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _unsafe(char: str) -> bool:
    """Control characters (C0, DEL, C1), format characters (bidi overrides) and line separators:
    a URL holding one is not printed, so it cannot rewrite the terminal."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


# ---------------------------------------------------------------- URLs


class _Unparseable(Exception):
    """The input has no single reading, or is not a URL or DSN at all."""


def _split_url(url: str) -> tuple[str, str | None, str, str]:
    """(scheme://, userinfo or None, host[:port][,host…], path?query#fragment) of a URL.

    The authority ends at the first `/`, `?` or `#` (RFC 3986, urllib and redis-py), but libpq and
    SQLAlchemy end the userinfo at the first `@`. When an `@` lies beyond the authority with a `:`
    before it (`u:pa/ss@host`, `u:p?x@host`, `u:@#@host`), a password pasted without
    percent-encoding may run past where the drivers end it: the URL is unparseable rather than
    half masked. (An `@` in a query value is fine when no `:` precedes it.)
    """
    match = _SCHEME.match(url)
    if match is None:
        raise _Unparseable
    rest = url[match.end():]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    last_at = rest.rfind("@")
    if last_at >= end and ":" in rest[:last_at]:
        raise _Unparseable
    if "@" not in authority:
        return match.group(), None, authority, tail
    userinfo, _, hosts = authority.rpartition("@")  # as urllib: the last `@` of the authority
    return match.group(), userinfo, hosts, tail


def _mask_params(params: str) -> tuple[str, list[str]]:
    """`a=1&password=x` → `a=1&password=***`, and the masked values."""
    shown, secrets = [], []
    for param in params.split("&"):
        key, eq, value = param.partition("=")
        if is_secret_name(unquote_plus(key)):
            if eq:
                shown.append(f"{key}={MASK}")
                secrets.append(value)
            else:
                shown.append(MASK)  # a bare `password%3Dx`: the name itself may carry the value
                secrets.append(param)
        else:
            shown.append(param)
    return "&".join(shown), secrets


def _mask_tail(tail: str) -> tuple[str, list[str]]:
    """Masks the query's and the fragment's credential parameters; the path is kept."""
    rest, hash_, fragment = tail.partition("#")
    path, question, query = rest.partition("?")
    query, secrets = _mask_params(query)
    fragment, more = _mask_params(fragment)
    return f"{path}{question}{query}{hash_}{fragment}", secrets + more


def _redact_scheme_url(url: str) -> tuple[str, list[str]]:
    scheme, userinfo, hosts, tail = _split_url(url)
    secrets: list[str] = []
    shown_userinfo = ""
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        if password:
            # libpq and SQLAlchemy end the password at its first `@`: that reading is masked too.
            secrets += [password, password.partition("@")[0]]
        shown_userinfo = f"{user}{colon}{MASK if password else ''}@"
    shown_tail, more = _mask_tail(tail)
    return f"{scheme}{shown_userinfo}{hosts}{shown_tail}", secrets + more


# ---------------------------------------------------------------- libpq key=value strings


def _dsn_value(text: str, pos: int) -> tuple[str, int]:
    """The raw text of one value starting at `pos` (quoted or not) and where it ends."""
    start = pos
    if pos < len(text) and text[pos] == "'":
        pos += 1
        while pos < len(text) and text[pos] != "'":
            pos += 2 if text[pos] == "\\" else 1
        if pos >= len(text):
            raise _Unparseable  # an unterminated quote: libpq refuses it too
        return text[start:pos + 1], pos + 1
    while pos < len(text) and text[pos] not in _DSN_SPACE:
        pos += 2 if text[pos] == "\\" else 1
    return text[start:min(pos, len(text))], pos


def _parse_dsn(text: str) -> list[tuple[str, str]]:
    """(keyword, raw value) pairs of a libpq connection string, as libpq's conninfo_parse reads it."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _DSN_SPACE:
            pos += 1
        if pos >= len(text):
            return pairs
        start = pos
        while pos < len(text) and text[pos] not in _DSN_SPACE and text[pos] != "=":
            pos += 1
        key = text[start:pos]
        while pos < len(text) and text[pos] in _DSN_SPACE:
            pos += 1
        if not key or pos >= len(text) or text[pos] != "=":
            raise _Unparseable
        pos += 1
        while pos < len(text) and text[pos] in _DSN_SPACE:
            pos += 1
        value, pos = _dsn_value(text, pos)
        pairs.append((key, value))


def _redact_dsn(text: str) -> tuple[str, list[str]]:
    pairs = _parse_dsn(text)
    if not pairs:
        raise _Unparseable
    secrets = [value for key, value in pairs if is_secret_name(key)]
    shown = " ".join(f"{key}={MASK if is_secret_name(key) else value}" for key, value in pairs)
    return shown, secrets + [_unquote_dsn(v) for v in secrets]


def _unquote_dsn(value: str) -> str:
    inner = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value
    return re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL)


# ---------------------------------------------------------------- the public functions


def _analyse(url: str) -> tuple[str, list[str]]:
    """(what may be shown, the raw secret values); raises `_Unparseable`."""
    text = url.strip()
    if not text:
        raise _Unparseable
    if _SCHEME.match(text):
        if any(_unsafe(c) or c.isspace() for c in text):
            raise _Unparseable
        shown, secrets = _redact_scheme_url(text)
    elif "=" in text:
        shown, secrets = _redact_dsn(text)
    else:
        raise _Unparseable
    if any(_unsafe(c) for c in shown):
        raise _Unparseable
    # A secret also written elsewhere (a password equal to the user name) is masked there too; the
    # scheme is left alone, so `postgres` as a password does not garble `postgresql://`.
    match = _SCHEME.match(shown)
    scheme = match.group() if match else ""
    return scheme + _mask_known(shown[len(scheme):], _spellings(secrets)), secrets


def redact_url(url: str) -> str:
    """`url` safe to print: passwords and credential parameters masked; `<unparseable URL>` when it
    cannot be split with certainty. Never raises."""
    try:
        return _analyse(url)[0]
    except Exception:  # whatever the input, printing it must neither fail nor show it
        return UNPARSEABLE


def url_secrets(url: str) -> frozenset[str]:
    """The secret values a URL or DSN carries, in the spellings a driver may echo (as written,
    percent-decoded, `+` as space, re-encoded). Empty when there are none or it is unparseable."""
    try:
        return frozenset(_spellings(_analyse(url)[1]))
    except Exception:  # see redact_url
        return frozenset()


def _spellings(secrets: Iterable[str]) -> set[str]:
    forms: set[str] = set()
    for secret in secrets:
        decoded = unquote(secret)
        forms.update((secret, decoded, unquote_plus(secret), quote(decoded, safe=""), quote(decoded)))
    return {form for form in forms if _maskable(form)}


def _maskable(secret: str) -> bool:
    # A value of only spaces and asterisks cannot be told apart from text or from the mask itself.
    return any(c not in " *" for c in secret)


def _mask_known(text: str, secrets: Iterable[str]) -> str:
    """Every occurrence of every secret replaced by the mask, longest first, until none is left
    (a replacement only removes characters other than `*`, so this ends)."""
    ordered = sorted({s for s in secrets if _maskable(s)}, key=len, reverse=True)
    changed = True
    while changed:
        changed = False
        for secret in ordered:
            if secret in text:
                text, changed = text.replace(secret, MASK), True
    return text


def scrub_error(text: str, urls: Iterable[str]) -> str:
    """A driver's exception text, safe to show for a connection made with `urls`.

    Masks the secrets of `urls`, then every URL and every credential `key=value` pair in the text.
    When one of `urls` cannot be parsed, its secrets are unknown, and the text is replaced by a note.
    """
    known: set[str] = set()
    for url in urls:
        if redact_url(url) == UNPARSEABLE:
            return DETAILS_HIDDEN
        known |= url_secrets(url)
    return scrub_text(_mask_known(text, known))


def scrub_text(text: str) -> str:
    """URLs and credential `key=value` pairs in free text masked (no known secrets needed)."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    return _PAIR_IN_TEXT.sub(lambda m: f"{m.group('key')}{m.group('eq')}{MASK}", text)
