"""`fota-studio secrets`: the seed/key secrets an EA names by `secret_ref`.

`secrets status` says where secrets are kept (OS keyring, or the encrypted secrets file where
there is none) and which references the workspace's EAs use, found or missing — never a value.
`secrets set REF` stores a secret (hex; from a prompt, or the first line of stdin with
`--value-stdin`), `secrets delete REF` removes it; both change what the tester can unlock, so with
an admin passphrase set they need it (`--passphrase-stdin` reads it from the line before the
value). Without an OS keyring the secrets-file passphrase comes from
`$FOTA_STUDIO_SECRETS_PASSPHRASE` or a prompt. Runs on the main thread.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from fota_studio.cli.common import (
    Command,
    add_group,
    arg,
    open_workspace,
    print_table,
    read_secret_line,
    require_access,
    succeed,
)
from fota_studio.core.errors import SecurityAccessError
from fota_studio.core.seedkey import demo_secret
from fota_studio.infra import secrets
from fota_studio.infra.access import Action
from fota_studio.infra.ea_store import EaStore

EXIT_OK = 0
EXIT_MISSING = 1


def register(subparsers: Any) -> None:
    """Add the `secrets` command group."""
    ref = arg("ref", metavar="REF")
    add_group(
        subparsers,
        "secrets",
        (
            Command("status", _status, "where secrets are kept; which references are missing"),
            Command(
                "set",
                _set,
                "store the secret (hex) for a reference",
                args=(
                    ref,
                    arg(
                        "--value-stdin",
                        action="store_true",
                        help="read the hex value from stdin (scripts)",
                    ),
                ),
                changes_state=True,
            ),
            Command(
                "delete",
                _delete,
                "remove the secret of a reference",
                args=(ref,),
                changes_state=True,
            ),
        ),
        help="seed/key secrets named by the EA's secret_ref: status, set, delete",
        description="Secrets live in the OS keyring, or in a passphrase-encrypted file where "
        "there is none; never in EA files, exports, records or logs.",
        dest="secrets_cmd",
    )


def _unlock_file_store() -> None:
    """Without an OS keyring: ask for the secrets-file passphrase unless the env var has it."""
    if secrets.keyring_available() or secrets.PASSPHRASE_ENV in os.environ:
        return
    phrase = read_secret_line(f"passphrase of {secrets.secrets_file_path()}: ", from_stdin=False)
    if phrase is None:
        raise SecurityAccessError(
            f"no OS keyring, and no passphrase for the secrets file {secrets.secrets_file_path()}",
            hint=f"run it in a terminal to be prompted, or set {secrets.PASSPHRASE_ENV}",
        )
    secrets.unlock_file_store(phrase)


def _status(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        store = EaStore(ws)
        refs: dict[str, list[str]] = {}
        for summary in store.list():
            ea = store.get(summary.name)
            for ecu in ea.ecus:
                for level in ecu.uds.security_levels:
                    if level.secret_ref:
                        where = f"{ea.name}/{ecu.name}/{level.name}"
                        refs.setdefault(level.secret_ref, []).append(where)
    print(f"secrets are kept in: {secrets.backend_description()}")
    rows = []
    missing = 0
    for ref, users in sorted(refs.items()):
        if demo_secret(ref) is not None:
            state = "published demo value"
        else:
            try:
                state = "stored" if secrets.get_secret(ref) is not None else "MISSING"
            except SecurityAccessError as exc:
                state = f"unknown ({exc.message})"
            missing += state == "MISSING"
        rows.append([ref, state, ", ".join(users)])
    if rows:
        print_table(["SECRET_REF", "STATE", "USED BY"], rows)
    else:
        print("no EA in this workspace names a secret_ref")
    return EXIT_MISSING if missing else EXIT_OK


def _set(args: argparse.Namespace) -> int:
    require_access(args, Action.SECRETS)
    text = read_secret_line(f"secret for {args.ref} (hex): ", from_stdin=args.value_stdin)
    if text is None:
        raise SecurityAccessError(
            "no secret given", hint="run it in a terminal, or pipe the hex value with --value-stdin"
        )
    try:
        value = bytes.fromhex(text.strip().replace(" ", ""))
    except ValueError:
        raise SecurityAccessError(
            f"the secret for {args.ref} is not hex text", hint="write it like 5A3C9E11"
        ) from None
    _unlock_file_store()
    secrets.set_secret(args.ref, value)
    where = secrets.backend_description()
    return succeed(f'stored the secret "{args.ref}" ({len(value)} bytes) in the {where}')


def _delete(args: argparse.Namespace) -> int:
    require_access(args, Action.SECRETS)
    _unlock_file_store()
    secrets.delete_secret(args.ref)
    return succeed(f'deleted the secret "{args.ref}"')
