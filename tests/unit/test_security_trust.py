"""Trust by key, not by name, and the package policy (hardware IDs, bootloaders, release counter).

Issue 14: replacing the key stored under a signer name left every version the old key signed
flashable. Now a version stores its signing key's fingerprint; replacing or revoking that key
makes it unflashable with a reason naming the key, until it is re-signed. One rule
(`trust.check_flashable`) decides for every path; the flash CLI is exercised end to end.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fota_studio.cli import main
from fota_studio.core.ea import EcuDefinition
from fota_studio.core.package import (
    build_package,
    generate_signing_key,
    key_fingerprint,
    load_signing_key,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore, VersionInfo
from fota_studio.infra.trust import NotFlashableError, TrustStore, check_flashable
from fota_studio.infra.workspace import Workspace
from tests.fakes.packages import vcu_flash_args, vcu_image_hex, vcu_package, vcu_repository
from tests.helpers.cli import cli

VERSION = "7.0.0"


@pytest.fixture
def ws_dir(seeded_copy: Path) -> Path:
    """This test's copy of the seeded demo workspace."""
    return seeded_copy


@contextlib.contextmanager
def _release_trusted(ws_dir: Path, public_pem: bytes) -> Iterator[tuple[Workspace, TrustStore]]:
    """The workspace, open, with `public_pem` trusted under the name "release"."""
    with Workspace.open(ws_dir) as ws:
        trust = TrustStore(ws)
        trust.add("release", public_pem)
        yield ws, trust


def _import(ws: Workspace, data: bytes) -> VersionInfo:
    return RepositoryStore(ws).import_bytes(None, None, None, data, source_name="p.zip").version


def _signed_version_imported(ws_dir: Path) -> tuple[VersionInfo, bytes, bytes]:
    """VERSION imported, signed by a new key trusted as "release"; (the version, the key's
    private and public PEM)."""
    private_pem, public_pem = generate_signing_key()
    with _release_trusted(ws_dir, public_pem) as (ws, _):
        return _import(ws, vcu_package(VERSION, private_pem)), private_pem, public_pem


def _vcu_ecu(ws: Workspace) -> EcuDefinition:
    store = EaStore(ws)
    machine = store.get_machine("Unit #1001")
    assert machine.ea_name
    return store.get(machine.ea_name).ecu("VCU")


