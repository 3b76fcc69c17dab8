"""The workspace's record-signing key: Ed25519, where its private half is kept, and key pinning.

Every update-request record entry and the chain head are signed with one Ed25519 key per
workspace (`cryptography`). Where the private key lives is decided once, when the first record is
written, by this rule (docs/SECURITY.md, "Update records"):

1. the OS keyring (`keyring`, service `fota-studio`, user `record-signing:<fingerprint>`) when a
   working backend exists (a value written can be read back);
2. otherwise a PKCS#8 key file in the workspace folder encrypted with the passphrase in the
   environment variable `FOTA_STUDIO_RECORD_KEY_PASSPHRASE` (cryptography's
   `BestAvailableEncryption`); the same variable unlocks it later;
3. otherwise a key file in THIS USER's config folder (`record-keys/`, folder mode 0700, file
   0600), outside the workspace: an attacker who can write (or read) the workspace folder — a
   shared drive, a copied workspace — cannot sign with it; code running as this user can.
   Workspaces made before this rule may still hold an UNPROTECTED key file in the workspace
   folder: loaded with a warning and named "UNPROTECTED" by `records verify`, the report and
   every bundle; `records protect-key` moves it.

The public key and where the private key lives are stored in the workspace settings
(`records.signing_key`). So that an attacker who can write the workspace cannot swap in a key of
their own and re-sign everything, the first use on a machine pins the key's fingerprint per
workspace folder in the user's config folder (`record-keys.json`), outside the workspace;
`records verify` reports a different key as a problem. Serialisation of signed statements is
RFC 8785 JSON (`rfc8785`), so any implementation can re-create the signed bytes.

Thread use: any thread; the loaded private key is cached per workspace folder behind a lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fota_studio.core.errors import WorkspaceError
from fota_studio.infra.paths import config_dir
from fota_studio.infra.workspace import Workspace, atomic_write

log = logging.getLogger(__name__)

KEY_SETTING = "records.signing_key"
PASSPHRASE_ENV = "FOTA_STUDIO_RECORD_KEY_PASSPHRASE"
KEYRING_SERVICE = "fota-studio"
PIN_FILE = "record-keys.json"

PROTECTION_KEYRING = "keyring"
PROTECTION_PASSPHRASE = "passphrase"
PROTECTION_UNPROTECTED = "unprotected"
PROTECTION_USER_FILE = "user-file"
#: A key `location` with this prefix lives in the user's config folder, not in the workspace.
USER_LOCATION_PREFIX = "config:"

UNPROTECTED_NOTE = (
    "signing key UNPROTECTED (a key file without passphrase in the workspace folder): anyone who "
    "can read the folder can sign records; protect it with `fota-studio records protect-key`"
)

_lock = threading.Lock()
_signers: dict[tuple[str, str], RecordSigner] = {}


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of `obj`: what every signature covers."""
    return bytes(rfc8785.dumps(obj))


def fingerprint_of(public_raw: bytes) -> str:
    """SHA-256 hex of the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_raw).hexdigest()


def short_fingerprint(fp: str) -> str:
    """The first 16 hex digits in groups of 4, as shown to people."""
    return ":".join(fp[i : i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True)
class KeyInfo:
    """The public facts about a workspace's record-signing key (stored in the workspace)."""

    fingerprint: str
    public_key_hex: str
    protection: str
    location: str
    created_at: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The Ed25519 public key."""
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key_hex))

    @property
    def unprotected(self) -> bool:
        """True when the private key sits in a key file without passphrase."""
        return self.protection == PROTECTION_UNPROTECTED

    def describe(self) -> str:
        """One line: fingerprint and where the private key lives."""
        where = {
            PROTECTION_KEYRING: "private key in the OS keyring",
            PROTECTION_PASSPHRASE: f"private key in passphrase-encrypted file {self.location}",
            PROTECTION_UNPROTECTED: f"private key UNPROTECTED in {self.location} (no passphrase)",
            PROTECTION_USER_FILE: "private key in this user's config folder, outside the "
            f"workspace ({self.location.removeprefix(USER_LOCATION_PREFIX)})",
        }.get(self.protection, self.protection)
        return f"Ed25519 {short_fingerprint(self.fingerprint)}; {where}"


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse a public key given as PEM or as 64 hex digits; WorkspaceError when neither."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(stripped))
    except ValueError as exc:
        raise WorkspaceError(
            f"not an Ed25519 public key ({exc})",
            hint="pass the output of `fota-studio records export-key` (PEM or 64 hex digits)",
        ) from None


def public_raw(key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(info: KeyInfo) -> str:
    """The public key as SubjectPublicKeyInfo PEM."""
    return info.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def verify_signature(key: Ed25519PublicKey, sig_hex: str | None, message: bytes) -> bool:
    """True when `sig_hex` is a valid signature of `message` by `key` (False on any garbage)."""
    if not sig_hex or not isinstance(sig_hex, str):
        return False
    try:
        key.verify(bytes.fromhex(sig_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def key_info(ws: Workspace) -> KeyInfo | None:
    """The workspace's key facts, or None before the first signed record was written."""
    value = ws.get_setting(KEY_SETTING)
    return key_info_from(value)


