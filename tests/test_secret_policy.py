"""The secret-source policy (`expctl.adapters.secret_policy`) and its second check in the resolver, where
symlinks are followed: what a reference may name, and where its real path may lead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expctl.adapters.secret_policy import SecretPolicy, is_reserved_env
from expctl.adapters.secrets import DefaultResolver, SecretRef
from expctl.core.errors import SecretError


def resolver(repo: Path, env: dict[str, str] | None = None, roots: tuple[Path, ...] = ()) -> DefaultResolver:
    env = env or {}
    return DefaultResolver(env, repo, SecretPolicy.build(repo, env, roots))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo" / "secrets").mkdir(parents=True)
    (tmp_path / "repo" / ".expctl").mkdir()
    (tmp_path / "repo" / ".expctl" / "byok.key").write_text("BYOK-CANARY-4b1d\n")
    return tmp_path / "repo"


# --- reserved variables ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["GH_TOKEN", "gh_token", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                  "EXPCTL_DIR", "EXPCTL_SOMETHING_NEW", "TEST_REDIS_URL", "RUNNER_TEMP",
                                  "ACTIONS_ID_TOKEN_REQUEST_URL", "CI_JOB_JWT", "CI_JOB_JWT_V1"])
def test_reserved_names(name: str) -> None:
    assert is_reserved_env(name)


@pytest.mark.parametrize("name", ["PARTNER_KEY", "EXPCTL_KEY_X_CONTROL", "expctl_key_x", "TEST_KEY", "MY_GH_TOKEN",
                                  "AWS_REGION", "CI", "GITHUB_SHA"])
def test_ordinary_names(name: str) -> None:
    assert not is_reserved_env(name)


def test_resolver_refuses_reserved_variables_even_when_set(repo: Path) -> None:
    """Defence in depth: a caller that skipped the manifest checks still cannot read them."""
    r = resolver(repo, {"GH_TOKEN": "ghs-CANARY", "PARTNER": "k"})
    assert r.resolve(SecretRef("env", "PARTNER")) == "k"
    with pytest.raises(SecretError, match="env:GH_TOKEN") as info:
        r.resolve(SecretRef("env", "GH_TOKEN"))
    assert "CANARY" not in str(info.value)


# --- configured roots ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("root", "problem"), [
    ("/etc/expctl/secrets", None), ("secrets", None), ("/run/secrets/partner", None),
    ("/", "contains /proc"), ("/proc/self", "inside /proc"), ("/dev", "inside /dev"), ("/sys/x", "inside /sys"),
    (".", "contains .expctl/"), (".expctl", "inside .expctl/"), (".EXPCTL/keys", "inside .expctl/"),
    ("/home/u", "contains ~/.pgpass"), ("/home/u/.kube", "inside ~/.kube"),
    ("/var/run/secrets/kubernetes.io", "inside a platform identity token folder"),
    ("/etc/pg", "contains PGPASSFILE"),
])
def test_root_problems(repo: Path, root: str, problem: str | None) -> None:
    policy = SecretPolicy.build(repo, {"HOME": "/home/u", "PGPASSFILE": "/etc/pg/pass"})
    found = policy.root_problem(root)
    assert found == problem if problem is None else (found is not None and problem in found), found


def test_repository_above_a_root_is_a_root_problem(repo: Path) -> None:
    assert "contains .expctl/" in (SecretPolicy.build(repo, {}).root_problem(str(repo.parent)) or "")


def test_policy_is_plain_comparable_data(repo: Path) -> None:
    env = {"HOME": "/home/u"}
    assert SecretPolicy.build(repo, env, [Path("/x")]) == SecretPolicy.build(repo, env, [Path("/x")])
    assert hash(SecretPolicy.build(repo, env))  # frozen: safe to share with forked loaders


# --- the real path, at read time -----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/proc/self/environ", "/proc/self/cmdline", "/dev/stdin",
                                    "/sys/kernel/uevent_seqnum"])
def test_symlink_into_a_kernel_view_is_refused_naming_the_reference(repo: Path, target: str) -> None:
    (repo / "secrets" / "innocent").symlink_to(target)
    with pytest.raises(SecretError) as info:
        resolver(repo, dict(os.environ)).resolve(SecretRef("file", "secrets/innocent"))
    message = str(info.value)
    assert "file:secrets/innocent" in message and "never reads secrets" in message
    assert os.environ["PATH"] not in message


def test_symlink_to_the_byok_key_is_refused(repo: Path) -> None:
    (repo / "secrets" / "k").symlink_to(repo / ".expctl" / "byok.key")
    (repo / "secrets" / "k2").symlink_to("../.expctl/byok.key")
    for name in ("secrets/k", "secrets/k2"):
        with pytest.raises(SecretError, match=r"\.expctl/") as info:
            resolver(repo).resolve(SecretRef("file", name))
        assert "BYOK-CANARY" not in str(info.value)


def test_symlink_leaving_the_repository_and_roots_is_refused(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("sk-outside\n")
    (repo / "secrets" / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SecretError, match="outside the repository and the allowed secret folders"):
        resolver(repo).resolve(SecretRef("file", "secrets/out"))
    assert resolver(repo, roots=(tmp_path,)).resolve(SecretRef("file", "secrets/out")) == "sk-outside"


def test_credential_files_of_the_environment_are_refused(repo: Path) -> None:
    (repo / "secrets" / "pgpass").write_text("host:5432:db:user:pw\n")
    env = {"PGPASSFILE": str(repo / "secrets" / "pgpass")}
    with pytest.raises(SecretError, match="PGPASSFILE"):
        resolver(repo, env).resolve(SecretRef("file", "secrets/pgpass"))


def test_kubernetes_style_mount_inside_a_root_works(tmp_path: Path, repo: Path) -> None:
    """Kubernetes mounts `key -> ..data/key`, `..data -> ..2024_01_01_00_00_00.1/`, all inside the root."""
    root = tmp_path / "mounted"
    (root / "..2024_01_01_00_00_00.1").mkdir(parents=True)
    (root / "..2024_01_01_00_00_00.1" / "key").write_text("sk-k8s\n")
    (root / "..data").symlink_to("..2024_01_01_00_00_00.1")
    (root / "key").symlink_to("..data/key")
    assert resolver(repo, roots=(root,)).resolve(SecretRef("file", str(root / "key"))) == "sk-k8s"


def test_roots_compare_by_their_real_paths(tmp_path: Path, repo: Path) -> None:
    """As `/var/run -> /run`: the root is configured through a symlink, the file's real path is below
    the root's real path."""
    (tmp_path / "run" / "secrets").mkdir(parents=True)
    (tmp_path / "run" / "secrets" / "key").write_text("sk-run\n")
    (tmp_path / "var-run").symlink_to(tmp_path / "run")
    ref = SecretRef("file", str(tmp_path / "var-run" / "secrets" / "key"))
    assert resolver(repo, roots=(tmp_path / "var-run" / "secrets",)).resolve(ref) == "sk-run"


def test_a_missing_file_below_a_root_is_only_unavailable(repo: Path) -> None:
    assert resolver(repo).resolve(SecretRef("file", "/run/secrets/expctl-test-absent-7c1e")) is None
    assert resolver(repo).resolve(SecretRef("file", "secrets/absent")) is None
