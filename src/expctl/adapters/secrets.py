"""Secret references and the resolvers that turn them into values (docs/design.md#secret-references).

A manifest's `api_key` is only ever a reference, `{from_env: NAME}` or `{from_file: PATH}`; its
`SecretRef.describe()` is safe to print, the resolved value never is. Every resolver implements
`SecretResolver.resolve`, returning None when the secret is not available in this environment
(the caller decides whether that is "checked at apply" or an error).

`DefaultResolver` policy:

- env: the variable's value; unset *or empty* counts as not available, because CI systems render
  a missing secret as an empty string.
- file: the file's bytes decoded as UTF-8 with exactly one trailing newline removed (`\\n`, or
  `\\r\\n` as a unit) — the one an editor or `echo` adds; anything more is part of the secret.
  Absolute paths are used as they are (e.g. `/run/secrets/x`); relative paths resolve against the
  `base_dir` the caller passes (the repository root / working directory), never against the
  manifest's own directory, so one reference means one file wherever the manifest lives.
  Symlinks are followed deliberately: orchestrators (Kubernetes, Docker, Vault agents) mount
  secrets as symlinks that rotate underneath. The real path they lead to must stay inside the
  repository or an allowed root and out of every forbidden place (`expctl.adapters.secret_policy`): the
  manifest check is lexical, so this is where a symlink to `/proc/self/environ` is stopped.
  A missing file is not available (None); an empty file (after the newline strip) is treated the
  same way, as an empty API key is never real. A directory, an unreadable file or non-UTF-8
  content is a `SecretError` naming the path.
- Reserved variables (`expctl.adapters.secret_policy.is_reserved_env`) are refused here too, in case a
  caller skipped the manifest checks.
- Results are cached per reference, so one run sees one value even if a file rotates mid-run.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from expctl.adapters.secret_policy import Place, SecretPolicy, is_reserved_env, read_problem
from expctl.core.errors import SecretError
from expctl.core.state import SecretRef

MAX_SECRET_BYTES = 64 * 1024  # api keys are short; a bigger file is a mistake, not a key

__all__ = ["DefaultResolver", "SecretRef", "SecretResolver"]  # SecretRef is core (state); re-exported

class SecretResolver(Protocol):
    """Turns a reference into its value; None means not available in this environment."""

    def resolve(self, ref: SecretRef) -> str | None: ...


def _strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


@dataclass
class DefaultResolver:
    """Resolves `env` references from `env` and `file` references relative to `base_dir`, within
    `policy` (default: `SecretPolicy.build(base_dir, env)`, the built-in roots only)."""

    env: Mapping[str, str]
    base_dir: Path
    policy: SecretPolicy | None = None
    _cache: dict[SecretRef, str | None] = field(default_factory=dict, init=False, repr=False)
    _places: tuple[tuple[str, ...], tuple[Place, ...]] | None = field(default=None, init=False, repr=False)

    def __repr__(self) -> str:
        # The default repr would print the whole environment mapping, secrets included.
        return f"DefaultResolver(base_dir={str(self.base_dir)!r})"

    def resolve(self, ref: SecretRef) -> str | None:
        try:
            return self._cache[ref]  # thousands of variants share a few secrets
        except KeyError:
            value = self._cache[ref] = self._resolve_env(ref) if ref.kind == "env" else self._read_file(ref)
            return value

    def path_of(self, ref: SecretRef) -> Path:
        """The file a `file` reference points at (before following symlinks)."""
        path = Path(ref.name)
        return path if path.is_absolute() else self.base_dir / path

    def _resolve_env(self, ref: SecretRef) -> str | None:
        if is_reserved_env(ref.name):
            raise SecretError(f"secret {ref.describe()} names a variable reserved for expctl's or the platform's "
                              "own credentials; it is never read as an api key")
        return self.env.get(ref.name) or None

    def _real_path(self, path: Path, where: str) -> Path:
        """`path` with every symlink resolved, once it is known to lead where secrets may be read."""
        if self._places is None:
            self._places = (self.policy or SecretPolicy.build(self.base_dir, self.env)).real_places()
        real = os.path.realpath(path)  # a loop is left in place; reading it then fails with ELOOP
        why = read_problem(real, *self._places)
        if why is not None:
            raise SecretError(f"secret {where} {why}; nothing was read (see README, Secrets)")
        return Path(real)

    def _read_file(self, ref: SecretRef) -> str | None:
        path = self.path_of(ref)
        where = ref.describe() if str(path) == ref.name else f"{ref.describe()} ({path})"
        # Read through the resolved path, so what is read is what was checked.
        path = self._real_path(path, where)
        try:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(info.st_mode):  # a FIFO would block, a device would never end
                raise SecretError(f"secret {where} is not a regular file")
            if info.st_size > MAX_SECRET_BYTES:
                raise SecretError(f"secret {where} is larger than {MAX_SECRET_BYTES} bytes")
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise SecretError(f"secret {where} is a directory, not a file") from None
        except OSError as exc:
            # strerror only ("Permission denied"): no contents can be in it.
            raise SecretError(
                f"secret {where} cannot be read: {exc.strerror or type(exc).__name__}"
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # The exception's own message quotes the offending bytes: never let it surface.
            raise SecretError(f"secret {where} is not valid UTF-8") from None
        return _strip_one_newline(text) or None