def _flash(ws_dir: Path, version: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(ws_dir, *vcu_flash_args(version))
    return code, capsys.readouterr().err


def test_version_stores_the_fingerprint_and_trust_lists_it(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v, _, public_pem = _signed_version_imported(ws_dir)
    fp = key_fingerprint(public_pem)
    assert v.signer_fingerprint == fp and len(fp) == 64
    capsys.readouterr()
    assert main(["--workspace", str(ws_dir), "repo", "trust", "--list"]) == 0
    out = capsys.readouterr().out
    assert fp in out and "release" in out and "trusted release" in out


def test_replacing_the_key_under_a_name_makes_what_it_signed_unflashable(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_private, old_public = generate_signing_key()
    _, new_public = generate_signing_key()
    with _release_trusted(ws_dir, old_public) as (ws, trust):
        v = _import(ws, vcu_package(VERSION, old_private))
        check_flashable(ws, v)  # trusted now
        trust.add("release", new_public)  # the same name, another key
        with pytest.raises(NotFlashableError) as info:
            check_flashable(ws, RepositoryStore(ws).get_version(v.brand, v.model, VERSION))
        assert [e.action for e in trust.events()] == ["trusted", "replaced", "trusted"]
    msg = str(info.value)
    assert f"signed by key {key_fingerprint(old_public)}" in msg
    assert "no longer trusted" in msg and "replaced under the name 'release'" in msg
    code, err = _flash(ws_dir, VERSION, capsys)
    assert code == 1 and "no longer trusted" in err


def test_revoked_key_is_recorded_and_never_trusted_again(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, private_pem, public_pem = _signed_version_imported(ws_dir)
    fp = key_fingerprint(public_pem)
    capsys.readouterr()
    code = main(["--workspace", str(ws_dir), "repo", "untrust", fp[:12], "--reason", "leaked"])
    assert code == 0, capsys.readouterr().err
    with Workspace.open(ws_dir) as ws:
        trust = TrustStore(ws)
        revoked = trust.revocation(fp)
        assert revoked is not None and revoked.reason == "leaked" and revoked.by and revoked.at
        assert fp in trust.revoked() and trust.keys() == []
        with pytest.raises(sqlite3.DatabaseError, match="append-only"), ws.transaction() as cur:
            cur.execute("DELETE FROM trust_events")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"), ws.transaction() as cur:
            cur.execute("UPDATE trust_events SET reason = ''")
        assert trust.revocation(fp) == revoked
        with pytest.raises(Exception, match="revoked"):
            trust.add("release-again", public_pem)
        # a package signed by the revoked key cannot even be imported
        with pytest.raises(Exception, match="not a trusted"):
            _import(ws, vcu_package("7.0.1", private_pem))
    code, err = _flash(ws_dir, VERSION, capsys)
    assert code == 1
    assert f"signed by key {fp} (release) which is no longer trusted: revoked" in err
    assert "leaked" in err


def test_re_signed_version_flashes_again(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old_private, old_public = generate_signing_key()
    new_private, new_public = generate_signing_key()
    with _release_trusted(ws_dir, old_public) as (ws, trust):
        trust.set_require_signed(True)
        _import(ws, vcu_package(VERSION, old_private))
        trust.remove("release", reason="rotated")
        trust.add("release-2026", new_public)
    key_file = ws_dir.parent / "new.pem"
    key_file.write_bytes(new_private)
    code, err = _flash(ws_dir, VERSION, capsys)
    assert code == 1 and "no longer trusted" in err
    out = ws_dir.parent / "resigned.zip"
    brand, model = vcu_repository()
    argv = ["--workspace", str(ws_dir), "repo", "export", "--brand", brand, "--model", model]
    argv += ["--version", VERSION, "--format", "package", "--output", str(out)]
    assert main([*argv, "--sign-key", str(key_file), "--signer", "release-2026"]) == 0
    assert main(["--workspace", str(ws_dir), "repo", "re-sign", str(out)]) == 0
    with Workspace.open(ws_dir) as ws:
        v = RepositoryStore(ws).get_version(brand, model, VERSION)
        assert v.signer_fingerprint == key_fingerprint(new_public)
        assert [e.action for e in TrustStore(ws).events()][-1] == "re-signed"
    code, err = _flash(ws_dir, VERSION, capsys)
    assert code == 0, err
    # a "re-signed" package with other firmware is refused
    with Workspace.open(ws_dir) as ws:
        other = build_package(
            vcu_image_hex("6.6.6"),
            "vcu.hex",
            brand=brand,
            model=model,
            version=VERSION,
            signing_key=load_signing_key(new_private),
            signer="release-2026",
        )
        with pytest.raises(Exception, match="image file differs"):
            TrustStore(ws).apply_resigned_package(other, source="x.zip")


def test_hardware_id_must_match_the_ea(ws_dir: Path) -> None:
    private_pem, public_pem = generate_signing_key()
    with _release_trusted(ws_dir, public_pem) as (ws, _):
        ecu = _vcu_ecu(ws)
        fits = _import(ws, vcu_package("7.1.0", private_pem, hardware_ids=(ecu.hardware_version,)))
        other = _import(ws, vcu_package("7.2.0", private_pem, hardware_ids=("HW 9.9", "HW 9.8")))
        assert other.hardware_ids == ("HW 9.9", "HW 9.8")
        check_flashable(ws, fits, ecu=ecu, machine="Unit #1001")
        with pytest.raises(NotFlashableError) as info:
            check_flashable(ws, other, ecu=ecu, machine="Unit #1001")
        assert "fits hardware HW 9.9, HW 9.8" in str(info.value)
        assert repr(ecu.hardware_version) in str(info.value)


def test_bootloader_version_must_be_listed(ws_dir: Path) -> None:
    private_pem, public_pem = generate_signing_key()
    with _release_trusted(ws_dir, public_pem) as (ws, _):
        v = _import(ws, vcu_package("7.1.0", private_pem, bootloader_versions=("BL 1.2",)))
        check_flashable(ws, v, bootloader_version="BL 1.2")
        with pytest.raises(NotFlashableError, match=r"fits bootloader BL 1\.2"):
            check_flashable(ws, v, bootloader_version="BL 1.0")


def test_downgrade_below_the_installed_release_counter_needs_a_signed_allowance(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private_pem, public_pem = generate_signing_key()
    mallory_private, _ = generate_signing_key()
    with _release_trusted(ws_dir, public_pem) as (ws, trust):
        ecu = _vcu_ecu(ws)
        _import(ws, vcu_package("8.0.0", private_pem, release_counter=5))
        old = _import(ws, vcu_package("7.5.0", private_pem, release_counter=4))
        kw = {"ecu": ecu, "machine": "Unit #1001"}
        check_flashable(ws, old, **kw, installed_version=None)  # nothing known installed
        with pytest.raises(NotFlashableError, match="release counter 4, below the installed"):
            check_flashable(ws, old, **kw, installed_version="8.0.0")
        # an allowance signed by an untrusted key is refused, and a forged row is ignored
        with pytest.raises(Exception, match="not a trusted key"):
            trust.add_downgrade_allowance(
                load_signing_key(mallory_private), brand=old.brand, model=old.model, version="7.5.0"
            )
        trust.add_downgrade_allowance(
            load_signing_key(private_pem),
            brand=old.brand,
            model=old.model,
            version="7.5.0",
            machine="Unit #1002",
        )
        with pytest.raises(NotFlashableError):  # allowed on another machine only
            check_flashable(ws, old, **kw, installed_version="8.0.0")
        with ws.transaction() as cur:  # tampering with the stored statement voids it
            cur.execute(
                "UPDATE downgrade_allowances SET statement = "
                "replace(statement, 'Unit #1002', 'Unit #1001')"
            )
        with pytest.raises(NotFlashableError):
            check_flashable(ws, old, **kw, installed_version="8.0.0")
    key_file = ws_dir.parent / "release.pem"
    key_file.write_bytes(private_pem)
    brand, model = vcu_repository()
    capsys.readouterr()
    code = main(
        [
            "--workspace",
            str(ws_dir),
            "repo",
            "allow-downgrade",
            "--brand",
            brand,
            "--model",
            model,
            "--version",
            "7.5.0",
            "--machine",
            "Unit #1001",
            "--key",
            str(key_file),
        ]
    )
    assert code == 0, capsys.readouterr().err
    with Workspace.open(ws_dir) as ws:
        check_flashable(ws, old, **kw, installed_version="8.0.0")
        # revoking the key that signed the allowance voids it (and the version itself)
        trust = TrustStore(ws)
        trust.remove("release")
        with pytest.raises(NotFlashableError, match="no longer trusted"):
            check_flashable(ws, old, **kw, installed_version="8.0.0")


def test_flash_cli_refuses_a_downgrade(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private_pem, public_pem = generate_signing_key()
    with _release_trusted(ws_dir, public_pem) as (ws, _):
        _import(ws, vcu_package("8.0.0", private_pem, release_counter=5))
        _import(ws, vcu_package("7.5.0", private_pem, release_counter=4))
        EaStore(ws).set_installed("Unit #1001", "VCU", "8.0.0", source="test")
    code, err = _flash(ws_dir, "7.5.0", capsys)
    assert code == 1 and "downgrade allowance" in err


def test_version_signed_before_fingerprints_were_kept_needs_a_re_signature(ws_dir: Path) -> None:
    private_pem, public_pem = generate_signing_key()
    with _release_trusted(ws_dir, public_pem) as (ws, trust):
        v = _import(ws, vcu_package(VERSION, private_pem))
        with ws.transaction() as cur:  # what a schema-3 workspace holds after the migration
            cur.execute("UPDATE versions SET signer_fingerprint = '' WHERE id = ?", (v.id,))
        legacy = RepositoryStore(ws).get_version(v.brand, v.model, VERSION)
        check_flashable(ws, legacy)  # without the policy it is as good as unsigned
        trust.set_require_signed(True)
        with pytest.raises(NotFlashableError, match="before signing keys were pinned"):
            check_flashable(ws, legacy)
        trust.apply_resigned_package(vcu_package(VERSION, private_pem), source="again.zip")
        check_flashable(ws, RepositoryStore(ws).get_version(v.brand, v.model, VERSION))
