"""Seed/key secrets live only in the OS keyring (or the encrypted secrets file where there is
none): a planted secret is what a real flash uses (no constant in the EA), and then appears in
no artefact — the log file, the flash record, the workspace database and blobs after a demo and a
CLI flash, the BLF bus log, exported EA YAML and reports — in raw, hex or base64 form."""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path

import pytest

from fota_studio.engine.records import save_flash_record
from fota_studio.infra import secrets
from fota_studio.infra.logsetup import LOG_FORMAT
from fota_studio.infra.workspace import Workspace
from tests.fakes import sim_rig
from tests.fakes.memory_keyring import MemoryKeyring

REF = "vcu-programming"


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
    ecu = sim_rig.fast_ecu()
    for level in ecu.uds.security_levels:
        level.secret_ref = REF
        level.params = {}  # no constant anywhere: the flash works only with the keyring secret
    log_file = tmp_path / "fota-studio.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    channel = sim_rig.new_channel()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION)
    blf = tmp_path / "session.blf"
    try:
        options = sim_rig.fast_options(secrets={REF: secret})
        with sim_rig.sim_ecu(ecu, channel, tmp_path / "sim", options=options):
            result, _ = sim_rig.flash(ecu, channel, image, buslog_path=blf)
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


def _grep(secret: bytes, artefacts: dict[str, bytes]) -> None:
    for name, data in artefacts.items():
        for form in _forms(secret):
            assert form not in data, f"the secret leaked into the {name}"