def key_info_from(value: Any) -> KeyInfo | None:
    """Parse the stored key facts; None when absent or malformed."""
    if not isinstance(value, dict):
        return None
    try:
        info = KeyInfo(
            fingerprint=str(value["fingerprint"]),
            public_key_hex=str(value["public_key"]),
            protection=str(value["protection"]),
            location=str(value.get("location", "")),
            created_at=str(value.get("created_at", "")),
        )
        if fingerprint_of(bytes.fromhex(info.public_key_hex)) != info.fingerprint:
            return None
        _ = info.public_key
    except (KeyError, ValueError):
        return None
    return info


class RecordSigner:
    """A loaded private key and its public facts; `sign(message)` returns hex."""

    def __init__(self, info: KeyInfo, private: Ed25519PrivateKey) -> None:
        self.info = info
        self._private = private

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of `message` as hex."""
        return self._private.sign(message).hex()


def _keyring_user(fp: str) -> str:
    return f"record-signing:{fp}"


def _try_keyring_store(fp: str, private_raw: bytes) -> bool:
    """Store in the keyring and read back; False when no working keyring exists."""
    try:
        keyring.set_password(KEYRING_SERVICE, _keyring_user(fp), private_raw.hex())
        return keyring.get_password(KEYRING_SERVICE, _keyring_user(fp)) == private_raw.hex()
    except (keyring.errors.KeyringError, RuntimeError):  # no backend, locked, D-Bus trouble
        return False


def _key_file_bytes(private: Ed25519PrivateKey, passphrase: str | None) -> bytes:
    algorithm: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm
    )


USER_KEY_DIR = "record-keys"


def ws_key_name(ws: Workspace, name: str) -> str:
    """A key file name unique per workspace folder (several workspaces share the user folder)."""
    tag = hashlib.sha256(str(ws.root.resolve()).encode("utf-8")).hexdigest()[:12]
    return f"{tag}-{name}"


def key_path(ws: Workspace, location: str) -> Path:
    """Where a key file `location` is: the user's config folder ("config:…") or the workspace."""
    if location.startswith(USER_LOCATION_PREFIX):
        return config_dir() / location.removeprefix(USER_LOCATION_PREFIX)
    return ws.root / location


