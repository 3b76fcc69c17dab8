"""Seed/key secrets: in the OS keyring, or in a passphrase-encrypted file where there is none.

A secret is named by an EA's `secret_ref` and never stored anywhere else (not in EA files,
exports, records or logs). Lookup order:

1. the demo machine's published references (`core.seedkey.DEMO_SECRETS`): protect nothing, make
   the demo work everywhere;
2. the OS keyring (service `fota-studio`, user name = the reference, value = hex text) when a real
   keyring backend exists;
3. otherwise the encrypted secrets file `<user config>/secrets.enc` (or
   `$FOTA_STUDIO_SECRETS_FILE`): a JSON envelope holding a Fernet token (AES-128-CBC +
   HMAC-SHA256, from `cryptography`) of the secrets, keyed by scrypt (n=2**15, r=8, p=1) over the
   secrets passphrase and a random salt. The passphrase comes from `unlock_file_store()` (the CLI
   prompts) or `$FOTA_STUDIO_SECRETS_PASSPHRASE` (services, CI). The file is written atomically
   with mode 0600.

Errors name the reference, the backend and what to do, never the value. Any thread may call these
functions (the file store serialises on a lock; keyring backends serialise themselves); the GUI
calls them from a worker because some keyring backends prompt or talk to D-Bus.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fota_studio.core.errors import SecurityAccessError
from fota_studio.core.seedkey import DEMO_SECRET_PREFIX, demo_secret
from fota_studio.infra.workspace import atomic_write

KEYRING_SERVICE = "fota-studio"
SECRETS_FILE_ENV = "FOTA_STUDIO_SECRETS_FILE"
PASSPHRASE_ENV = "FOTA_STUDIO_SECRETS_PASSPHRASE"
FILE_FORMAT = "fota-studio-secrets/1"
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
MIN_PASSPHRASE_CHARS = 8

_lock = threading.RLock()
_file_passphrase: str | None = None


def secrets_file_path() -> Path:
    """Where the encrypted secrets file lives (used only without an OS keyring)."""
    env = os.environ.get(SECRETS_FILE_ENV)
    if env:
        return Path(env).expanduser()
    from fota_studio.infra.paths import config_dir

    return config_dir() / "secrets.enc"


def keyring_available() -> bool:
    """True when a real OS keyring backend is configured (not keyring's fail/null backends)."""
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if name.startswith(("keyring.backends.fail.", "keyring.backends.null.")):
        return False
    try:
        return float(backend.priority) > 0
    except Exception:  # a backend whose priority check fails is not usable
        return False


def backend_description() -> str:
    """Which store secrets go to, for `fota-studio secrets status` and error messages."""
    if keyring_available():
        return f"OS keyring ({type(keyring.get_keyring()).__name__})"
    return f"encrypted secrets file {secrets_file_path()}"


def unlock_file_store(passphrase: str) -> None:
    """Remember the secrets-file passphrase for this process (checked against the file)."""
    global _file_passphrase
    path = secrets_file_path()
    if path.exists():
        _decrypt(path, passphrase)  # raises on a wrong passphrase
    with _lock:
        _file_passphrase = passphrase


def lock_file_store() -> None:
    """Forget the secrets-file passphrase."""
    global _file_passphrase
    with _lock:
        _file_passphrase = None


def _passphrase() -> str | None:
    with _lock:
        if _file_passphrase is not None:
            return _file_passphrase
    return os.environ.get(PASSPHRASE_ENV) or None


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=n, r=r, p=p)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode("utf-8")))


