"""`expctl.core.redact`: URLs, libpq DSNs and driver messages shown without their secrets (pure, no servers)."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from expctl.core.redact import DETAILS_HIDDEN, MASK, UNPARSEABLE, redact_url, scrub_error, scrub_text, url_secrets

SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "redis", "rediss", "unix")


@pytest.mark.parametrize(("url", "shown"), [
    # userinfo passwords, every scheme
    ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
    ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("rediss://user:pw@h/0", "rediss://user:***@h/0"),
    ("unix://:pw@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
    ("redis://u:p@x@h/0", "redis://u:***@h/0"),  # an unencoded `@`: the authority's last one ends the userinfo
    ("postgresql://u:@h/db", "postgresql://u:@h/db"),  # an empty password hides nothing
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    # query parameters that carry secrets, case-insensitive, repeated, in the fragment too
    ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
    ("postgresql://u@h/db?sslpassword=s1&passfile=%2Fpgpass&PASSWORD=s2&password=s3",
     "postgresql://u@h/db?sslpassword=***&passfile=***&PASSWORD=***&password=***"),
    ("redis://h/0?password=pw", "redis://h/0?password=***"),
    ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
    ("rediss://h/0?token=t1&Api_Key=k1&apikey=k2&secret=s1&pass=p1&client_secret=c1",
     "rediss://h/0?token=***&Api_Key=***&apikey=***&secret=***&pass=***&client_secret=***"),
    ("redis://h/0#password=pw", "redis://h/0#password=***"),
    ("redis://h/0?password%3Dpw", "redis://h/0?***"),  # an encoded `=`: the name itself holds the value
    ("postgresql://h/db?application_name=me@example.com", "postgresql://h/db?application_name=me@example.com"),
    # a secret written twice is masked wherever it is (never in the scheme): a password of one
    # character would mask that character everywhere, which is the price of never showing it
    ("postgresql://postgres:postgres@localhost/postgres", "postgresql://***:***@localhost/***"),
    # libpq key=value strings
    ("host=h port=5432 password=pw user=u", "host=h port=5432 password=*** user=u"),
    ("host = h  password = 'a b\\' c'  sslmode=require", "host=h password=*** sslmode=require"),
    ("password=", "password=***"),
    # an already redacted URL stays as it is
    ("postgresql://u:***@h/db?password=***", "postgresql://u:***@h/db?password=***"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("url", [
    "",
    "   ",
    "localhost:5432",  # no scheme and no key=value: not a URL at all
    "just-a-password",
    "postgresql://u:pa/ss@h/db",  # an unencoded `/` in the password: drivers disagree where it ends
    "redis://:pa?ss@h/0",
    "redis://:pa#ss@h/0",
    "postgresql://h:5432/db?application_name=a@b",  # genuinely ambiguous: SQLAlchemy reads a password there
    "postgresql://u:p w@h/db",  # whitespace
    "redis://h/0?x=\x1b[31mred",  # a terminal escape
    "redis://h/0?x=\u202eevil",  # a bidi override
    "redis://h/0\nInjected: line",
    "host=h password='unterminated",
    "host=h =value",
    "host=h novalue",
])
def test_unparseable_urls_are_never_shown(url: str) -> None:
    assert redact_url(url) == UNPARSEABLE
    assert url_secrets(url) == frozenset()


def test_url_secrets_has_the_spellings_a_driver_may_echo() -> None:
    assert url_secrets("postgresql://u:p%40ss@h/db?password=a+b") >= {"p%40ss", "p@ss", "a+b", "a b"}
    assert url_secrets("host=h password='it\\'s'") >= {"'it\\'s'", "it's"}
    assert url_secrets("redis://h/0") == frozenset()


def test_scrub_error_masks_known_secrets_urls_and_pairs() -> None:
    url = "postgresql://u@h/db?password=CANARY-q&sslpassword=CANARY-s"
    text = ('connection to "postgresql://x:CANARY-other@h/db" failed: CANARY-q, CANARY-s; '
            "password=hunter2 token: kept api_key='a b' dsn: host=h password=zz")
    shown = scrub_error(text, [url])
    assert "CANARY" not in shown and "hunter2" not in shown and "a b" not in shown and "zz" not in shown
    assert 'postgresql://x:***@h/db"' in shown and "password=***" in shown and "token: kept" in shown


def test_scrub_error_hides_everything_when_a_url_cannot_be_parsed() -> None:
    assert scrub_error("invalid port 'pa'", ["postgresql://u:pa/ss@h/db"]) == DETAILS_HIDDEN
    assert scrub_error("plain", ["redis://h/0", "postgresql://h/db"]) == "plain"


def test_scrub_text_leaves_ordinary_messages_alone() -> None:
    for message in ('canceling statement due to statement timeout',
                    'duplicate key value violates unique constraint "UQ_model_experiment_public_model_id_routing"',
                    'password authentication failed for user "expctl"'):
        assert scrub_text(message) == message


# ---------------------------------------------------------------- properties


def _visible(text: str) -> bool:
    return all(unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp") for c in text)


@settings(max_examples=400, deadline=None)
@given(st.text())
@example("redis://[::1")
@example("postgresql://" + "@" * 50)
@example("host='" + "\\" * 7)
def test_never_raises_and_never_prints_control_characters(text: str) -> None:
    shown = redact_url(text)
    assert isinstance(shown, str) and _visible(shown)
    assert isinstance(url_secrets(text), frozenset)
    assert isinstance(scrub_error(text, [text]), str)


def _hidden(secret: str, shown: str, scheme: str) -> bool:
    """The secret is nowhere in `shown`, except where it cannot be told from what is always there."""
    if secret in MASK or secret in UNPARSEABLE or secret in f"{scheme}://" or not secret.strip(" *"):
        return True
    return secret not in shown


passwords = st.text(min_size=1, max_size=30)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SCHEMES), passwords, passwords)
@example("postgresql", "CANARY-pw", "CANARY-q")
@example("redis", "a@b", "c&d")
def test_encoded_passwords_never_show(scheme: str, password: str, query_password: str) -> None:
    encoded, encoded_query = quote(password, safe=""), quote(query_password, safe="")
    url = f"{scheme}://user:{encoded}@host:6379/0?a=1&password={encoded_query}&b=2"
    shown = redact_url(url)
    assert shown != UNPARSEABLE
    for secret in (password, encoded, query_password, encoded_query):
        assert _hidden(secret, shown, scheme), (url, shown)
    if min(len(password), len(query_password)) >= 8:  # shorter ones may mask parts of the rest
        assert redact_url(shown) == shown


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SCHEMES), passwords)
@example("redis", "pa/ss")
@example("postgresql", "p?x=1")
@example("redis", "x@host:6379/0?password=")
def test_unencoded_passwords_never_show(scheme: str, password: str) -> None:
    """A password pasted without percent-encoding: masked, or the whole URL withheld."""
    url = f"{scheme}://user:{password}@host:6379/0"
    shown = redact_url(url)
    assert _hidden(password, shown, scheme), (url, shown)


@settings(max_examples=300, deadline=None)
@given(passwords)
def test_dsn_passwords_never_show(password: str) -> None:
    quoted = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    shown = redact_url(f"host=h port=5432 password={quoted} user=u")
    assert _hidden(password, shown, "") and _hidden(quoted, shown, "")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SCHEMES), passwords, st.text(max_size=40), st.text(max_size=40))
def test_driver_text_quoting_the_password_is_scrubbed(scheme: str, password: str, before: str, after: str) -> None:
    url = f"{scheme}://user@host/0?password={quote(password, safe='')}"
    shown = scrub_error(f"{before}{password}{after}", [url])
    assert _hidden(password, shown, ""), shown
