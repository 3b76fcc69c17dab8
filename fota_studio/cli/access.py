"""`fota-studio access`: the workspace's admin passphrase and what operator mode protects.

`access status` says whether a passphrase is set and lists the actions that need it.
`access set-passphrase` sets it (or changes it: the current one is asked first);
`access clear-passphrase` removes it (needs the current one). Passphrases come from a terminal
prompt (asked twice when new) or, with `--passphrase-stdin`, from stdin: the current passphrase
on the first line when one is set, then the new one. Runs on the main thread.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fota_studio.cli.common import (
    Command,
    add_group,
    arg,
    guarded,
    open_workspace,
    read_secret_line,
    succeed,
)
from fota_studio.core.errors import ConfigurationError
from fota_studio.infra.access import (
    MIN_PASSPHRASE_CHARS,
    AccessControl,
    AccessDeniedError,
    Action,
)

EXIT_OK = 0


def register(subparsers: Any) -> None:
    """Add the `access` command group."""
    add_group(
        subparsers,
        "access",
        (
            Command("status", _status, "is a passphrase set, and what does it protect"),
            Command(
                "set-passphrase",
                guarded(_set),
                "set or change the admin passphrase",
                args=(
                    arg(
                        "--passphrase-stdin",
                        action="store_true",
                        help="read from stdin: the current passphrase first (when one is set), "
                        "then the new one",
                    ),
                ),
            ),
            Command(
                "clear-passphrase",
                guarded(_clear),
                "remove the admin passphrase (needs it)",
                args=(
                    arg(
                        "--passphrase-stdin",
                        action="store_true",
                        help="read the current passphrase from stdin",
                    ),
                ),
            ),
        ),
        help="admin passphrase and operator mode: status, set-passphrase, clear-passphrase",
        description="With an admin passphrase set, every state-changing command needs it "
        "(operator mode); without one, everything is allowed.",
        dest="access_cmd",
    )


def _status(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        has = AccessControl(ws).has_passphrase()
        root = ws.root
    print(f"workspace: {root}")
    if has:
        print("admin passphrase: set — operator mode; these need the passphrase:")
    else:
        print("admin passphrase: not set — everything is allowed (set one with ")
        print("  `fota-studio access set-passphrase`); once set, these need it:")
    for action in Action:
        print(f"  {action.value}")
    return EXIT_OK


def _current(args: argparse.Namespace, access: AccessControl) -> str | None:
    """The current passphrase when one is set (prompted or from stdin), checked."""
    if not access.has_passphrase():
        return None
    current = read_secret_line("current admin passphrase: ", from_stdin=args.passphrase_stdin)
    if current is None or not access.verify(current):
        raise AccessDeniedError(
            Action.SETTINGS,
            hint="the current admin passphrase is missing or wrong; nothing was changed",
        )
    return current


def _set(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        access = AccessControl(ws)
        current = _current(args, access)
        new = read_secret_line("new admin passphrase: ", from_stdin=args.passphrase_stdin)
        if new is None:
            raise ConfigurationError(
                "no new passphrase given",
                hint="run it in a terminal, or pipe it with --passphrase-stdin",
            )
        if not args.passphrase_stdin:
            again = read_secret_line("repeat the new passphrase: ", from_stdin=False)
            if again != new:
                raise ConfigurationError("the two passphrases differ; nothing was changed")
        if len(new) < MIN_PASSPHRASE_CHARS:
            raise ConfigurationError(
                f"the admin passphrase needs at least {MIN_PASSPHRASE_CHARS} characters"
            )
        access.set_passphrase(new, current=current)
    return succeed("admin passphrase set: state-changing commands now need it (operator mode)")


def _clear(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        access = AccessControl(ws)
        if not access.has_passphrase():
            print("no admin passphrase is set", file=sys.stderr)
            return EXIT_OK
        current = _current(args, access)
        assert current is not None  # has_passphrase() was True
        access.clear_passphrase(current)
    return succeed("admin passphrase removed: every command is allowed (engineering mode)")
