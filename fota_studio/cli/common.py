"""Helpers shared by the CLI commands: opening the workspace, the access check, tables, errors.

`authorise(args, ws, action)` is how every state-changing command asks the one access check of
`infra/access.py`: with an admin passphrase set, the passphrase comes from `--passphrase-stdin`
(first line of stdin, for scripts) or an interactive prompt; otherwise the command is refused.
`guarded(func)` turns that refusal into exit code 2 and one "operator mode: ..." line.
Main thread only.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import sys
from collections.abc import Callable

from fota_studio.infra.access import AccessControl, AccessDeniedError, Action
from fota_studio.infra.paths import resolve_workspace_dir
from fota_studio.infra.workspace import Workspace

CommandFunc = Callable[[argparse.Namespace], int]


def open_workspace(args: argparse.Namespace, *, seed_demo: bool = True) -> Workspace:
    """Open the workspace named by `--workspace` (or the default), seeding demo data when new."""
    root = resolve_workspace_dir(getattr(args, "workspace", None))
    ws = Workspace.open(root)
    if seed_demo:
        from fota_studio.demo import seed as demo

        demo.ensure_demo(ws)
    return ws


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Print rows as an aligned plain-text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line.rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def fail(message: str, code: int = 1) -> int:
    """Print a one-line error to stderr and return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code


def add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    """Add `--passphrase-stdin` to a state-changing command's parser."""
    parser.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help="read the admin passphrase from the first line of stdin (for scripts); without it "
        "a terminal prompts when the workspace has a passphrase",
    )


def read_secret_line(prompt: str, *, from_stdin: bool) -> str | None:
    """One line from stdin (`from_stdin`), else a getpass prompt on a terminal, else None."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n") if line else None
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            return getpass.getpass(prompt)
        except EOFError:
            return None
    return None


def authorise(args: argparse.Namespace, ws: Workspace, action: Action) -> AccessControl:
    """The access check of one CLI command: return the workspace's AccessControl when `action`
    may run; AccessDeniedError ("operator mode: ...") when the passphrase is missing or wrong."""
    access = AccessControl(ws)
    if access.allows(action):
        return access
    passphrase = read_secret_line(
        f"admin passphrase ({action.value}): ",
        from_stdin=bool(getattr(args, "passphrase_stdin", False)),
    )
    if passphrase is None:
        raise AccessDeniedError(
            action,
            hint="no passphrase given: run it in a terminal to be prompted, or pipe the "
            "passphrase with --passphrase-stdin",
        )
    if not access.enter_engineering(passphrase):
        raise AccessDeniedError(
            action, hint="the admin passphrase given is wrong; nothing was changed"
        )
    return access


def guarded(func: CommandFunc) -> CommandFunc:
    """Run a command; an operator-mode refusal prints one line and exits 2 (nothing changed)."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except AccessDeniedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return AccessDeniedError.exit_code

    return wrapper
