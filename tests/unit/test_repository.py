"""RepositoryStore on a real workspace: imports of every format, immutability, policy, verify.

Input files are written with bincopy (a third-party writer), so the tests do not only check our
loader against our own exporter.
"""

from __future__ import annotations

import getpass
import hashlib
import zlib
from collections.abc import Iterator
from pathlib import Path

import bincopy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fota_studio.core import firmware, package
from fota_studio.core.errors import (
    FotaError,
    ImageError,
    PackageError,
    RepositoryError,
    WorkspaceError,
)
from fota_studio.core.versions import version_key
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace

BRAND = "TTControl"
MODEL = "TTC 2390"
SEG_A = (0x0001_0000, bytes(range(256)) * 8)  # 2 KiB
SEG_B = (0x0001_4000, b"\x12\x34\x56\x78" * 300)  # 1200 B after a gap


def _image_data(segments: list[tuple[int, bytes]]) -> bytes:
    return b"".join(d for _, d in sorted(segments))


def _hex(segments: list[tuple[int, bytes]]) -> bytes:
    bf = bincopy.BinFile()
    for addr, data in segments:
        bf.add_binary(data, address=addr)
    return bf.as_ihex().encode()


def _srec(segments: list[tuple[int, bytes]]) -> bytes:
    bf = bincopy.BinFile()
    for addr, data in segments:
        bf.add_binary(data, address=addr)
    # bincopy writes the S7 termination record only when a start address is set; our loader
    # (rightly) rejects an S-record file without one as possibly truncated.
    bf.execution_start_address = segments[0][0]
    return bf.as_srec().encode()


def _private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _package(
    segment: tuple[int, bytes],
    version: str,
    private_pem: bytes | None = None,
    signer: str = "",
    image_name: str = "a.hex",
) -> bytes:
    """A firmware package of `segment` (Intel HEX) for BRAND / MODEL `version`, signed with
    `private_pem` by `signer` when a key is given."""
    key = _private_key(private_pem) if private_pem else None
    return package.build_package(
        _hex([segment]),
        image_name,
        brand=BRAND,
        model=MODEL,
        version=version,
        signing_key=key,
        signer=signer,
    )


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    with Workspace.open(workspace_dir) as w:
        yield w


@pytest.fixture
def store(ws: Workspace) -> RepositoryStore:
    s = RepositoryStore(ws)
    s.create_repository(BRAND, MODEL, "VCU")
    return s


def _state(ws: Workspace) -> tuple[int, int, list[str]]:
    """(repositories, versions, blobs): what an aborted import must leave unchanged."""
    repos = ws.read("SELECT COUNT(*) FROM repositories")[0][0]
    versions = ws.read("SELECT COUNT(*) FROM versions")[0][0]
    return repos, versions, sorted(ws.blobs.all_hashes())


# -- repositories ----------------------------------------------------------------------------


def test_create_list_and_get_repositories(ws: Workspace) -> None:
    store = RepositoryStore(ws)
    store.create_repository("Danfoss", "PLUS+1 MC050-112")
    store.create_repository("Bosch Rexroth", "BODAS RC5-6/40", "hydraulics")
    store.create_repository("Bosch Rexroth", "BODAS RC28", "")
    repos = store.list_repositories()
    assert [(r.brand, r.model) for r in repos] == [
        ("Bosch Rexroth", "BODAS RC28"),
        ("Bosch Rexroth", "BODAS RC5-6/40"),
        ("Danfoss", "PLUS+1 MC050-112"),
    ]
    assert all(r.version_count == 0 for r in repos)
    info = store.get_repository("Bosch Rexroth", "BODAS RC5-6/40")
    assert info.description == "hydraulics"
    assert info.created_at.endswith("+00:00")


def test_duplicate_repository_and_unknown_repository(store: RepositoryStore) -> None:
    with pytest.raises(RepositoryError, match="already exists"):
        store.create_repository(BRAND, MODEL)
    with pytest.raises(RepositoryError, match=r'no Software Repository "Acme / X1".*TTC 2390'):
        store.get_repository("Acme", "X1")
    with pytest.raises(RepositoryError, match="brand is empty"):
        store.create_repository("  ", "M")


# -- imports ---------------------------------------------------------------------------------


