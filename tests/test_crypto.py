"""Tests for expctl.adapters.crypto: gateway-compatible AES-256-GCM, checked against an independent GCM."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from expctl.adapters import crypto
from expctl.adapters.crypto import (
    BYOK_ENV,
    DecryptError,
    decrypt_api_key,
    encrypt_api_key,
    fingerprint,
    generate_byok_key,
    load_byok_key,
    parse_byok_key,
    secrets_equal,
)
from expctl.core.errors import ConfigError

FIXED_KEY = bytes(range(32))
FIXED_IV = bytes(range(0xA0, 0xAC))
CANARY = "sk-test-canary"
B64_PADDED = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def node_style_encrypt(key: bytes, iv: bytes, plaintext: str) -> dict[str, str]:
    """What Node's createCipheriv('aes-256-gcm') + getAuthTag() stores: separate data and tag."""
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    data = enc.update(plaintext.encode()) + enc.finalize()
    return {
        "iv": base64.b64encode(iv).decode(),
        "data": base64.b64encode(data).decode(),
        "authTag": base64.b64encode(enc.tag).decode(),
    }


def node_style_decrypt(key: bytes, payload: dict[str, str]) -> str:
    iv, data, tag = (base64.b64decode(payload[k]) for k in ("iv", "data", "authTag"))
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag)).decryptor()
    return (dec.update(data) + dec.finalize()).decode()


def test_round_trip() -> None:
    key = parse_byok_key(generate_byok_key())
    for plaintext in ["", CANARY, "ключ-🔑", "x" * 1000]:
        assert decrypt_api_key(key, encrypt_api_key(key, plaintext)) == plaintext


def test_payload_shape_and_padded_base64() -> None:
    payload = encrypt_api_key(FIXED_KEY, CANARY)
    assert set(payload) == {"iv", "data", "authTag"}
    for value in payload.values():
        assert B64_PADDED.match(value)
    assert len(base64.b64decode(payload["iv"], validate=True)) == 12
    assert len(base64.b64decode(payload["authTag"], validate=True)) == 16
    # Ciphertext without the tag: GCM is a stream mode, so it is as long as the plaintext.
    assert len(base64.b64decode(payload["data"], validate=True)) == len(CANARY.encode())
    # 12 and 16 bytes need padding; make sure it is there rather than stripped.
    assert payload["authTag"].endswith("==")


def test_nonce_fresh_per_call() -> None:
    ivs = {encrypt_api_key(FIXED_KEY, CANARY)["iv"] for _ in range(50)}
    assert len(ivs) == 50


def test_decrypts_independently_built_payload() -> None:
    key = parse_byok_key(generate_byok_key())
    payload = node_style_encrypt(key, bytes(12), "sk-independent-123")
    assert decrypt_api_key(key, payload) == "sk-independent-123"


def test_our_output_decrypts_with_independent_cipher() -> None:
    key = parse_byok_key(generate_byok_key())
    assert node_style_decrypt(key, encrypt_api_key(key, CANARY)) == CANARY


def test_fixed_known_vector() -> None:
    expected = node_style_encrypt(FIXED_KEY, FIXED_IV, CANARY)
    assert crypto._encrypt_with_nonce(FIXED_KEY, FIXED_IV, CANARY) == expected
    assert expected["iv"] == base64.b64encode(FIXED_IV).decode()
    assert decrypt_api_key(FIXED_KEY, expected) == CANARY


def test_parse_byok_key_accepts_32_bytes() -> None:
    encoded = base64.b64encode(FIXED_KEY).decode()
    assert parse_byok_key(encoded) == FIXED_KEY
    assert parse_byok_key(encoded + "\n") == FIXED_KEY
    assert len(parse_byok_key(generate_byok_key())) == 32


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_wrong_key_length_names_variable_not_value(length: int) -> None:
    value = base64.b64encode(bytes([0x41 + i % 26 for i in range(length)])).decode()
    with pytest.raises(ConfigError) as info:
        parse_byok_key(value)
    message = str(info.value)
    assert BYOK_ENV in message
    if value:
        assert value not in message
        assert f"decodes to {length} bytes, expected 32" in message


@pytest.mark.parametrize(
    "value",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(),  # url-safe alphabet: '-' and '_'
        base64.b64encode(FIXED_KEY).decode().rstrip("="),  # padding stripped
        "AAAA====",
        base64.b64encode(FIXED_KEY).decode() + "==",  # surplus padding after a 32-byte key
        base64.b64encode(FIXED_KEY).decode()[:42] + "H=",  # non-zero trailing bits
    ],
)
def test_invalid_base64_rejected_without_value(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_byok_key(value)
    assert BYOK_ENV in str(info.value)
    assert value not in str(info.value)
    assert info.value.__cause__ is None


def test_load_byok_key() -> None:
    encoded = base64.b64encode(FIXED_KEY).decode()
    assert load_byok_key({}) is None
    assert load_byok_key({BYOK_ENV: ""}) is None
    assert load_byok_key({BYOK_ENV: encoded}) == FIXED_KEY
    with pytest.raises(ConfigError, match=BYOK_ENV):
        load_byok_key({BYOK_ENV: base64.b64encode(bytes(16)).decode()})


def test_wrong_key_on_decrypt_raises_without_values() -> None:
    payload = encrypt_api_key(FIXED_KEY, CANARY)
    other = bytes(reversed(FIXED_KEY))
    with pytest.raises(DecryptError) as info:
        decrypt_api_key(other, payload)
    message = str(info.value)
    assert BYOK_ENV in message
    assert "wrong key" in message
    for secret in [CANARY, *payload.values(), base64.b64encode(other).decode()]:
        assert secret not in message
    assert info.value.__cause__ is None


def test_tampered_payload_raises() -> None:
    payload = encrypt_api_key(FIXED_KEY, CANARY)
    tag = bytearray(base64.b64decode(payload["authTag"]))
    tag[0] ^= 1
    with pytest.raises(DecryptError):
        decrypt_api_key(FIXED_KEY, {**payload, "authTag": base64.b64encode(bytes(tag)).decode()})


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"iv": "AAAA", "data": "AAAA"},
        {"iv": 1, "data": "AAAA", "authTag": "AAAA"},
        {"iv": "%%%", "data": "AAAA", "authTag": "AAAA"},
        {"iv": base64.b64encode(bytes(12)).decode(), "data": "", "authTag": "AAAA"},
    ],
)
def test_malformed_payload_raises_decrypt_error(payload: dict[str, object]) -> None:
    with pytest.raises(DecryptError, match="malformed"):
        decrypt_api_key(FIXED_KEY, payload)


def test_encrypt_rejects_wrong_length_key() -> None:
    with pytest.raises(ConfigError, match=BYOK_ENV):
        encrypt_api_key(bytes(16), CANARY)


def test_secrets_equal() -> None:
    assert secrets_equal("sk-a", "sk-a")
    assert not secrets_equal("sk-a", "sk-b")
    assert not secrets_equal("sk-a", "sk-aa")
    assert secrets_equal("ключ", "ключ")


def test_fingerprint() -> None:
    fp = fingerprint(CANARY)
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", fp)
    assert fp == fingerprint(CANARY)
    assert fp != fingerprint(CANARY + "x")
    assert CANARY not in fp
    # Domain-separated: not simply a prefix of the bare SHA-256 of the secret.
    assert fp[7:] != hashlib.sha256(CANARY.encode()).hexdigest()[:12]
    assert fp[7:] == hashlib.sha256(b"expctl-fingerprint-v1\0" + CANARY.encode()).hexdigest()[:12]