def _decrypt(path: Path, passphrase: str) -> dict[str, str]:
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
        if envelope.get("format") != FILE_FORMAT:
            raise ValueError(f"format {envelope.get('format')!r}")
        key = _key(
            passphrase,
            base64.b64decode(envelope["salt"]),
            int(envelope["n"]),
            int(envelope["r"]),
            int(envelope["p"]),
        )
        plain = Fernet(key).decrypt(envelope["token"].encode("ascii"))
    except InvalidToken:
        raise SecurityAccessError(
            f"cannot open the secrets file {path}: wrong passphrase (or the file was altered)",
            hint="enter the secrets passphrase used when the file was created",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SecurityAccessError(
            f"cannot read the secrets file {path}: {type(exc).__name__}",
            hint="restore it from a backup, or move it away and store the secrets again",
        ) from None
    data = json.loads(plain)
    if not isinstance(data, dict):
        raise SecurityAccessError(f"the secrets file {path} holds no secret table")
    return {str(k): str(v) for k, v in data.items()}


def _encrypt(path: Path, passphrase: str, table: dict[str, str]) -> None:
    salt = os.urandom(SALT_BYTES)
    token = Fernet(_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(
        json.dumps(table, sort_keys=True).encode("utf-8")
    )
    envelope: dict[str, Any] = {
        "format": FILE_FORMAT,
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode("ascii"),
        "token": token.decode("ascii"),
    }
    try:
        atomic_write(path, json.dumps(envelope, indent=2).encode("utf-8") + b"\n")
        os.chmod(path, 0o600)
    except OSError as exc:
        raise SecurityAccessError(
            f"cannot write the secrets file {path}: {exc.strerror}",
            hint=f"check the folder's permissions, or set {SECRETS_FILE_ENV}",
        ) from None


def _file_table(*, for_write: bool) -> tuple[Path, str, dict[str, str]] | None:
    """(path, passphrase, secrets) of the file store; None when reading and no file exists."""
    path = secrets_file_path()
    passphrase = _passphrase()
    if not path.exists() and not for_write:
        return None
    if passphrase is None:
        raise SecurityAccessError(
            f"no OS keyring, and the secrets file {path} is locked",
            hint="enter the secrets passphrase (the CLI prompts; `fota-studio secrets status`), "
            f"or set {PASSPHRASE_ENV} for services",
        )
    if for_write and len(passphrase) < MIN_PASSPHRASE_CHARS and not path.exists():
        raise SecurityAccessError(
            f"the secrets passphrase needs at least {MIN_PASSPHRASE_CHARS} characters"
        )
    table = _decrypt(path, passphrase) if path.exists() else {}
    return path, passphrase, table


def _decode(value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return value.encode("utf-8")


def get_secret(ref: str) -> bytes | None:
    """Return the secret stored under `ref`, or None when there is none."""
    demo = demo_secret(ref)
    if demo is not None:
        return demo
    if keyring_available():
        try:
            value = keyring.get_password(KEYRING_SERVICE, ref)
        except keyring.errors.KeyringError as exc:
            raise SecurityAccessError(
                f'cannot read secret "{ref}" from the OS keyring: {type(exc).__name__}',
                hint="unlock the keyring or configure a keyring backend "
                "(python -m keyring diagnose)",
            ) from None
        return None if value is None else _decode(value)
    with _lock:
        found = _file_table(for_write=False)
    if found is None:
        return None
    value = found[2].get(ref)
    return None if value is None else _decode(value)


def require_secret(ref: str) -> bytes:
    """Return the secret under `ref`; SecurityAccessError naming `ref` (never a value) when
    missing."""
    secret = get_secret(ref)
    if secret is None:
        raise SecurityAccessError(
            f'secret "{ref}" is not in the {backend_description()}',
            hint=f"store it with `fota-studio secrets set {ref}` (hex)",
        )
    return secret


def _check_ref(ref: str) -> None:
    if not ref or not ref.isprintable() or len(ref) > 200:
        raise SecurityAccessError(f"secret reference {ref!r} is empty or not printable text")
    if ref.startswith(DEMO_SECRET_PREFIX):
        raise SecurityAccessError(
            f'"{ref}" is a published demo reference; choose another name for a real secret'
        )


def set_secret(ref: str, secret: bytes) -> None:
    """Store `secret` under `ref` (as hex text) in the keyring, or in the encrypted file."""
    _check_ref(ref)
    if not secret:
        raise SecurityAccessError(f'the secret for "{ref}" is empty')
    if keyring_available():
        try:
            keyring.set_password(KEYRING_SERVICE, ref, secret.hex())
        except keyring.errors.KeyringError as exc:
            raise SecurityAccessError(
                f'cannot store secret "{ref}" in the OS keyring: {type(exc).__name__}',
                hint="unlock the keyring or configure a keyring backend",
            ) from None
        return
    with _lock:
        found = _file_table(for_write=True)
        assert found is not None
        path, passphrase, table = found
        table[ref] = secret.hex()
        _encrypt(path, passphrase, table)


def delete_secret(ref: str) -> None:
    """Remove the secret under `ref` (no error when absent)."""
    if keyring_available():
        try:
            keyring.delete_password(KEYRING_SERVICE, ref)
        except keyring.errors.PasswordDeleteError:
            return
        except keyring.errors.KeyringError as exc:
            raise SecurityAccessError(
                f'cannot delete secret "{ref}" from the OS keyring: {type(exc).__name__}'
            ) from None
        return
    with _lock:
        found = _file_table(for_write=False)
        if found is None or ref not in found[2]:
            return
        path, passphrase, table = found
        del table[ref]
        _encrypt(path, passphrase, table)


def list_refs() -> list[str] | None:
    """The references in the secrets file (None with an OS keyring: keyrings cannot list)."""
    if keyring_available():
        return None
    with _lock:
        found = _file_table(for_write=False)
    return sorted(found[2]) if found is not None else []
