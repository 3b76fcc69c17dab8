"""Firmware packages: build/read round trip, signatures, tampering and hostile zips."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile

import pytest

from fota_studio.core import firmware as fw
from fota_studio.core import package as pkg
from fota_studio.core.errors import ImageError, PackageError
from fota_studio.core.firmware import FirmwareImage

IMAGE = FirmwareImage.from_segments(
    [(0x0800_0000, bytes(range(256)) * 40), (0x0801_0000, b"\x42" * 333)], start_address=0x0800_0001
)
HEX = fw.to_hex(IMAGE)


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return pkg.generate_signing_key()


def build(**kw: object) -> bytes:
    args: dict[str, object] = {"brand": "TTControl", "model": "TTC 2390", "version": "1.2.3"}
    args.update(kw)
    return pkg.build_package(HEX, "app.hex", **args)  # type: ignore[arg-type]


def read(
    data: bytes, trusted: dict[str, bytes] | None = None, require: bool = False
) -> pkg.LoadedPackage:
    return pkg.read_package(
        data, source="p.zip", trusted_keys=trusted or {}, require_signature=require
    )


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rezip(items: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, payload in items.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


def fail(data: bytes, match: str, **kw: object) -> None:
    with pytest.raises(PackageError, match=match) as info:
        read(data, **kw)  # type: ignore[arg-type]
    assert str(info.value).startswith("p.zip: ")


def test_unsigned_round_trip() -> None:
    data = build(release_notes="fixes", created_by="alice")
    assert pkg.is_package(data) and not pkg.is_package(HEX)
    loaded = read(data)
    assert loaded.image == IMAGE and loaded.image_file == HEX
    assert (loaded.signature_state, loaded.signer) == ("unsigned", None)
    m = loaded.manifest
    assert (m.brand, m.model, m.version, m.image, m.format) == (
        "TTControl",
        "TTC 2390",
        "1.2.3",
        "app.hex",
        "hex",
    )
    assert m.base_address is None and m.format_version == 1
    assert m.image_sha256 == IMAGE.sha256() and m.crc32 == IMAGE.crc32()
    assert m.size == IMAGE.total_size
    assert m.segments == ((0x0800_0000, 10240), (0x0801_0000, 333))
    assert (m.release_notes, m.created_by) == ("fixes", "alice")
    assert m.created_at.endswith("+00:00")
    assert pkg.PackageManifest.from_json(m.to_json()) == m
    assert set(members(data)) == {"manifest.json", "app.hex"}


def test_binary_package_keeps_base_address() -> None:
    data = pkg.build_package(
        b"\x01\x02\x03", "app.bin", brand="B", model="M", version="1", base_address=0x4000
    )
    loaded = read(data)
    assert loaded.manifest.format == "bin" and loaded.manifest.base_address == 0x4000
    assert loaded.image.segments[0].address == 0x4000


def test_build_rejects_bad_input() -> None:
    with pytest.raises(ImageError, match=r"^bad\.hex:\d+: checksum mismatch"):
        pkg.build_package(
            HEX.replace(b"FF\n", b"FE\n", 1), "bad.hex", brand="B", model="M", version="1"
        )
    with pytest.raises(PackageError, match="path traversal"):
        pkg.build_package(HEX, "../app.hex", brand="B", model="M", version="1")
    with pytest.raises(PackageError, match="is reserved"):
        pkg.build_package(HEX, "manifest.json", brand="B", model="M", version="1")
    private, _ = pkg.generate_signing_key()
    with pytest.raises(PackageError, match="needs a signer name"):
        build(signing_key=pkg.load_signing_key(private))


def test_signed_round_trip(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    data = build(signing_key=pkg.load_signing_key(private), signer="oem-release")
    loaded = read(data, {"oem-release": public}, require=True)
    assert (loaded.signature_state, loaded.signer) == ("valid", "oem-release")
    sig = json.loads(members(data)["signature.json"])
    assert sig["algorithm"] == "ed25519" and sig["signer"] == "oem-release"


def test_unsigned_when_signature_required() -> None:
    fail(build(), "unsigned, but a signature is required", require=True)


def test_untrusted_signer(keys: tuple[bytes, bytes]) -> None:
    private, _ = keys
    _, other_public = pkg.generate_signing_key()
    data = build(signing_key=pkg.load_signing_key(private), signer="mallory")
    fail(data, "signed by 'mallory', who is not a trusted signer", trusted={"oem": other_public})
    # the right name with the wrong key: trust is by key, so the name does not help
    data = build(signing_key=pkg.load_signing_key(private), signer="oem")
    fail(data, "key [0-9a-f]{64} is not a trusted key", trusted={"oem": other_public})
    # a legacy signature without keyid is checked against the key trusted under its name
    items = members(data)
    sig = json.loads(items["signature.json"])
    del sig["keyid"]
    items["signature.json"] = json.dumps(sig).encode()
    fail(rezip(items), "bad signature by 'oem'", trusted={"oem": other_public})


def test_tampered_manifest_breaks_signature(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    items = members(build(signing_key=pkg.load_signing_key(private), signer="oem"))
    items["manifest.json"] = items["manifest.json"].replace(b"1.2.3", b"1.2.4")
    fail(rezip(items), "bad signature by 'oem'", trusted={"oem": public})


def test_tampered_signature(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    items = members(build(signing_key=pkg.load_signing_key(private), signer="oem"))
    sig = json.loads(items["signature.json"])
    raw = bytearray(base64.b64decode(sig["signature"]))
    raw[0] ^= 1
    sig["signature"] = base64.b64encode(bytes(raw)).decode()
    items["signature.json"] = json.dumps(sig).encode()
    fail(rezip(items), "bad signature", trusted={"oem": public})
    sig["signature"] = "not base64!"
    items["signature.json"] = json.dumps(sig).encode()
    fail(rezip(items), "bad signature", trusted={"oem": public})


def test_tampered_image_detected_by_hash(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    items = members(build(signing_key=pkg.load_signing_key(private), signer="oem"))
    items["app.hex"] = fw.to_hex(
        FirmwareImage.from_segments([(0x0800_0000, b"\x00" * 10)]), record_bytes=16
    )
    fail(rezip(items), "file_sha256 mismatch", trusted={"oem": public})


def _with_manifest(change: dict[str, object], image: bytes | None = None) -> bytes:
    items = members(build())
    manifest = json.loads(items["manifest.json"])
    manifest.update(change)
    for key in [k for k, v in change.items() if v is ...]:
        del manifest[key]
    items["manifest.json"] = json.dumps(manifest).encode()
    if image is not None:
        items["app.hex"] = image
    return rezip(items)


def test_image_that_does_not_parse_names_file_and_line() -> None:
    broken = HEX.replace(b":00000001FF\n", b"")
    change = {"file_sha256": hashlib.sha256(broken).hexdigest()}
    fail(
        _with_manifest(change, broken),
        r"the image does not parse: app\.hex:\d+: the file ends without an EOF record",
    )


def test_image_hash_crc_size_segments_checked() -> None:
    fail(_with_manifest({"image_sha256": "0" * 64}), "image_sha256 mismatch")
    fail(_with_manifest({"crc32": 1}), "crc32 mismatch")
    fail(_with_manifest({"size": 1}), "size mismatch")
    fail(_with_manifest({"segments": [[0, 1]]}), "segments mismatch")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"brand": ...}, "lacks field.*brand"),
        ({"extra": 1}, "unknown field.*extra"),
        ({"size": "10"}, "field 'size' must be int, got str"),
        ({"crc32": True}, "field 'crc32' must be int, got bool"),
        ({"base_address": "0"}, "must be int or null"),
        ({"base_address": 5}, "base_address must be null"),
        ({"segments": [[1, 2, 3]]}, "segments must be"),
        ({"format": "elf"}, "image format 'elf'"),
        ({"format_version": 2}, "unsupported package format_version 2"),
        ({"file_sha256": "abc"}, "file_sha256 is not 64"),
        ({"created_at": "yesterday"}, "not ISO-8601"),
        ({"version": " "}, "field 'version' is empty"),
        ({"image": "other.hex"}, "unexpected member.*app.hex"),
    ],
)
def test_manifest_validation(change: dict[str, object], reason: str) -> None:
    fail(_with_manifest(change), reason)


def test_not_a_zip_and_broken_zip() -> None:
    fail(b"", "not a zip file")
    fail(HEX, "not a zip file")
    fail(b"PK\x03\x04" + b"\x00" * 50, "not a readable zip")
    fail(rezip({"app.hex": HEX}), "no manifest.json")
    fail(rezip({"manifest.json": b"[1]", "app.hex": HEX}), "must hold a JSON object")
    fail(rezip({"manifest.json": b"{", "app.hex": HEX}), "not valid JSON")


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a\\b", "dir/file", "C:evil", "x/../../y"])
def test_zip_slip_names_rejected(name: str) -> None:
    items = members(build())
    items[name] = b"x"
    fail(rezip(items), "unsafe member name")


def test_too_many_or_extra_members() -> None:
    items = members(build())
    items["readme.txt"] = b"hi"
    fail(rezip(items), "unexpected member.*readme.txt")
    items["more.txt"] = b"x"
    fail(rezip(items), "holds 4 members, a package holds at most 3")


def test_oversized_member_rejected_from_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pkg, "MAX_MEMBER_BYTES", 1 << 16)
    items = members(build())
    items["app.hex"] = bytes(range(256)) * 300  # 76.8 KiB > 64 KiB, barely compressible
    fail(rezip(items, zipfile.ZIP_STORED), "declares 76800 bytes, more than")


def test_compression_bomb_rejected() -> None:
    items = members(build())
    items["app.hex"] = b"0" * (8 << 20)
    fail(rezip(items), r"compresses \d+:1, more than 200:1")


def test_lying_header_cannot_inflate_past_declared_size() -> None:
    # The central directory claims 100 bytes; the deflate stream holds 3 MiB. Reading stops at
    # the declared size and the CRC check rejects the member.
    items = members(build())
    items["app.hex"] = HEX + b"0" * (3 << 20)
    data = bytearray(rezip(items))
    cd = data.find(b"PK\x01\x02")
    while cd >= 0:
        name_len = int.from_bytes(data[cd + 28 : cd + 30], "little")
        if data[cd + 46 : cd + 46 + name_len] == b"app.hex":
            data[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
        cd = data.find(b"PK\x01\x02", cd + 4)
    fail(bytes(data), "member 'app.hex' is corrupt")


def test_odd_compression_method_rejected() -> None:
    fail(rezip(members(build()), zipfile.ZIP_BZIP2), "unsupported compression method")


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (6, 148, r"not a readable zip file: zip file version 14.8"),  # version needed
        (8, 0x0001, r"member 'manifest.json' is encrypted"),  # general-purpose flag bit 0
    ],
    ids=["version-needed-14.8", "encrypted-flag"],
)
def test_member_zipfile_cannot_read_is_a_named_error(offset: int, value: int, reason: str) -> None:
    """Found by the fuzzing campaign: a central-directory header asking for a newer zip
    version (or marking the member encrypted) made zipfile raise NotImplementedError /
    RuntimeError out of the reader instead of a PackageError."""
    data = bytearray(build())
    cd = data.find(b"PK\x01\x02")
    while cd >= 0:
        data[cd + offset : cd + offset + 2] = value.to_bytes(2, "little")
        cd = data.find(b"PK\x01\x02", cd + 4)
    fail(bytes(data), reason)
    assert not pkg.is_package(bytes(data)) or offset == 8
