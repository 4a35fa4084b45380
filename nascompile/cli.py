"""The `nascompile` command: its parser, the registry of subcommands, and how failures exit.

    nascompile compile SPEC -o model.onnx [--validate] ...        (`compile_command.py`)
    nascompile report | plot | export SPEC ...   nascompile inspect model.onnx   (`commands.py`)

A subcommand lives in its own module, which defines `add_parsers(sub)`: it adds its parser(s) to `sub`,
takes the shared model options from `options.add_model_arguments`, and names its function with
`parser.set_defaults(run=fn)`; `fn(args)` returns the exit code. Adding one is a module and a line in
`SUBCOMMANDS`. Modules must not import torch or onnx at import time (`--help` and `--version` build every
parser; `tests/test_cli_startup.py` checks that they stay fast).

Results go to stdout; progress (one line per stage, or JSON lines with --log-json), warnings and IR dumps
to stderr. Each kind of user error has its own exit code (see `errors.py`); an unexpected failure exits
70 with a traceback, since it is a bug in nascompile.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

from . import bench_command, commands, compile_command, many_command
from .errors import INTERNAL_ERROR_EXIT_CODE, NascompileError, SpecError
from .options import progress_for, where_raised
from .progress import JsonLog
from .version import __version__

#: The modules whose `add_parsers(sub)` register the subcommands, in the order `--help` lists them.
SUBCOMMANDS = (compile_command, many_command, bench_command, commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nascompile", description="Compile DARTS-style supernets to validated ONNX.")
    parser.add_argument("--version", action="version", version=f"nascompile {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parsers(sub)
    return parser


def _report_error(args: argparse.Namespace, kind: str, message: str, exit_code: int, **fields) -> None:
    """One error on stderr: a JSON line with --log-json (with `fields`), else `nascompile: KIND: MESSAGE`."""
    progress = progress_for(args)
    if isinstance(progress, JsonLog):
        progress.error(kind, message, exit_code, **fields)
        return
    if progress is not None:
        progress.close()  # a stage left running: the error starts on a line of its own
    print(f"nascompile: {kind}: {message}" if message else f"nascompile: {kind}", file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM arrived (`timeout`, CI cancellation, `docker stop`): unwind so that staging folders go."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return _run(args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """Run the subcommand; every way it can fail becomes a message on stderr and an exit code."""
    try:
        return args.run(args)
    except NascompileError as exc:
        _report_error(args, exc.kind, str(exc), exc.exit_code)
        return exc.exit_code
    except SystemExit as exc:  # parsing is over: only the SPEC's code (sys.exit, quit, exit) raises it here
        error = SpecError(f"the SPEC's code exited (sys.exit, exit or quit; code {exc.code!r}){where_raised(exc)}; "
                          "a SPEC must not end nascompile: return the supernet from build(), raise an exception "
                          "on errors")
        _report_error(args, error.kind, str(error), error.exit_code)
        return error.exit_code
    except KeyboardInterrupt:
        _report_error(args, "interrupted", "", 130)
        return 130
    except Terminated:
        _report_error(args, "terminated", "stopped by SIGTERM; unfinished outputs were removed", 143)
        return 143
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        message = "this is a bug in nascompile; please report it with the traceback"
        if isinstance(progress_for(args), JsonLog):  # stderr holds JSON lines only: the traceback goes in one
            _report_error(args, "internal error", f"{type(exc).__name__}: {exc}; {message}",
                          INTERNAL_ERROR_EXIT_CODE, traceback=traceback.format_exc())
        else:
            traceback.print_exc()
            _report_error(args, "internal error", f"{message} above", INTERNAL_ERROR_EXIT_CODE)
        return INTERNAL_ERROR_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
