"""What one command runs against: the manifest directory, PostgreSQL, the Redis targets, the
environment that holds the secrets.

Kept apart from the service layer and free of database and Redis imports, so that the command line
can start reading manifests before it pays for importing those (see `expctl.cli.cmd_plan`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from expctl import crypto
from expctl.secrets import DefaultResolver, SecretResolver

if TYPE_CHECKING:
    from expctl.cache import Cache

DEFAULT_REDIS_PREFIX = "ai-gateway.model-experiments:"


@dataclass
class Settings:
    manifest_dir: Path
    database_url: str
    redis_urls: Sequence[str] = ()
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    # Not in the repr: the environment holds the secrets and the BYOK key (as DefaultResolver's repr).
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    base_dir: Path = field(default_factory=Path.cwd)
    lock_timeout_s: float = 60.0

    def resolver(self) -> SecretResolver:
        return DefaultResolver(self.env, self.base_dir)

    def byok_key(self) -> bytes | None:
        return crypto.load_byok_key(self.env)

    def cache(self) -> Cache:
        from expctl.cache import Cache  # noqa: PLC0415 - redis is imported only by commands that use it

        return Cache(self.redis_urls, self.redis_prefix)
