"""The ``partcli`` Typer application, its global options and the console-script entry point.

The commands live in the sibling modules, one per group (``prepare``, ``training``, ``measure``, ``summaries``),
and register themselves on ``app`` when ``partcli.cli`` imports them.
"""
from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from partcli.cli.help import HelpGroup
from partcli.errors import PartcliError
from partcli.progress import error, interrupt_note, on_interrupt, set_quiet
from partcli.version import __version__

# click's UsageError, the base of Typer's parsing errors; Typer ≥ 0.22 vendors click and exports only BadParameter
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

app = typer.Typer(help="Train and honestly evaluate adversarially robust part-based image classifiers.",
                  cls=HelpGroup, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
prepare_app = typer.Typer(help="Turn a dataset into the prepared-dataset format (docs/formats.md, prepared dataset).",
                          cls=HelpGroup, no_args_is_help=True)
app.add_typer(prepare_app, name="prepare")
import_app = typer.Typer(help="Turn model files written by other code into partcli checkpoints.", cls=HelpGroup,
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")  # options of ``partcli`` itself that may follow the command
_verbose = {"on": False}


def _version(value: bool) -> None:
    if value:
        print(f"partcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info lines (may also follow the "
                                        "command).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="With an error, also print where it arose (the "
                                          "traceback), e.g. for a bug report (may also follow the command).")
                       ] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the partcli version and exit.", callback=_version,
                                          is_eager=True)] = False,
) -> None:
    set_quiet(quiet)
    _verbose["on"] = verbose


def main() -> None:
    """Console-script entry point: one-line errors (exit code 2) for user mistakes, never a traceback."""
    on_interrupt(None)
    _verbose["on"] = False
    try:
        code = app(args=_global_first(sys.argv[1:]), standalone_mode=False)
    except PartcliError as exc:
        if _verbose["on"]:
            traceback.print_exc()
        _fail(str(exc))
    except UsageError as exc:  # Typer's own parsing: a value of the wrong type, a missing or unknown option
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # the help text has been printed
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + where)
    except PermissionError as exc:  # e.g. Path.is_dir() on a path inside a folder this account may not enter
        where = exc.filename or "a file"
        _fail(f"{where}: permission denied; check that this account may read (and for outputs, write) it")
    except KeyboardInterrupt:
        code = 130
    if code == 130:  # Ctrl-C (Typer returns 130 for it without a word)
        note = interrupt_note()
        error("interrupted" + (f"; {note}" if note else ""))
    sys.exit(code if isinstance(code, int) else 0)


def _global_first(args: list[str]) -> list[str]:
    """``-q``/``-v`` are options of ``partcli`` itself; written after the command (``partcli train ... -q``) they
    are moved before it."""
    return [*(a for a in args if a in GLOBAL_FLAGS), *(a for a in args if a not in GLOBAL_FLAGS)]


def _fail(message: str) -> None:
    error(message)
    sys.exit(2)
