"""What one command runs against: the manifest directory, PostgreSQL, the Redis targets, the
environment that holds the secrets, the project configuration (`expctl.toml`) and the gateway
profile (docs/design.md#gateway-profiles).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from expctl.adapters import crypto
from expctl.adapters.cache import DEFAULT_PREFIX, Cache
from expctl.adapters.config import ProjectConfig
from expctl.adapters.manifest.load import load_desired
from expctl.adapters.secret_policy import SecretPolicy
from expctl.adapters.secrets import DefaultResolver, SecretResolver
from expctl.core.lockinfo import ApplyLock, RunTag
from expctl.core.planner import Scope
from expctl.core.profiles import GatewayProfile, gateway_profile
from expctl.core.state import DesiredExperiment

DEFAULT_REDIS_PREFIX = DEFAULT_PREFIX


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
    # expctl.toml as loaded by the command line (`ProjectConfig()` when there is none).
    config: ProjectConfig = field(default_factory=ProjectConfig)
    # Which gateway version the manifests, the plan and Redis follow (flag > env > expctl.toml > default).
    gateway_profile: GatewayProfile = field(default_factory=lambda: gateway_profile(None))
    # Whose bindings, which manifests (--only), which environment, what drift does (docs/design.md#scopes).
    plan_scope: Scope = field(default_factory=Scope)
    # The command being run ("reconcile", "cache refresh"): a run holding the apply lock names it.
    command: str = "expctl"
    # Told, line by line, who holds the apply lock while this run waits for it (the CLI: stderr).
    on_lock_wait: Callable[[str], None] | None = field(default=None, repr=False)

    def secret_policy(self) -> SecretPolicy:
        """Where secret references may point: for the manifest loader and the resolver."""
        return self.config.secret_policy(self.base_dir, self.env)

    def load_manifests(self) -> tuple[DesiredExperiment, ...]:
        """The validated manifests under this run's policy and profile (ManifestError lists every problem)."""
        return load_desired(self.manifest_dir, policy=self.secret_policy(), profile=self.gateway_profile)

    def resolver(self) -> SecretResolver:
        return DefaultResolver(self.env, self.base_dir, self.secret_policy())

    def byok_key(self) -> bytes | None:
        return crypto.load_byok_key(self.env)

    def apply_lock(self) -> ApplyLock:
        """How this run waits for the apply lock and names itself while holding it: the actor and
        git revision of its audit row (`expctl_run`)."""
        from expctl.adapters.store.audit import actor, git_revision  # noqa: PLC0415 - keeps SQLAlchemy out of `validate`

        tag = RunTag(self.command, actor(self.env), git_revision(self.env))
        return ApplyLock(self.lock_timeout_s, tag, self.on_lock_wait)

    def cache(self) -> Cache:
        return Cache(self.redis_urls, self.redis_prefix, per_id_keys=self.gateway_profile.per_id_keys)
