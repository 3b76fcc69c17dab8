"""Seed/key secrets and signing keys in the OS keyring (never in settings files or logs).

Secrets are stored under the service name `fota-studio` with the EA's `secret_ref` as the user
name, as hex text. Errors name the reference, never the value. Any thread may call these
functions (keyring backends serialise themselves); the GUI calls them from a worker because
some backends prompt or talk to D-Bus.
"""

from __future__ import annotations

import keyring
import keyring.errors

from fota_studio.core.errors import SecurityAccessError

KEYRING_SERVICE = "fota-studio"


def get_secret(ref: str) -> bytes | None:
    """Return the secret stored under `ref`, or None when there is none."""
    try:
        value = keyring.get_password(KEYRING_SERVICE, ref)
    except keyring.errors.KeyringError as exc:
        raise SecurityAccessError(
            f'cannot read secret "{ref}" from the OS keyring: {type(exc).__name__}',
            hint="unlock the keyring or configure a keyring backend (python -m keyring diagnose)",
        ) from None
    if value is None:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return value.encode("utf-8")


def require_secret(ref: str) -> bytes:
    """Return the secret under `ref`; SecurityAccessError naming `ref` when missing."""
    secret = get_secret(ref)
    if secret is None:
        raise SecurityAccessError(
            f'secret "{ref}" is not in the OS keyring',
            hint=f"store it with `keyring set {KEYRING_SERVICE} {ref}` (hex) or in Settings",
        )
    return secret


def set_secret(ref: str, secret: bytes) -> None:
    """Store `secret` under `ref` (as hex text)."""
    try:
        keyring.set_password(KEYRING_SERVICE, ref, secret.hex())
    except keyring.errors.KeyringError as exc:
        raise SecurityAccessError(
            f'cannot store secret "{ref}" in the OS keyring: {type(exc).__name__}',
            hint="unlock the keyring or configure a keyring backend",
        ) from None


def delete_secret(ref: str) -> None:
    """Remove the secret under `ref` (no error when absent)."""
    try:
        keyring.delete_password(KEYRING_SERVICE, ref)
    except keyring.errors.PasswordDeleteError:
        return
    except keyring.errors.KeyringError as exc:
        raise SecurityAccessError(
            f'cannot delete secret "{ref}" from the OS keyring: {type(exc).__name__}'
        ) from None
