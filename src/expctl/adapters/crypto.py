"""Gateway-compatible AES-256-GCM encryption of upstream API keys (docs/design.md#api-key-encryption).

The gateway decrypts what expctl writes, so the format is fixed: AES-256-GCM with no associated
data, the raw 32-byte `BYOK_ENCRYPTION_KEY` (no KDF), a fresh random 12-byte nonce per encryption,
and a JSON object `{"iv", "data", "authTag"}` of standard padded base64 with the tag kept apart
from the ciphertext (the shape Node's `createCipheriv('aes-256-gcm')` + `getAuthTag()` yields).

Nothing here ever puts a key, a plaintext or a ciphertext into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from expctl.core.errors import ConfigError, ExpctlError

__all__ = [
    "BYOK_ENV",
    "DecryptError",
    "decrypt_api_key",
    "encrypt_api_key",
    "fingerprint",
    "generate_byok_key",
    "load_byok_key",
    "parse_byok_key",
    "secrets_equal",
]

BYOK_ENV = "BYOK_ENCRYPTION_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_FINGERPRINT_DOMAIN = b"expctl-fingerprint-v1\0"
_PAYLOAD_FIELDS = ("iv", "data", "authTag")


class DecryptError(ExpctlError):
    """A stored API key could not be decrypted; the message never carries any value."""


class WrongKeyError(DecryptError):
    """A well-formed stored key failed authentication: another BYOK key wrote it, or the row is corrupt."""


def parse_byok_key(value: str) -> bytes:
    """Decode `BYOK_ENCRYPTION_KEY`: strict standard base64 of exactly 32 bytes.

    Surrounding whitespace is ignored (a trailing newline from `cat` or a secrets file is common);
    anything else outside the standard alphabet, missing or surplus padding, or a non-canonical
    encoding is an error.
    """
    text = value.strip()
    if not text:
        raise ConfigError(f"{BYOK_ENV} is empty; set it to standard base64 of 32 random bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the underlying error could in principle echo input; keep it out of tracebacks.
        raise ConfigError(
            f"{BYOK_ENV} is not valid standard base64 (alphabet A-Z a-z 0-9 + /, '=' padding)"
        ) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"{BYOK_ENV} decodes to {len(raw)} bytes, expected {KEY_BYTES}")
    # b64decode tolerates surplus '=' and non-zero trailing bits; a key is written exactly one way.
    if _b64(raw) != text:
        raise ConfigError(f"{BYOK_ENV} is not canonical base64 (surplus padding or non-zero trailing bits)")
    return raw


def load_byok_key(env: Mapping[str, str]) -> bytes | None:
    """The BYOK key from `env`, or None when the variable is unset or empty."""
    value = env.get(BYOK_ENV)
    if value is None or not value.strip():
        return None
    return parse_byok_key(value)


def generate_byok_key() -> str:
    """A fresh key in the `BYOK_ENCRYPTION_KEY` format (standard base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _check_key(key: bytes) -> None:
    # AESGCM would silently accept 16/24-byte keys (AES-128/192); the gateway only speaks AES-256.
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{BYOK_ENV} must be {KEY_BYTES} bytes, got {len(key)}")


@lru_cache(maxsize=8)
def _aead(key: bytes) -> AESGCM:
    """One cipher object per key: a plan decrypts every current version with the same key."""
    return AESGCM(key)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _encrypt_with_nonce(key: bytes, nonce: bytes, plaintext: str) -> dict[str, str]:
    """Encrypt with a caller-chosen nonce. For tests only: production must use a fresh nonce."""
    _check_key(key)
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
    sealed = _aead(key).encrypt(nonce, plaintext.encode("utf-8"), None)
    # AESGCM returns ciphertext || tag; the gateway stores them as separate fields.
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return {"iv": _b64(nonce), "data": _b64(ciphertext), "authTag": _b64(tag)}


def encrypt_api_key(key: bytes, plaintext: str) -> dict[str, str]:
    """Encrypt `plaintext` into the gateway's `encrypted_api_key` JSON shape."""
    return _encrypt_with_nonce(key, os.urandom(NONCE_BYTES), plaintext)


def _decode_field(payload: Mapping[str, object], field: str) -> bytes:
    value = payload.get(field)
    if not isinstance(value, str):
        raise DecryptError(f"the stored API key is malformed: field {field!r} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError(f"the stored API key is malformed: field {field!r} is not valid base64") from None


def decrypt_api_key(key: bytes, payload: Mapping[str, object]) -> str:
    """Decrypt a stored `encrypted_api_key` object back to the plaintext API key."""
    _check_key(key)
    nonce, ciphertext, tag = (_decode_field(payload, field) for field in _PAYLOAD_FIELDS)
    if len(nonce) != NONCE_BYTES or len(tag) != TAG_BYTES:
        raise DecryptError(
            f"the stored API key is malformed: expected a {NONCE_BYTES}-byte iv and a "
            f"{TAG_BYTES}-byte authTag, got {len(nonce)} and {len(tag)} bytes"
        )
    try:
        plain = _aead(key).decrypt(nonce, ciphertext + tag, None)
        return plain.decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise WrongKeyError(
            f"the stored API key could not be decrypted with {BYOK_ENV} (wrong key, or a corrupt row)"
        ) from None


def secrets_equal(a: str, b: str) -> bool:
    """Compare two secrets in constant time (for a given length) so timing reveals nothing."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def fingerprint(secret: str) -> str:
    """A short, non-reversible, domain-separated display fingerprint of a secret."""
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN + secret.encode("utf-8")).hexdigest()
    return "sha256:" + digest[:12]
