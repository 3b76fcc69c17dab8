"""Helpers shared by the CLI commands: opening the workspace, the access check, tables, errors.

`authorise(args, ws, action)` is how every state-changing command asks the one access check of
`infra/access.py`: with an admin passphrase set, the passphrase comes from `--passphrase-stdin`
(first line of stdin, for scripts) or an interactive prompt; otherwise the command is refused.
`guarded(func)` turns that refusal into exit code 2 and one "operator mode: ..." line;
`authorised_workspace(args, action)` opens the workspace and asks that check in one step.
Commands declare their parsers as data (`Command`, `arg`) that `add_command`/`add_group` build,
so a state-changing command gets `--passphrase-stdin` and `guarded` from one flag. Main thread
only.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fota_studio.infra.access import AccessControl, AccessDeniedError, Action
from fota_studio.infra.paths import resolve_workspace_dir
from fota_studio.infra.workspace import Workspace

CommandFunc = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Arg:
    """One `ArgumentParser.add_argument` call: the flags (or positional name) and its options."""

    flags: tuple[str, ...]
    options: Mapping[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """An argument of a `Command`, in the words of `add_argument`."""
    return Arg(flags, options)


#: An argument of a `Command`: one `arg(...)`, or a function adding several to the parser.
ArgSpec = Arg | Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """A command's parser as data: name, function, help texts and arguments (in order).

    `changes_state`: the command changes the workspace, so it takes `--passphrase-stdin`
    (after its own arguments) and runs `guarded`.
    """

    name: str
    func: CommandFunc
    help: str
    description: str | None = None
    args: Sequence[ArgSpec] = ()
    changes_state: bool = False


def add_command(subparsers: Any, command: Command) -> argparse.ArgumentParser:
    """Add `command` to `subparsers` (an `add_subparsers()` result) and return its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        command.name, help=command.help, description=command.description
    )
    for spec in command.args:
        if isinstance(spec, Arg):
            p.add_argument(*spec.flags, **spec.options)
        else:
            spec(p)
    if command.changes_state:
        add_passphrase_option(p)
        p.set_defaults(func=guarded(command.func))
    else:
        p.set_defaults(func=command.func)
    return p


def add_group(
    subparsers: Any,
    name: str,
    commands: Sequence[Command],
    *,
    help: str,
    description: str | None = None,
    dest: str,
    metavar: str = "<action>",
) -> None:
    """Add a command group (`fota-studio NAME <action> ...`): one required sub-command each."""
    group = subparsers.add_parser(name, help=help, description=description)
    sub = group.add_subparsers(dest=dest, metavar=metavar, required=True)
    for command in commands:
        add_command(sub, command)


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


def succeed(message: str) -> int:
    """Print a command's one-line result on stdout and return exit code 0 (`fail`'s twin)."""
    print(message)
    return 0


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


@contextmanager
def authorised_workspace(
    args: argparse.Namespace, action: Action, *, seed_demo: bool = True
) -> Iterator[Workspace]:
    """The workspace of a state-changing command, opened and closed around the access check
    of `action` (`authorise`: AccessDeniedError when the passphrase is missing or wrong)."""
    with open_workspace(args, seed_demo=seed_demo) as ws:
        authorise(args, ws, action)
        yield ws


def require_access(args: argparse.Namespace, action: Action) -> None:
    """The access check of `action` alone, for a command whose change lives outside the
    workspace (e.g. the OS keyring): AccessDeniedError when it may not run."""
    with open_workspace(args) as ws:
        authorise(args, ws, action)


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