def _create(ws: Workspace) -> RecordSigner:
    """Make a new key, keep its private half per the rule above, store the facts (race-safe)."""
    private = Ed25519PrivateKey.generate()
    pub = public_raw(private.public_key())
    fp = fingerprint_of(pub)
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    if _try_keyring_store(fp, raw):
        protection, location = PROTECTION_KEYRING, _keyring_user(fp)
    else:
        name = f"record-signing-{fp[:16]}.pem"
        if passphrase:
            protection, location = PROTECTION_PASSPHRASE, name
        else:
            # Outside the workspace, so write access to the workspace folder is not the key.
            protection = PROTECTION_USER_FILE
            location = f"{USER_LOCATION_PREFIX}{USER_KEY_DIR}/{ws_key_name(ws, name)}"
        path = key_path(ws, location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(path, _key_file_bytes(private, passphrase))
            os.chmod(path, 0o600)
        except OSError as exc:
            raise WorkspaceError(
                f"cannot write the record-signing key file {path}: {exc.strerror}",
                hint="make the folder writable, or free disk space",
            ) from None
        if protection == PROTECTION_USER_FILE:
            log.info(
                "record-signing key of %s kept in %s (no OS keyring, %s not set)",
                ws.root,
                path,
                PASSPHRASE_ENV,
            )
    facts = {
        "fingerprint": fp,
        "public_key": pub.hex(),
        "protection": protection,
        "location": location,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # Another process may have made the workspace's key meanwhile: the first stored one wins.
    with ws.transaction() as cur:
        row = cur.execute("SELECT value FROM settings WHERE key = ?", (KEY_SETTING,)).fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?)", (KEY_SETTING, json.dumps(facts))
            )
    if row is not None:
        if protection != PROTECTION_KEYRING:
            with contextlib.suppress(OSError):
                key_path(ws, location).unlink()
        info = key_info(ws)
        if info is None:
            raise WorkspaceError(f"{ws.root}: the stored record-signing key facts are damaged")
        return _load(ws, info)
    info = key_info_from(facts)
    assert info is not None
    pin_key(ws, info)
    return RecordSigner(info, private)


def _load(ws: Workspace, info: KeyInfo) -> RecordSigner:
    """Load the private key named by `info`; WorkspaceError saying how to unlock it."""
    private: Any
    if info.protection == PROTECTION_KEYRING:
        try:
            value = keyring.get_password(KEYRING_SERVICE, info.location)
        except (keyring.errors.KeyringError, RuntimeError) as exc:
            raise WorkspaceError(
                f"cannot read the record-signing key {info.location} from the OS keyring: "
                f"{type(exc).__name__}",
                hint="unlock the keyring (records are signed with this workspace's key)",
            ) from None
        if value is None:
            raise WorkspaceError(
                f"the record-signing key {info.location} of {ws.root} is not in this machine's "
                "keyring",
                hint="write records on the machine that holds the key; reading and "
                "`records verify` work without it",
            )
        private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(value))
    else:
        path = key_path(ws, info.location)
        passphrase = os.environ.get(PASSPHRASE_ENV) or None
        if info.protection == PROTECTION_PASSPHRASE and passphrase is None:
            raise WorkspaceError(
                f"the record-signing key {path} is encrypted and {PASSPHRASE_ENV} is not set",
                hint=f"set {PASSPHRASE_ENV} to the key's passphrase to write records",
            )
        try:
            data = path.read_bytes()
            private = serialization.load_pem_private_key(
                data,
                password=passphrase.encode("utf-8")
                if info.protection == PROTECTION_PASSPHRASE and passphrase
                else None,
            )
        except FileNotFoundError:
            if info.protection == PROTECTION_USER_FILE:
                raise WorkspaceError(
                    f"the record-signing key of {ws.root} is not in this user's config folder "
                    f"({path})",
                    hint="write records as the user / on the machine that made the workspace; "
                    "reading and `records verify` work without it",
                ) from None
            raise WorkspaceError(
                f"the record-signing key file {path} is missing",
                hint="restore it from a backup; records cannot be signed without it",
            ) from None
        except (ValueError, TypeError):
            raise WorkspaceError(
                f"cannot open the record-signing key file {path} (wrong passphrase or damaged)",
                hint=f"check {PASSPHRASE_ENV}",
            ) from None
        if info.protection == PROTECTION_UNPROTECTED:
            log.warning("record-signing key of %s is UNPROTECTED", ws.root)
    if not isinstance(private, Ed25519PrivateKey) or (
        fingerprint_of(public_raw(private.public_key())) != info.fingerprint
    ):
        raise WorkspaceError(
            f"the record-signing key in {info.location} is not the workspace's key "
            f"{short_fingerprint(info.fingerprint)}",
            hint="restore the right key file; run `fota-studio records verify`",
        )
    return RecordSigner(info, private)