def test_import_hex_records_metadata(store: RepositoryStore, ws: Workspace, tmp_path: Path) -> None:
    segments = [SEG_A, SEG_B]
    path = tmp_path / "app.hex"
    path.write_bytes(_hex(segments))
    seen: list[float] = []
    result = store.import_file(
        BRAND, MODEL, "1.0.0", path, notes="first release", progress=seen.append
    )
    v = result.version
    data = _image_data(segments)
    assert result.warnings == ()
    assert (v.brand, v.model, v.version, v.notes) == (BRAND, MODEL, "1.0.0", "first release")
    assert v.source_format == "hex" and v.source_name == "app.hex"
    assert v.segments == ((SEG_A[0], len(SEG_A[1])), (SEG_B[0], len(SEG_B[1])))
    assert v.gaps() == [(SEG_A[0] + len(SEG_A[1]), SEG_B[0])]
    assert v.size == len(data)
    assert v.sha256 == hashlib.sha256(data).hexdigest()
    assert v.crc32 == zlib.crc32(data)
    assert v.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert v.imported_by == getpass.getuser()
    assert v.signature_state == "unsigned" and not v.retired
    assert ws.blobs.verify(v.file_sha256)
    assert store.read_file_bytes(v) == path.read_bytes()
    assert store.load_image(v).data_bytes() == data
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert store.get_version(BRAND, MODEL, "1.0.0") == v
    assert store.get_repository(BRAND, MODEL).version_count == 1


def test_import_srec_and_bin_with_base(store: RepositoryStore, tmp_path: Path) -> None:
    s19 = tmp_path / "app.s19"
    s19.write_bytes(_srec([SEG_A, SEG_B]))
    v1 = store.import_file(BRAND, MODEL, "1.1.0", s19, imported_by="alice").version
    assert v1.source_format == "srec" and v1.imported_by == "alice"
    assert v1.sha256 == hashlib.sha256(_image_data([SEG_A, SEG_B])).hexdigest()

    raw = bytes(range(200)) * 10
    binf = tmp_path / "app.bin"
    binf.write_bytes(raw)
    v2 = store.import_file(BRAND, MODEL, "1.2.0", binf, base_address=0x2_0000).version
    assert v2.source_format == "bin"
    assert v2.segments == ((0x2_0000, len(raw)),)
    assert v2.base_address == 0x2_0000
    image = store.load_image(v2)
    assert image.min_address == 0x2_0000 and image.data_bytes() == raw


def test_bin_without_base_address_is_refused(store: RepositoryStore, ws: Workspace) -> None:
    before = _state(ws)
    with pytest.raises(FotaError):
        store.import_bytes(BRAND, MODEL, "1.0.0", b"\x00" * 64, source_name="app.bin", fmt="bin")
    assert _state(ws) == before


def test_import_unsigned_and_signed_packages(store: RepositoryStore) -> None:
    hex_file = _hex([SEG_A])
    unsigned = package.build_package(
        hex_file, "app.hex", brand=BRAND, model=MODEL, version="2.0.0", release_notes="pkg notes"
    )
    v = store.import_bytes(None, None, None, unsigned, source_name="app-2.0.0.zip").version
    assert (v.brand, v.model, v.version) == (BRAND, MODEL, "2.0.0")
    assert v.notes == "pkg notes" and v.signature_state == "unsigned" and v.signer == ""
    assert v.source_format == "hex"
    assert v.file_sha256 == hashlib.sha256(hex_file).hexdigest()

    private_pem, public_pem = package.generate_signing_key()
    store.add_trusted_key("release-lab", public_pem)
    assert store.trusted_keys()["release-lab"].strip() == public_pem.strip()
    signed = _package(SEG_B, "2.1.0", private_pem, "release-lab", image_name="app.hex")
    v2 = store.import_bytes(BRAND, MODEL, "2.1.0", signed, source_name="app-2.1.0.zip").version
    assert v2.signature_state == "valid" and v2.signer == "release-lab"
    assert store.load_image(v2).data_bytes() == SEG_B[1]


def test_package_must_match_given_brand_model_version(
    store: RepositoryStore, ws: Workspace
) -> None:
    pkg = _package(SEG_A, "3.0.0")
    store.create_repository(BRAND, "TTC 580")
    before = _state(ws)
    with pytest.raises(RepositoryError, match=r"package is for version '3.0.0', not '3.0.1'"):
        store.import_bytes(BRAND, MODEL, "3.0.1", pkg, source_name="p.zip")
    with pytest.raises(RepositoryError, match="package is for model"):
        store.import_bytes(BRAND, "TTC 580", None, pkg, source_name="p.zip")
    assert _state(ws) == before


