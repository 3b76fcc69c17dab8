"""Command-line entry point: `fota-studio [--workspace DIR] <command> ...`; no command = the GUI.

Sub-commands live in sibling modules (`repo.py`, `ea.py`, ...), each with a
`register(subparsers)` function; they are discovered by name so adding a command touches only
its own module. This is the only package (with the Qt UI) that prints to stdout. Runs on the main
thread.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import pkgutil
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from fota_studio import __version__
from fota_studio.core.errors import FotaError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with every discovered sub-command (or, with `only`, just the
    command module of that name when there is one: see `_command_name`)."""
    parser = argparse.ArgumentParser(
        prog="fota-studio",
        description="FOTA Studio: update ECU firmware over CAN (UDS/ISO-TP, CANopen approval). "
        "Without a command, starts the GUI.",
    )
    parser.add_argument("--version", action="version", version=f"fota-studio {__version__}")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="run a headless demo update on the built-in simulated machine, print a one-line "
        "verdict and exit (0 = pass)",
    )
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        help="workspace folder (default: the per-user data folder; created with demo data)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    gui = sub.add_parser("gui", help="start the graphical console (the default)")
    gui.set_defaults(func=_run_gui)
    for mod in _command_modules(only):
        mod.register(sub)
    return parser


def _command_modules(only: str | None = None) -> list[Any]:
    """Import every sibling module that defines `register` (sorted, deterministic); with
    `only`, just that module when it exists and registers a command of its own name."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name != "common"
    )
    if only in names:
        mod = importlib.import_module(f"{__name__}.{only}")
        if hasattr(mod, "register"):
            probe = argparse.ArgumentParser(add_help=False).add_subparsers()
            mod.register(probe)
            if only in probe.choices:
                return [mod]
    mods = []
    for name in names:
        mod = importlib.import_module(f"{__name__}.{name}")
        if hasattr(mod, "register"):
            mods.append(mod)
    return mods


#: Global options that take a value (the command is the first other bare word).
_VALUE_OPTIONS = ("--workspace", "--log-level")


def _command_name(argv: Sequence[str]) -> str | None:
    """The sub-command word of `argv`, or None (no command, or help asked before it).

    Lets `main` import only that command's module: the command modules of the engine pull in
    python-can's log formats (asammdf, pandas), seconds of start-up that `repo list` does not
    need (issue 21: `repo list` on a big workspace, process start included).
    """
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in ("-h", "--help"):
            return None
        elif token in _VALUE_OPTIONS:
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def _run_gui(args: argparse.Namespace) -> int:
    """Start the Qt application (imported lazily: the CLI commands never load Qt)."""
    from fota_studio import app

    return app.run_gui(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the command, and return the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = _command_name(arguments)
    if command in (None, "gui"):
        # The GUI start skips asammdf/pandas until an MF4 file is used, and imports without a
        # cyclic-GC pass every 700 allocations (~160 passes over every module object so far);
        # app.run_gui sets the thresholds the running app keeps (issue 21).
        from fota_studio.infra.mf4_support import defer_mf4

        defer_mf4()
        gc.set_threshold(100_000, 50, 100)
    parser = build_parser(only=command)
    args = parser.parse_args(arguments)
    from fota_studio.infra.logsetup import setup_logging

    setup_logging(args.log_level, console=args.command not in (None, "gui"))
    if args.self_test:
        from fota_studio.cli import selftest

        return selftest.run(argparse.Namespace(verbose=False, keep=False))
    func = getattr(args, "func", _run_gui)
    try:
        return int(func(args))
    except FotaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, sqlite3.Error) as exc:
        # A full disk, read-only media or a vanished file that no layer below turned into a
        # FotaError: still one line, never a traceback.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