def signer_for(ws: Workspace) -> RecordSigner:
    """The workspace's signer, creating the key on first use (cached per workspace folder)."""
    info = key_info(ws)
    root = str(ws.root.resolve())
    with _lock:
        if info is not None:
            cached = _signers.get((root, info.fingerprint))
            if cached is not None:
                return cached
        signer = _load(ws, info) if info is not None else _create(ws)
        _signers[(root, signer.info.fingerprint)] = signer
        return signer


# -- pinning (outside the workspace) -----------------------------------------------------------


def _pin_path() -> Path:
    return config_dir() / PIN_FILE


def _read_pins() -> dict[str, Any]:
    try:
        data = json.loads(_pin_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pinned_fingerprint(ws: Workspace) -> str | None:
    """The fingerprint this machine pinned for the workspace folder, if any."""
    entry = _read_pins().get(str(ws.root.resolve()))
    return str(entry["fingerprint"]) if isinstance(entry, dict) and "fingerprint" in entry else None


def pin_key(ws: Workspace, info: KeyInfo) -> bool:
    """Pin `info` for this workspace folder unless one is pinned; True when pinned now.

    A failure to write the pin file (read-only home) is logged, not fatal: verification then
    says the key is not pinned.
    """
    pins = _read_pins()
    root = str(ws.root.resolve())
    if root in pins:
        return False
    # Forget folders that are gone (self-test and campaign workspaces live in temp folders).
    pins = {k: v for k, v in pins.items() if Path(k).is_dir()}
    pins[root] = {
        "fingerprint": info.fingerprint,
        "pinned_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        atomic_write(_pin_path(), json.dumps(pins, indent=1, sort_keys=True).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot pin the record-signing key in %s: %s", _pin_path(), exc)
        return False
    return True


def protect_key(ws: Workspace, to: str) -> KeyInfo:
    """Move the workspace's private key into the OS keyring (`to="keyring"`) or into a file
    encrypted with the passphrase in `FOTA_STUDIO_RECORD_KEY_PASSPHRASE` (`to="passphrase"`).

    The key itself (and so its fingerprint and every signature) stays the same. An unprotected
    key file is deleted afterwards; copies of it in backups still hold the key (docs/SECURITY.md).
    WorkspaceError saying what to do when the target is not available.
    """
    signer = signer_for(ws)
    old = signer.info
    raw = signer._private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    if to == PROTECTION_KEYRING:
        if not _try_keyring_store(old.fingerprint, raw):
            raise WorkspaceError(
                "no working OS keyring on this machine (a value written could not be read back)",
                hint=f"use --to passphrase with {PASSPHRASE_ENV} set, or install a keyring "
                "backend (python -m keyring diagnose)",
            )
        location = _keyring_user(old.fingerprint)
    elif to == PROTECTION_PASSPHRASE:
        passphrase = os.environ.get(PASSPHRASE_ENV) or None
        if passphrase is None:
            raise WorkspaceError(
                f"{PASSPHRASE_ENV} is not set",
                hint=f"set {PASSPHRASE_ENV} to the new passphrase of the record-signing key",
            )
        location = f"record-signing-{old.fingerprint[:16]}.pem"
        path = ws.root / location
        try:
            atomic_write(path, _key_file_bytes(signer._private, passphrase))
            os.chmod(path, 0o600)
        except OSError as exc:
            raise WorkspaceError(
                f"cannot write the record-signing key file {path}: {exc.strerror}"
            ) from None
    else:
        raise WorkspaceError(f"unknown key protection {to!r}", hint="use keyring or passphrase")
    facts = {
        "fingerprint": old.fingerprint,
        "public_key": old.public_key_hex,
        "protection": to,
        "location": location,
        "created_at": old.created_at,
    }
    ws.set_setting(KEY_SETTING, facts)
    if old.protection != PROTECTION_KEYRING and old.location != location:
        with contextlib.suppress(OSError):
            key_path(ws, old.location).unlink()
    info = key_info_from(facts)
    assert info is not None
    with _lock:
        _signers.pop((str(ws.root.resolve()), info.fingerprint), None)
    log.info("record-signing key of %s now protected by %s", ws.root, to)
    return info