def test_duplicate_version_is_refused(store: RepositoryStore, ws: Workspace) -> None:
    store.import_bytes(BRAND, MODEL, "1.2.0", _hex([SEG_A]), source_name="a.hex")
    before = _state(ws)
    with pytest.raises(RepositoryError) as err:
        store.import_bytes(BRAND, MODEL, "1.2.0", _hex([SEG_B]), source_name="b.hex")
    assert str(err.value) == (
        "version 1.2.0 already exists in TTControl / TTC 2390; versions are immutable — "
        "import under a new version or retire the old one"
    )
    assert _state(ws) == before


def test_same_image_bytes_give_a_warning(store: RepositoryStore) -> None:
    store.import_bytes(BRAND, MODEL, "1.0.0", _hex([SEG_A, SEG_B]), source_name="a.hex")
    # Same image, different file format: still the same firmware.
    result = store.import_bytes(BRAND, MODEL, "1.0.1", _srec([SEG_A, SEG_B]), source_name="a.s19")
    assert len(result.warnings) == 1
    assert "identical to version 1.0.0" in result.warnings[0]
    other = store.import_bytes(BRAND, MODEL, "1.0.2", _hex([SEG_A]), source_name="c.hex")
    assert other.warnings == ()


def test_unknown_repository_needs_create_flag(ws: Workspace) -> None:
    store = RepositoryStore(ws)
    with pytest.raises(RepositoryError, match="no Software Repository"):
        store.import_bytes("Acme", "X1", "1.0.0", _hex([SEG_A]), source_name="a.hex")
    assert _state(ws) == (0, 0, [])
    v = store.import_bytes(
        "Acme", "X1", "1.0.0", _hex([SEG_A]), source_name="a.hex", create_repository=True
    ).version
    assert store.get_repository("Acme", "X1").version_count == 1 and v.version == "1.0.0"


def test_bad_file_stores_nothing(store: RepositoryStore, ws: Workspace, tmp_path: Path) -> None:
    lines = _hex([SEG_A]).decode().splitlines()
    # Break the checksum of the third record.
    bad = lines[2][:-2] + ("00" if lines[2][-2:] != "00" else "01")
    path = tmp_path / "bad.hex"
    path.write_text("\n".join([*lines[:2], bad, *lines[3:]]) + "\n")
    before = _state(ws)
    with pytest.raises(ImageError) as err:
        store.import_file(BRAND, MODEL, "9.9.9", path)
    assert str(err.value).startswith("bad.hex:3:")
    with pytest.raises(ImageError):
        store.import_file("New", "Repo", "1.0.0", path, create_repository=True)
    assert _state(ws) == before
    with pytest.raises(RepositoryError, match="no such file"):
        store.import_file(BRAND, MODEL, "9.9.9", tmp_path / "missing.hex")


# -- lifecycle, ordering, export -------------------------------------------------------------


def test_retire(store: RepositoryStore) -> None:
    store.import_bytes(BRAND, MODEL, "1.0.0", _hex([SEG_A]), source_name="a.hex")
    store.import_bytes(BRAND, MODEL, "1.1.0", _hex([SEG_B]), source_name="b.hex")
    v = store.retire(BRAND, MODEL, "1.0.0")
    assert v.retired
    assert store.retire(BRAND, MODEL, "1.0.0").retired  # idempotent
    assert [x.version for x in store.list_versions(BRAND, MODEL)] == ["1.0.0", "1.1.0"]
    assert [x.version for x in store.list_versions(BRAND, MODEL, include_retired=False)] == [
        "1.1.0"
    ]
    with pytest.raises(RepositoryError, match=r'no version "7.0.0".*known: 1.0.0, 1.1.0'):
        store.retire(BRAND, MODEL, "7.0.0")


def test_semver_ordering(store: RepositoryStore) -> None:
    order = ["1.10.0", "nightly-10", "1.2.0", "2.0.0", "1.2.0-rc.1", "nightly-9", "1.2.0-alpha"]
    for i, version in enumerate(order):
        seg = (0x1_0000, bytes([i]) * 64)
        store.import_bytes(BRAND, MODEL, version, _hex([seg]), source_name=f"{i}.hex")
    assert [v.version for v in store.list_versions(BRAND, MODEL)] == [
        "1.2.0-alpha",
        "1.2.0-rc.1",
        "1.2.0",
        "1.10.0",
        "2.0.0",
        "nightly-9",
        "nightly-10",
    ]
    latest = store.latest_version(BRAND, MODEL)
    assert latest is not None and latest.version == "nightly-10"
    assert version_key("v1.3") > version_key("1.2.9")


