"""Seed/key secrets live only in the OS keyring: a planted secret is used by a real flash, and
then appears in no artefact — the log file, the flash record, the workspace database and blobs,
the BLF bus log and the CLI's JSON export — in raw, hex or base64 form."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest

from fota_studio.engine.records import save_flash_record
from fota_studio.infra import secrets
from fota_studio.infra.logsetup import LOG_FORMAT
from fota_studio.infra.workspace import Workspace
from reliability import harness

REF = "vcu-programming"


class MemoryKeyring(keyring.backend.KeyringBackend):  # type: ignore[misc]
    """An in-process keyring so the test never touches the user's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


def _forms(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        secret.hex(" ").encode(),
    ]


def test_planted_secret_never_reaches_an_artefact(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    secret = os.urandom(16)
    secrets.set_secret(REF, secret)
    assert memory_keyring.store  # stored in the keyring, as hex text
    ecu = harness.fast_ecu()
    for level in ecu.uds.security_levels:
        level.secret_ref = REF
    log_file = tmp_path / "fota-studio.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    channel = harness.new_channel()
    image = harness.make_image(harness.TARGET_VERSION)
    blf = tmp_path / "session.blf"
    try:
        with harness.sim_ecu(ecu, channel, tmp_path / "sim"):
            result, _ = harness.flash(ecu, channel, image, buslog_path=blf)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    assert result.ok, result.error
    blf_bytes = blf.read_bytes()
    record_json = result.record.to_json(indent=2)
    with Workspace.open(tmp_path / "ws") as ws:
        save_flash_record(ws, result.record, blf)
    artefacts = {
        "log file": log_file.read_bytes(),
        "flash record JSON": record_json.encode(),
        "BLF bus log": blf_bytes,
    }
    for path in (tmp_path / "ws").rglob("*"):
        if path.is_file():
            artefacts[f"workspace {path.name}"] = path.read_bytes()
    assert len(artefacts) >= 5
    for name, data in artefacts.items():
        for form in _forms(secret):
            assert form not in data, f"the secret leaked into the {name}"


def test_missing_secret_error_names_the_reference_only(memory_keyring: MemoryKeyring) -> None:
    secrets.set_secret("other", b"\x01\x02\x03\x04")
    with pytest.raises(Exception) as info:
        secrets.require_secret(REF)
    assert REF in str(info.value)
    assert "01020304" not in str(info.value)
