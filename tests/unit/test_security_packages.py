"""Signed-package policy end to end through the flash path, hostile packages and seed/key
plugins. With `require_signed_packages` on, an unsigned, untrusted or tampered package must never
reach an ECU: imports are refused, a corrupted stored file stops the flash before any bus is
opened. Tests marked xfail(strict) pin defects found by the reliability campaign."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.ea import SecurityLevel
from fota_studio.core.ea_format import save_ea_file
from fota_studio.core.errors import PackageError, RepositoryError, SecurityAccessError
from fota_studio.core.package import generate_signing_key
from fota_studio.demo import catalog as demo_catalog
from fota_studio.engine.records import list_flash_records
from fota_studio.engine.seedkey import SeedKeyRegistry
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace
from tests.fakes.packages import vcu_flash_args, vcu_image_hex, vcu_package, vcu_repository
from tests.helpers.cli import cli

VERSION = "7.0.0"


def _flash(ws_dir: Path, *files: str, version: str = VERSION) -> int:
    """`flash --simulate` of the VCU: `version` of Unit #1001, or the --ea/--firmware `files`."""
    if files:
        return cli(ws_dir, "flash", "--ecu", "VCU", *files, "--simulate", "--no-progress")
    return cli(ws_dir, *vcu_flash_args(version))


@pytest.fixture
def signed_ws(seeded_copy: Path) -> tuple[Path, bytes]:
    """A demo workspace requiring signatures, trusting one key; returns (dir, private PEM)."""
    ws_dir = seeded_copy
    private_pem, public_pem = generate_signing_key()
    with Workspace.open(ws_dir) as ws:
        repo = RepositoryStore(ws)
        repo.add_trusted_key("release", public_pem)
        repo.require_signed_packages = True
    return ws_dir, private_pem


def test_policy_refuses_unsigned_and_untrusted_imports(signed_ws: tuple[Path, bytes]) -> None:
    ws_dir, _private_pem = signed_ws
    brand, model = vcu_repository()
    other_private, _ = generate_signing_key()
    with Workspace.open(ws_dir) as ws:
        repo = RepositoryStore(ws)
        with pytest.raises(RepositoryError, match="only signed"):
            repo.import_bytes(brand, model, "7.0.1", vcu_image_hex("7.0.1"), source_name="a.hex")
        with pytest.raises(PackageError, match="unsigned"):
            repo.import_bytes(None, None, None, vcu_package("7.0.2", None), source_name="u.zip")
        with pytest.raises(PackageError):
            repo.import_bytes(
                None,
                None,
                None,
                vcu_package("7.0.3", other_private, "mallory"),
                source_name="m.zip",
            )
        versions = {v.version for v in repo.list_versions(brand, model)}
    assert not versions & {"7.0.1", "7.0.2", "7.0.3"}


def test_tampered_stored_package_never_reaches_the_ecu(signed_ws: tuple[Path, bytes]) -> None:
    ws_dir, private_pem = signed_ws
    with Workspace.open(ws_dir) as ws:
        repo = RepositoryStore(ws)
        repo.import_bytes(None, None, None, vcu_package(VERSION, private_pem), source_name="p.zip")
        brand, model = vcu_repository()
        v = repo.get_version(brand, model, VERSION)
        assert v.signature_state == "valid"
        blob = ws.blobs.path(v.file_sha256)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[20] ^= 0x01  # one flipped bit in the stored HEX file
    blob.write_bytes(bytes(data))
    assert _flash(ws_dir) == 1
    with Workspace.open(ws_dir) as ws:
        assert list_flash_records(ws) == []  # stopped before any bus was opened


def test_trusted_signed_package_flashes(signed_ws: tuple[Path, bytes]) -> None:
    ws_dir, private_pem = signed_ws
    with Workspace.open(ws_dir) as ws:
        RepositoryStore(ws).import_bytes(
            None, None, None, vcu_package(VERSION, private_pem), source_name="p.zip"
        )
    assert _flash(ws_dir) == 0


def test_policy_blocks_unsigned_version_in_cli_flash(signed_ws: tuple[Path, bytes]) -> None:
    ws_dir, _ = signed_ws
    # The demo versions were imported unsigned, before the policy was switched on.
    assert _flash(ws_dir, version="3.2.0") != 0


def test_policy_blocks_plain_file_in_cli_flash(
    signed_ws: tuple[Path, bytes], tmp_path: Path
) -> None:
    ws_dir, _ = signed_ws
    ea = tmp_path / "ea.yaml"
    save_ea_file(demo_catalog.demo_architecture(), ea)
    fw = tmp_path / "vcu.hex"
    fw.write_bytes(vcu_image_hex("7.1.0"))
    assert _flash(ws_dir, "--ea", str(ea), "--firmware", str(fw), "--expect-version", "7.1.0") != 0


def test_seedkey_library_outside_trusted_folder_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctypes

    loaded: list[str] = []

    def fake_cdll(name: str, *args: object, **kwargs: object) -> object:
        loaded.append(str(name))
        raise OSError("not a real library")

    monkeypatch.setattr(ctypes, "CDLL", fake_cdll)
    evil = tmp_path / "Downloads" / "evil.so"
    evil.parent.mkdir()
    evil.write_bytes(b"\x7fELF not really")
    level = SecurityLevel(name="programming", seed_subfunction=3, algorithm=f"vector:{evil}")
    with pytest.raises(SecurityAccessError) as info:
        SeedKeyRegistry(load_entry_points=False).compute_key(b"\x01\x02\x03\x04", level, "VCU")
    assert loaded == []
    assert "trusted" in str(info.value)
