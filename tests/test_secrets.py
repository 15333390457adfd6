"""Tests for expctl.adapters.secrets: secret references and the default env/file resolver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expctl.adapters.secret_policy import SecretPolicy
from expctl.adapters.secrets import DefaultResolver, SecretRef, SecretResolver
from expctl.core.errors import SecretError


def resolver(tmp_path: Path, env: dict[str, str] | None = None) -> DefaultResolver:
    return DefaultResolver(env=env or {}, base_dir=tmp_path)


def write(path: Path, data: bytes) -> SecretRef:
    path.write_bytes(data)
    return SecretRef("file", str(path))


def test_describe_is_safe_to_print() -> None:
    assert SecretRef("env", "PARTNER_KEY").describe() == "env:PARTNER_KEY"
    assert SecretRef("file", "/run/secrets/x").describe() == "file:/run/secrets/x"


def test_ref_validation() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        SecretRef("env", "")
    with pytest.raises(ValueError, match="kind"):
        SecretRef("vault", "x")  # type: ignore[arg-type]


def test_default_resolver_satisfies_protocol(tmp_path: Path) -> None:
    r: SecretResolver = resolver(tmp_path)
    assert r.resolve(SecretRef("env", "NOPE")) is None


def test_env_set_unset_empty(tmp_path: Path) -> None:
    r = resolver(tmp_path, {"SET": "sk-value", "EMPTY": ""})
    assert r.resolve(SecretRef("env", "SET")) == "sk-value"
    assert r.resolve(SecretRef("env", "UNSET")) is None
    assert r.resolve(SecretRef("env", "EMPTY")) is None


def test_env_value_not_in_repr(tmp_path: Path) -> None:
    r = resolver(tmp_path, {"SET": "sk-very-secret"})
    r.resolve(SecretRef("env", "SET"))
    assert "sk-very-secret" not in repr(r)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"sk-abc", "sk-abc"),
        (b"sk-abc\n", "sk-abc"),
        (b"sk-abc\n\n", "sk-abc\n"),
        (b"sk-abc\r\n", "sk-abc"),
        (b"sk-abc\r\n\r\n", "sk-abc\r\n"),
        (b"sk-abc\r", "sk-abc\r"),
        (b"  sk-abc  \n", "  sk-abc  "),
        ("ключ\n".encode(), "ключ"),
    ],
)
def test_file_strips_exactly_one_newline(tmp_path: Path, data: bytes, expected: str) -> None:
    ref = write(tmp_path / "key", data)
    assert resolver(tmp_path).resolve(ref) == expected


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n"])
def test_empty_file_is_not_available(tmp_path: Path, data: bytes) -> None:
    ref = write(tmp_path / "key", data)
    assert resolver(tmp_path).resolve(ref) is None


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert resolver(tmp_path).resolve(SecretRef("file", str(tmp_path / "absent"))) is None
    assert resolver(tmp_path).resolve(SecretRef("file", "relative/absent")) is None


def test_non_utf8_is_secret_error_naming_path_only(tmp_path: Path) -> None:
    path = tmp_path / "latin1"
    ref = write(path, b"sk-caf\xe9-\xff\xfe")
    with pytest.raises(SecretError) as info:
        resolver(tmp_path).resolve(ref)
    message = str(info.value)
    assert str(path) in message
    assert "UTF-8" in message
    for fragment in ["sk-caf", "\\xe9", "\\xff", "0xe9", "0xff", "é"]:
        assert fragment not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_relative_path_resolves_against_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "rc2").write_bytes(b"sk-rel\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter, only base_dir
    r = resolver(tmp_path)
    ref = SecretRef("file", "secrets/rc2")
    assert r.path_of(ref) == tmp_path / "secrets" / "rc2"
    assert r.resolve(ref) == "sk-rel"


def test_absolute_path_ignores_base_dir(tmp_path: Path) -> None:
    ref = write(tmp_path / "abs", b"sk-abs")
    base_dir = tmp_path / "unrelated"
    policy = SecretPolicy.build(base_dir, {}, extra_roots=[tmp_path])  # outside the repository: a configured root
    assert DefaultResolver(env={}, base_dir=base_dir, policy=policy).resolve(ref) == "sk-abs"


def test_symlink_followed(tmp_path: Path) -> None:
    target = tmp_path / "..data" / "key"
    target.parent.mkdir()
    target.write_bytes(b"sk-linked\n")
    link = tmp_path / "key"
    link.symlink_to(target)
    assert resolver(tmp_path).resolve(SecretRef("file", "key")) == "sk-linked"


def test_dangling_symlink_is_missing(tmp_path: Path) -> None:
    (tmp_path / "key").symlink_to(tmp_path / "gone")
    assert resolver(tmp_path).resolve(SecretRef("file", "key")) is None


def test_directory_is_secret_error(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(SecretError, match="directory") as info:
        resolver(tmp_path).resolve(SecretRef("file", "dir"))
    assert "file:dir" in str(info.value)
    assert str(tmp_path / "dir") in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file_is_secret_error(tmp_path: Path) -> None:
    path = tmp_path / "locked"
    ref = write(path, b"sk-locked")
    path.chmod(0)
    try:
        with pytest.raises(SecretError, match="cannot be read") as info:
            resolver(tmp_path).resolve(ref)
        assert str(path) in str(info.value)
        assert "sk-locked" not in str(info.value)
    finally:
        path.chmod(0o600)


def test_results_cached_per_ref(tmp_path: Path) -> None:
    path = tmp_path / "rotating"
    ref = write(path, b"sk-first")
    env = {"K": "sk-env-1"}
    r = resolver(tmp_path, env)
    assert r.resolve(ref) == "sk-first"
    assert r.resolve(SecretRef("env", "K")) == "sk-env-1"
    path.write_bytes(b"sk-second")
    env["K"] = "sk-env-2"
    assert r.resolve(ref) == "sk-first"
    assert r.resolve(SecretRef("env", "K")) == "sk-env-1"
    # A missing answer is cached too: one run sees one state.
    absent = SecretRef("file", "later")
    assert r.resolve(absent) is None
    (tmp_path / "later").write_bytes(b"sk-later")
    assert r.resolve(absent) is None
    assert resolver(tmp_path).resolve(absent) == "sk-later"


def test_os_error_is_secret_error_without_contents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs even as root, where chmod 0 does not stop reads.
    ref = write(tmp_path / "key", b"sk-hidden")

    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(SecretError, match="Permission denied") as info:
        resolver(tmp_path).resolve(ref)
    assert str(tmp_path / "key") in str(info.value)
    assert info.value.__cause__ is None