def test_workspace_holds_no_secret_after_a_demo_and_a_cli_flash(
    memory_keyring: MemoryKeyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fota_studio.cli import main
    from fota_studio.core.ea_format import dump_ea_yaml, save_ea_file
    from fota_studio.infra.ea_store import EaStore

    ws_dir = tmp_path / "ws"
    base = ["--log-level", "WARNING", "--workspace", str(ws_dir)]
    assert main([*base, "demo", "--headless"]) == 0
    secret = os.urandom(8)
    secrets.set_secret(REF, secret)
    with Workspace.open(ws_dir) as ws:
        store = EaStore(ws)
        machine = store.get_machine("Unit #1001")
        assert machine.ea_name
        ea = store.get(machine.ea_name)
    for level in ea.ecu("VCU").uds.security_levels:
        level.secret_ref = REF
        level.params = {}
    ea_file = tmp_path / "ea.yaml"
    save_ea_file(ea, ea_file)
    assert main([*base, "ea", "import", "--replace", str(ea_file)]) == 0
    flash = ["flash", "--machine", "Unit #1001", "--ecu", "VCU", "--version", "3.2.1"]
    assert main([*base, *flash, "--simulate", "--no-progress"]) == 0, capsys.readouterr().err
    exported = tmp_path / "export.yaml"
    assert main([*base, "ea", "export", ea.name, "--output", str(exported)]) == 0
    report = tmp_path / "report.html"
    assert main([*base, "records", "export", "1", "--output", str(report)]) == 0
    out, err = capsys.readouterr()
    artefacts = {"CLI output": (out + err).encode(), "exported EA": exported.read_bytes()}
    artefacts["report"] = report.read_bytes()
    artefacts["EA dump"] = dump_ea_yaml(ea).encode()
    for path in ws_dir.rglob("*"):
        if path.is_file():
            artefacts[f"workspace {path.relative_to(ws_dir)}"] = path.read_bytes()
    assert sum(name.startswith("workspace blobs") for name in artefacts) >= 3
    _grep(secret, artefacts)


def test_encrypted_file_store_without_a_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring.backends.fail

    from fota_studio.core.errors import SecurityAccessError

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    path = tmp_path / "cfg" / "secrets.enc"
    monkeypatch.setenv(secrets.SECRETS_FILE_ENV, str(path))
    monkeypatch.delenv(secrets.PASSPHRASE_ENV, raising=False)
    secret = os.urandom(16)
    try:
        assert not secrets.keyring_available()
        assert "encrypted secrets file" in secrets.backend_description()
        assert secrets.get_secret(REF) is None  # no file yet: nothing stored
        with pytest.raises(SecurityAccessError, match="locked"):
            secrets.set_secret(REF, secret)
        secrets.unlock_file_store("file passphrase 1")
        secrets.set_secret(REF, secret)
        secrets.set_secret("other", b"\x01\x02")
        assert secrets.require_secret(REF) == secret
        assert secrets.list_refs() == ["other", REF]
        assert path.stat().st_mode & 0o077 == 0  # readable by the owner only
        _grep(secret, {"secrets file": path.read_bytes()})
        secrets.lock_file_store()
        with pytest.raises(SecurityAccessError, match="locked") as info:
            secrets.get_secret(REF)
        assert secret.hex() not in str(info.value)
        with pytest.raises(SecurityAccessError, match="wrong passphrase"):
            secrets.unlock_file_store("not the passphrase")
        monkeypatch.setenv(secrets.PASSPHRASE_ENV, "file passphrase 1")
        assert secrets.get_secret(REF) == secret
        secrets.delete_secret(REF)
        assert secrets.get_secret(REF) is None and secrets.list_refs() == ["other"]
        # the demo references are published values and cannot be overwritten
        with pytest.raises(SecurityAccessError, match="demo"):
            secrets.set_secret("fota-studio-demo/programming", b"\x00")
    finally:
        secrets.lock_file_store()
        keyring.set_keyring(previous)


def test_secrets_cli_set_status_delete_and_operator_mode(
    memory_keyring: MemoryKeyring,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from fota_studio.cli import main
    from fota_studio.core.ea_format import save_ea_file
    from fota_studio.infra.access import AccessControl
    from fota_studio.infra.ea_store import EaStore

    ws_dir = tmp_path / "ws"
    base = ["--log-level", "WARNING", "--workspace", str(ws_dir)]
    assert main([*base, "repo", "list"]) == 0
    with Workspace.open(ws_dir) as ws:
        ea = EaStore(ws).get(EaStore(ws).list()[0].name)
    ea.ecus[0].uds.security_levels[1].secret_ref = REF
    ea.ecus[0].uds.security_levels[1].params = {}
    save_ea_file(ea, tmp_path / "ea.yaml")
    assert main([*base, "ea", "import", "--replace", str(tmp_path / "ea.yaml")]) == 0
    capsys.readouterr()
    assert main([*base, "secrets", "status"]) == 1  # REF is missing
    out = capsys.readouterr().out
    assert re.search(rf"{REF} +MISSING", out) and "published demo value" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("0badc0ffee\n"))
    assert main([*base, "secrets", "set", REF, "--value-stdin"]) == 0
    assert secrets.get_secret(REF) == bytes.fromhex("0badc0ffee")
    capsys.readouterr()
    assert main([*base, "secrets", "status"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{REF} +stored", out) and "0badc0ffee" not in out.lower()
    with Workspace.open(ws_dir) as ws:
        AccessControl(ws).set_passphrase("admin passphrase")
    monkeypatch.setattr("sys.stdin", io.StringIO("1111\n"))
    assert main([*base, "secrets", "set", REF, "--value-stdin"]) == 2
    assert main([*base, "secrets", "delete", REF]) == 2
    assert "operator mode: secrets set/delete" in capsys.readouterr().err
    assert secrets.get_secret(REF) == bytes.fromhex("0badc0ffee")
    monkeypatch.setattr("sys.stdin", io.StringIO("admin passphrase\n"))
    assert main([*base, "secrets", "delete", REF, "--passphrase-stdin"]) == 0
    assert secrets.get_secret(REF) is None


def test_validator_flags_a_secret_written_into_the_ea() -> None:
    from fota_studio.core.ea_validate import Severity, validate
    from fota_studio.demo.catalog import demo_architecture

    ea = demo_architecture()
    assert not [p for p in validate(ea) if "secret" in p.message]  # the demo names refs only
    level = ea.ecus[0].uds.security_levels[0]
    level.secret_ref = None
    level.params = {"constant": 0x12345678}
    flagged = [p for p in validate(ea) if p.path.endswith("security_levels[0].params.constant")]
    assert flagged and flagged[0].severity is Severity.WARNING
    assert "secrets set" in flagged[0].message