def test_export_round_trips(store: RepositoryStore, tmp_path: Path) -> None:
    hex_file = _hex([SEG_A, SEG_B])
    v = store.import_bytes(BRAND, MODEL, "1.0.0", hex_file, source_name="a.hex").version
    same = store.export(BRAND, MODEL, "1.0.0", "hex", tmp_path / "out.hex")
    assert same.read_bytes() == hex_file  # own format: the original file, byte for byte
    for fmt, name in (("s19", "out.s19"), ("bin", "out.bin")):
        out = store.export(BRAND, MODEL, "1.0.0", fmt, tmp_path / name)
        image, _ = firmware.load_image_file(out, base_address=SEG_A[0] if fmt == "bin" else None)
        if fmt == "bin":  # the gap is filled with 0xFF in a flat binary
            gap = SEG_B[0] - SEG_A[0] - len(SEG_A[1])
            assert image.data_bytes() == SEG_A[1] + b"\xff" * gap + SEG_B[1]
        else:
            assert image.sha256() == v.sha256
    pkg = store.export(BRAND, MODEL, "1.0.0", "package", tmp_path / "out.zip")
    loaded = package.read_package(
        pkg.read_bytes(), source="out.zip", trusted_keys={}, require_signature=False
    )
    assert loaded.manifest.version == "1.0.0" and loaded.image.sha256() == v.sha256
    assert loaded.signature_state == "unsigned"


# -- verify and policy -----------------------------------------------------------------------


def test_verify_detects_corrupted_and_missing_blobs(store: RepositoryStore, ws: Workspace) -> None:
    a = store.import_bytes(BRAND, MODEL, "1.0.0", _hex([SEG_A]), source_name="a.hex").version
    b = store.import_bytes(BRAND, MODEL, "1.1.0", _hex([SEG_B]), source_name="b.hex").version
    assert store.verify() == []
    path_a = ws.blobs.path(a.file_sha256)
    raw = bytearray(path_a.read_bytes())
    i = raw.index(b"\n") + 12  # a data digit of the second record
    raw[i] = ord("0") if raw[i] != ord("0") else ord("1")
    path_a.write_bytes(bytes(raw))
    ws.blobs.path(b.file_sha256).unlink()
    problems = store.verify()
    assert len(problems) == 2
    assert "TTC 2390 1.0.0" in problems[0] and "corrupted" in problems[0]
    assert "TTC 2390 1.1.0" in problems[1] and "missing" in problems[1]
    with pytest.raises(WorkspaceError, match="corrupted"):
        store.load_image(a)
    with pytest.raises(WorkspaceError, match="missing"):
        store.load_image(b)


def test_require_signed_policy(store: RepositoryStore, ws: Workspace) -> None:
    assert store.require_signed_packages is False
    store.require_signed_packages = True
    assert RepositoryStore(ws).require_signed_packages is True
    before = _state(ws)
    with pytest.raises(RepositoryError, match="accepts only signed firmware packages"):
        store.import_bytes(BRAND, MODEL, "1.0.0", _hex([SEG_A]), source_name="a.hex")
    unsigned = _package(SEG_A, "1.0.0")
    with pytest.raises(PackageError):
        store.import_bytes(BRAND, MODEL, "1.0.0", unsigned, source_name="u.zip")
    private_pem, public_pem = package.generate_signing_key()
    signed = _package(SEG_A, "1.0.0", private_pem, "lab")
    with pytest.raises(PackageError):  # signed, but by nobody this workspace trusts
        store.import_bytes(BRAND, MODEL, "1.0.0", signed, source_name="s.zip")
    assert _state(ws) == before
    store.add_trusted_key("lab", public_pem)
    v = store.import_bytes(BRAND, MODEL, "1.0.0", signed, source_name="s.zip").version
    assert v.signature_state == "valid" and v.signer == "lab"


def test_trusted_key_must_be_ed25519_pem(store: RepositoryStore) -> None:
    with pytest.raises(RepositoryError, match="not a PEM public key"):
        store.add_trusted_key("x", b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
