"""Operator mode vs engineering mode, the workspace's admin passphrase, and the ONE access check.

In operator mode the EA and repositories are read-only and only approved actions are offered;
switching to engineering mode needs the workspace's admin passphrase. Every state-changing entry
point — the CLI commands (`cli/common.guarded`) and the GUI (`ui/workbench`) — asks the same
`AccessControl.require(action)` / `allows(action)` with an `Action` from the one list below, so a
rule cannot hold in the GUI and be forgotten on the command line. The passphrase is stored
in the workspace settings only as a salted `hashlib.scrypt` hash (never the passphrase itself) and
checked in constant time. A workspace without a passphrase starts in engineering mode (nothing to
protect yet); with one it starts in operator mode. `AccessControl` may be used from any thread;
mode listeners are called on the thread that changed the mode (the GUI thread in the app).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from fota_studio.core.errors import ConfigurationError, FotaError
from fota_studio.infra.workspace import Workspace

PASSPHRASE_SETTING = "admin_passphrase"
#: scrypt cost (RFC 7914): n=2**14, r=8 takes ~50 ms and 16 MiB, fine for an interactive check.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSPHRASE_CHARS = 8


class Mode(StrEnum):
    """What the user may do."""

    OPERATOR = "operator"
    ENGINEERING = "engineering"


class Action(StrEnum):
    """Every action that changes the workspace, its trust or the bus outside a planned update.

    In operator mode each needs the admin passphrase (engineering mode). The value is the name
    users see in a refusal ("operator mode: repo trust needs ...").
    """

    REPO_CREATE = "repo create"
    REPO_IMPORT = "repo import"
    REPO_RETIRE = "repo retire"
    REPO_TRUST = "repo trust"
    REPO_UNTRUST = "repo untrust"
    REPO_POLICY = "repo require-signed"
    REPO_ALLOW_DOWNGRADE = "repo allow-downgrade"
    EA_IMPORT = "ea import"
    EA_EDIT = "ea edit"
    EA_ASSIGN = "ea assign"
    REQUEST_CREATE = "request create"
    REQUEST_START = "request start"
    REQUEST_CANCEL = "request cancel"
    REQUEST_RERUN = "request rerun"
    FLASH_FILE = "flash of a file outside the repositories"
    RECORDS_EXPORT_SECRETS = "records export of secrets"
    SECRETS = "secrets set/delete"
    SETTINGS = "settings"
    RAW_TRANSMIT = "raw CAN transmit"
    FAULT_INJECTION = "fault injection"


class AccessDeniedError(FotaError):
    """An action refused in operator mode; `str()` starts with "operator mode: "."""

    #: The CLI exits with this code (usage-style refusal, distinct from a failed operation).
    exit_code = 2

    def __init__(self, action: Action, *, hint: str | None = None) -> None:
        self.action = action
        super().__init__(
            f"operator mode: {action.value} needs the admin passphrase (engineering mode)",
            hint=hint
            or "authorise with the admin passphrase: answer the prompt, pipe it with "
            "--passphrase-stdin, or switch to engineering mode in the GUI (Mode menu)",
        )


def hash_passphrase(passphrase: str, salt: bytes | None = None) -> dict[str, Any]:
    """The stored form of a passphrase: scrypt parameters, salt and hash (hex)."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(
        passphrase.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=HASH_BYTES
    )
    return {
        "algorithm": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "hash": digest.hex(),
    }


def check_passphrase(passphrase: str, stored: dict[str, Any]) -> bool:
    """True when `passphrase` matches the stored hash (constant-time compare)."""
    if not isinstance(stored, dict) or stored.get("algorithm") != "scrypt":
        return False
    try:
        digest = hashlib.scrypt(
            passphrase.encode("utf-8"),
            salt=bytes.fromhex(str(stored["salt"])),
            n=int(stored["n"]),
            r=int(stored["r"]),
            p=int(stored["p"]),
            dklen=len(bytes.fromhex(str(stored["hash"]))),
            maxmem=1 << 30,
        )
    except (KeyError, ValueError, TypeError, MemoryError):
        return False  # a damaged stored hash matches nothing (the workspace stays protected)
    return hmac.compare_digest(digest.hex(), str(stored["hash"]))


ModeListener = Callable[[Mode], None]


class AccessControl:
    """The current mode of one open workspace and its admin passphrase."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._listeners: list[ModeListener] = []
        self._mode = Mode.OPERATOR if self.has_passphrase() else Mode.ENGINEERING

    @property
    def mode(self) -> Mode:
        """The current mode."""
        with self._lock:
            return self._mode

    @property
    def read_only(self) -> bool:
        """True in operator mode (EA and repositories must not be edited)."""
        return self.mode is Mode.OPERATOR

    def has_passphrase(self) -> bool:
        """True when the workspace has an admin passphrase."""
        return bool(self.ws.get_setting(PASSPHRASE_SETTING))

    def set_passphrase(self, new: str, *, current: str | None = None) -> None:
        """Set or change the admin passphrase (the current one is needed to change it)."""
        if len(new) < MIN_PASSPHRASE_CHARS:
            raise ConfigurationError(
                f"the admin passphrase needs at least {MIN_PASSPHRASE_CHARS} characters"
            )
        stored = self.ws.get_setting(PASSPHRASE_SETTING)
        if stored and (current is None or not check_passphrase(current, stored)):
            raise ConfigurationError(
                "the current admin passphrase is wrong", hint="enter the current passphrase"
            )
        self.ws.set_setting(PASSPHRASE_SETTING, hash_passphrase(new))

    def clear_passphrase(self, current: str) -> None:
        """Remove the admin passphrase (needs it); every action is then allowed."""
        if not self.verify(current):
            raise ConfigurationError(
                "the current admin passphrase is wrong", hint="enter the current passphrase"
            )
        with self.ws.transaction() as cur:
            cur.execute("DELETE FROM settings WHERE key = ?", (PASSPHRASE_SETTING,))
        self._set(Mode.ENGINEERING)

    def verify(self, passphrase: str) -> bool:
        """True when `passphrase` is the admin passphrase (False when none is set)."""
        stored = self.ws.get_setting(PASSPHRASE_SETTING)
        return bool(stored) and check_passphrase(passphrase, stored)

    def enter_engineering(self, passphrase: str | None = None) -> bool:
        """Switch to engineering mode; needs the passphrase when one is set. True on success."""
        if self.has_passphrase() and (passphrase is None or not self.verify(passphrase)):
            return False
        self._set(Mode.ENGINEERING)
        return True

    def allows(self, action: Action) -> bool:
        """True when `action` may run now (engineering mode, or no passphrase set at all)."""
        del action  # every listed action needs engineering mode; kept for per-action rules
        return self.mode is Mode.ENGINEERING

    def require(self, action: Action, *, hint: str | None = None) -> None:
        """The one access check: raise AccessDeniedError naming `action` in operator mode."""
        if not self.allows(action):
            raise AccessDeniedError(action, hint=hint)

    def enter_operator(self) -> None:
        """Switch to operator mode (no passphrase needed)."""
        self._set(Mode.OPERATOR)

    def add_listener(self, callback: ModeListener) -> None:
        """Call `callback(mode)` after every mode change."""
        with self._lock:
            self._listeners.append(callback)

    def _set(self, mode: Mode) -> None:
        with self._lock:
            changed = mode is not self._mode
            self._mode = mode
            listeners = list(self._listeners) if changed else []
        for cb in listeners:
            cb(mode)
