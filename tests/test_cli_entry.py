"""The process entry point: commands are imported when they run, and the process runs exit handlers,
flushes the output and exits with the command's code (1 when the output cannot be written)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

from expctl import __version__


def _entry(tmp_path: Path, *args: str, before: str = "") -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(lambda: print("exit handler ran", file=sys.stderr))
        {before}
        from expctl.cli import main
        main()
        print("unreachable")
    """)
    return subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)


def test_exit_code_output_and_exit_handlers(tmp_path: Path) -> None:
    run = _entry(tmp_path, "--version")
    assert run.returncode == 0
    assert __version__ in run.stdout and "unreachable" not in run.stdout
    assert "exit handler ran" in run.stderr

    (tmp_path / "experiments.d").mkdir()
    (tmp_path / "experiments.d" / "bad.yaml").write_text("apiVersion: expctl/v1\nkind: Nope\n")
    run = _entry(tmp_path, "validate")
    assert run.returncode == 1
    assert "bad.yaml:2:7" in run.stdout + run.stderr
    assert "exit handler ran" in run.stderr


def test_buffered_output_is_written_before_exiting(tmp_path: Path) -> None:
    # A large buffer the command never flushes itself.
    run = _entry(tmp_path, "schema", before="sys.stdout = open(sys.stdout.fileno(), 'w', buffering=1 << 20)")
    assert run.returncode == 0
    assert run.stdout.rstrip().endswith("}")


def test_a_closed_stdout_is_an_error(tmp_path: Path) -> None:
    run = _entry(tmp_path, "schema", before="sys.stdout = open(sys.stdout.fileno(), 'w', buffering=1 << 20); "
                                           "import os; os.close(1)")
    assert run.returncode == 1
    assert "exit handler ran" in run.stderr
    assert "Exception ignored" not in run.stderr  # reported once, by the exit code, not again at exit


def test_every_command_is_listed_with_its_module() -> None:
    import click

    from expctl.cli import COMMAND_MODULES, cli

    group = click.Group()
    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"expctl.cli.{module}").register(group)
    assert sorted(group.commands) == sorted(COMMAND_MODULES)
    assert all(cli.get_command(click.Context(cli), name) is not None for name in COMMAND_MODULES)


def test_the_version_is_defined_once() -> None:
    """The package metadata takes its version from `expctl.__version__` (pyproject: dynamic)."""
    import importlib.metadata
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert importlib.metadata.version("expctl") == __version__
