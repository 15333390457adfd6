"""The `expctl` command line: thin click commands, and the one place errors become exit codes.

Exit codes (docs/design.md#exit-codes): 0 ok / no changes · 1 error (invalid manifests, refused changes,
connection failure, bad usage) · 2 changes present (`plan --detailed-exitcode`, `cache check`
drift), a health flag (`status --exit-code`) · 3 PostgreSQL committed but the Redis refresh failed
(re-run heals) · 4 saved plan is stale · 5 another run holds the lock.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import traceback
from typing import Any, NoReturn, TextIO

import click

from expctl import __version__
from expctl.core.errors import ExitCode, ExpctlError, ManifestError
from expctl.core.render.problems import problems_text

EXIT_CODES_HELP = """\b
Exit codes:
  0  ok / no changes
  1  error: invalid manifests, refused changes, connection failure
  2  changes present (plan --detailed-exitcode), cache drift (cache check),
     a health flag raised (status --exit-code)
  3  PostgreSQL committed but the Redis refresh failed (re-run heals)
  4  the saved plan is stale
  5  another run holds the lock (timed out waiting)
"""


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or help lists them all): `plan`
    should not wait for `import`'s or `simulate`'s dependencies."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"expctl.cli.{COMMAND_MODULES[cmd_name]}")
            module.register(self)
        return self.commands.get(cmd_name)


# Every command and the module that defines it (tests/test_cli_entry.py checks the list is complete).
COMMAND_MODULES = {
    "validate": "cmd_validate", "schema": "cmd_validate", "plan": "cmd_plan", "apply": "cmd_plan",
    "reconcile": "cmd_plan", "db": "cmd_db", "cache": "cmd_cache", "history": "cmd_history",
    "import": "cmd_import", "simulate": "cmd_simulate", "status": "cmd_status",
}


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="expctl")
@click.option("--debug", is_flag=True, envvar="EXPCTL_DEBUG", help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep an AI gateway's model experiments in git and reconcile them into PostgreSQL and Redis.

    \b
    Examples:
      expctl validate                       # check experiments.d/ offline
      expctl plan                           # what would change
      expctl reconcile --auto-approve       # apply it (what CI runs on merge)
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    """Registers every command now (for callers that inspect `cli.commands`)."""
    for name in COMMAND_MODULES:
        cli.get_command(click.Context(cli), name)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: runs the command and turns every outcome into an exit code. Output that cannot
    be written (a closed pipe, as in `expctl plan | head`, or a closed stream) is an error."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    # A run builds millions of long-lived objects (10,000 manifests and their plan) and frees few:
    # with the default pass every 700 allocations, reading 10,000 manifests took 3.2 s instead of
    # 2.4 s with no collector; rarer passes keep it on and take 2.5 s (bench/README.md).
    gc.set_threshold(50_000, 20, 100)
    code = run(argv, debug)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or int(ExitCode.ERROR)
            _discard_rest(stream)
    sys.exit(code)


def _discard_rest(stream: TextIO) -> None:
    """Sends what is left in `stream`'s buffer nowhere: Python flushes it again at exit and would
    print a second error (the recipe of the `signal` module's documentation)."""
    with contextlib.suppress(OSError, ValueError):  # not a real file, or already closed
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def run(argv: list[str] | None, debug: bool = False) -> int:
    try:
        result: Any = cli.main(args=argv, prog_name="expctl", standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return int(ExitCode.ERROR)
    except click.ClickException as err:
        err.show()
        return int(ExitCode.ERROR)
    except ExpctlError as err:
        if isinstance(err, ManifestError):
            paths = {p.location.path for p in err.problems}
            click.echo(problems_text(err.problems, len(paths), 0), nl=False, err=True)
        click.echo(f"error: {err}", err=True)
        if debug:
            traceback.print_exc()
        return int(err.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as err:
        # Unexpected: say what kind of failure without echoing arguments, which may hold data.
        click.echo(f"internal error: {type(err).__name__}; re-run with --debug for the traceback", err=True)
        if debug:
            traceback.print_exc()
        return int(ExitCode.ERROR)
    return int(result) if isinstance(result, int) else 0
