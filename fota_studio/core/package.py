"""Firmware packages: a portable zip of manifest.json, the image file and an optional Ed25519
signature, built and verified entirely in memory.

`build_package` makes one from an image file; `read_package` checks everything before anyone
uses the image: zip structure and member names (no path traversal), sizes (from the zip header
and again while decompressing, so a lying header or a zip bomb cannot exhaust memory), the
signature over the exact manifest.json bytes against trusted keys (chosen by the key's
fingerprint, `key_fingerprint`, not by the signer's name), the manifest fields and types, the file
hash, that the image parses, and its data hash/CRC/size/segments. Nothing is ever extracted to
disk.

A manifest may also carry the package policy of the secure-OTA world (TUF/Uptane): the ECU
hardware IDs and bootloader versions the image fits and a monotonically increasing
`release_counter`; `infra/trust.check_flashable` enforces them. The optional fields are left out
of manifest.json when unset, so packages without a policy keep their exact bytes.

Pure functions without shared state: safe from any thread (reading a big package takes a moment,
so use a worker, not the GUI thread).

Why this size: a package is one format: the manifest, building, reading and verifying the
signature check each other's fields (the member list, the canonical manifest bytes the signature
covers), so they stay in one module that defines that format.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fota_studio.core.errors import ImageError, PackageError
from fota_studio.core.firmware import IMAGE_FORMATS, FirmwareImage, load_image

PACKAGE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
SIGNATURE_ALGORITHM = "ed25519"

#: manifest.json, the image, signature.json.
MAX_MEMBERS = 3
MAX_MEMBER_BYTES = 64 << 20
MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 64 << 10
#: Deflate reaches ~1000:1 only on degenerate data; real firmware (even with 0xFF fill) stays
#: far below. Small members are exempt: their ratio says nothing about memory.
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 1 << 20
_READ_BLOCK_BYTES = 1 << 20

_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "format_version": (int,),
    "brand": (str,),
    "model": (str,),
    "version": (str,),
    "image": (str,),
    "format": (str,),
    "base_address": (int, type(None)),
    "file_sha256": (str,),
    "image_sha256": (str,),
    "crc32": (int,),
    "size": (int,),
    "segments": (list,),
    "release_notes": (str,),
    "created_at": (str,),
    "created_by": (str,),
}
#: Optional manifest fields (the package policy); left out of manifest.json when unset.
_OPTIONAL_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "hardware_ids": (list,),
    "bootloader_versions": (list,),
    "release_counter": (int,),
}
_SIGNATURE_FIELDS = {"algorithm", "signer", "signature"}
#: signature.json may also name the key by fingerprint ("keyid"); readers then pick the key by it.
_OPTIONAL_SIGNATURE_FIELDS = {"keyid"}
MAX_POLICY_ITEMS = 64
MAX_POLICY_ITEM_CHARS = 64
MAX_RELEASE_COUNTER = 2**53


def public_key_raw(public_pem: bytes) -> bytes:
    """The 32 raw bytes of an Ed25519 public key PEM; PackageError if it is not one."""
    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError) as exc:
        raise PackageError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError("not an Ed25519 public key (packages are signed with Ed25519)")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(public_pem: bytes) -> str:
    """A signing key's identity: SHA-256 (hex) of its raw 32-byte Ed25519 public key.

    Trust is pinned to this, never to the signer's name: replacing the key stored under a name
    changes the fingerprint, so what the old key signed is no longer trusted.
    """
    return hashlib.sha256(public_key_raw(public_pem)).hexdigest()


def public_pem_of(private_key: Ed25519PrivateKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key's public half."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _fail(source: str, message: str) -> PackageError:
    return PackageError(f"{source}: {message}")


def _check_member_name(name: str) -> str | None:
    """Why an image file name is unsafe, or None if it is a plain top-level file name."""
    if not name or len(name) > 255:
        return "empty or longer than 255 characters"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "contains '..' (path traversal)"
    if "/" in name:
        return "is inside a folder (a package holds files at the top level only)"
    if name in (".",) or any(ord(c) < 0x20 for c in name):
        return "is not a plain file name"
    return None


def _is_sha256(value: str) -> bool:
    if len(value) != 64 or value != value.lower():
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PackageManifest:
    """The manifest.json of a package; `to_json` gives the exact bytes that get signed."""

    brand: str
    model: str
    version: str
    image: str
    format: str
    base_address: int | None
    file_sha256: str
    image_sha256: str
    crc32: int
    size: int
    segments: tuple[tuple[int, int], ...]
    release_notes: str
    created_at: str
    created_by: str
    format_version: int = PACKAGE_FORMAT_VERSION
    hardware_ids: tuple[str, ...] = ()
    bootloader_versions: tuple[str, ...] = ()
    release_counter: int | None = None

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys, 2-space indent, UTF-8, final newline); the optional
        policy fields only when set."""
        fields = asdict(self)
        fields["segments"] = [list(s) for s in self.segments]
        for key in ("hardware_ids", "bootloader_versions"):
            if fields[key]:
                fields[key] = list(fields[key])
            else:
                del fields[key]
        if self.release_counter is None:
            del fields["release_counter"]
        return (json.dumps(fields, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, source: str = "<package>") -> PackageManifest:
        """Parse and validate manifest.json: exact field set, types and value ranges."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _fail(source, f"{MANIFEST_NAME} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise _fail(source, f"{MANIFEST_NAME} must hold a JSON object")
        missing = sorted(set(_MANIFEST_TYPES) - set(raw))
        unknown = sorted(set(raw) - set(_MANIFEST_TYPES) - set(_OPTIONAL_MANIFEST_TYPES))
        if missing:
            raise _fail(source, f"{MANIFEST_NAME} lacks field(s): {', '.join(missing)}")
        if unknown:
            raise _fail(source, f"{MANIFEST_NAME} has unknown field(s): {', '.join(unknown)}")
        for key, types in {**_MANIFEST_TYPES, **_OPTIONAL_MANIFEST_TYPES}.items():
            if key not in raw:
                continue
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, types):
                wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise _fail(
                    source,
                    f"{MANIFEST_NAME} field {key!r} must be {wanted}, got {type(value).__name__}",
                )
        # The required fields go in as read (their types are checked above); the lists get
        # parsed into tuples.
        manifest = cls(
            **{key: raw[key] for key in _MANIFEST_TYPES if key != "segments"},
            segments=_parse_segments(raw["segments"], source),
            hardware_ids=_parse_names(raw.get("hardware_ids", []), "hardware_ids", source),
            bootloader_versions=_parse_names(
                raw.get("bootloader_versions", []), "bootloader_versions", source
            ),
            release_counter=raw.get("release_counter"),
        )
        manifest.validate(source)
        return manifest

    def validate(self, source: str = "<package>") -> None:
        """Raise PackageError if a value is out of range (types are already right)."""
        if self.format_version != PACKAGE_FORMAT_VERSION:
            raise _fail(
                source,
                f"unsupported package format_version {self.format_version} (this FOTA Studio "
                f"reads {PACKAGE_FORMAT_VERSION}); update FOTA Studio",
            )
        for key in ("brand", "model", "version"):
            if not getattr(self, key).strip():
                raise _fail(source, f"{MANIFEST_NAME} field {key!r} is empty")
        why = _check_member_name(self.image)
        if why or self.image in (MANIFEST_NAME, SIGNATURE_NAME):
            raise _fail(source, f"image name {self.image!r} {why or 'is reserved'}")
        if self.format not in IMAGE_FORMATS:
            raise _fail(
                source, f"image format {self.format!r} is not one of {', '.join(IMAGE_FORMATS)}"
            )
        if self.format == "bin" and (self.base_address is None or self.base_address < 0):
            raise _fail(source, "a 'bin' image needs a non-negative base_address")
        if self.format != "bin" and self.base_address is not None:
            raise _fail(source, f"base_address must be null for a {self.format!r} image")
        for key in ("file_sha256", "image_sha256"):
            if not _is_sha256(getattr(self, key)):
                raise _fail(source, f"{key} is not 64 lower-case hex digits")
        if not 0 <= self.crc32 <= 0xFFFF_FFFF or self.size < 0:
            raise _fail(source, "crc32 or size is out of range")
        try:
            dt.datetime.fromisoformat(self.created_at)
        except ValueError:
            raise _fail(source, f"created_at {self.created_at!r} is not ISO-8601") from None
        if self.release_counter is not None and not (
            0 <= self.release_counter <= MAX_RELEASE_COUNTER
        ):
            raise _fail(
                source, f"release_counter must be between 0 and {MAX_RELEASE_COUNTER} (2**53)"
            )
        for key in ("hardware_ids", "bootloader_versions"):
            _parse_names(list(getattr(self, key)), key, source)


def _parse_names(value: list[Any], key: str, source: str) -> tuple[str, ...]:
    """A policy list (hardware IDs, bootloader versions): non-empty, printable, short strings."""
    if len(value) > MAX_POLICY_ITEMS:
        raise _fail(source, f"{MANIFEST_NAME} {key} lists more than {MAX_POLICY_ITEMS} entries")
    out = []
    for item in value:
        if (
            not isinstance(item, str)
            or not item.strip()
            or len(item) > MAX_POLICY_ITEM_CHARS
            or not item.isprintable()
        ):
            raise _fail(
                source,
                f"{MANIFEST_NAME} {key} must be non-empty printable strings of at most "
                f"{MAX_POLICY_ITEM_CHARS} characters",
            )
        out.append(item.strip())
    return tuple(out)


def _parse_segments(value: list[Any], source: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in item)
        ):
            raise _fail(source, f"{MANIFEST_NAME} segments must be [address, length] integers")
        out.append((item[0], item[1]))
    return tuple(out)


@dataclass(frozen=True, repr=False)
class LoadedPackage:
    """A verified package: manifest, image file bytes, parsed image, signature state."""

    manifest: PackageManifest
    image_file: bytes
    image: FirmwareImage
    signature_state: str  # "unsigned" | "valid"
    signer: str | None
    signer_fingerprint: str = ""  # SHA-256 of the raw public key that verified the signature

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"LoadedPackage({m.brand}/{m.model} {m.version}, {m.image}, "
            f"{self.signature_state}, signer={self.signer!r})"
        )


def generate_signing_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def load_signing_key(private_pem: bytes) -> Ed25519PrivateKey:
    """The Ed25519 private key from an unencrypted PEM; PackageError if it is not one."""
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PackageError(f"cannot read the signing key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError("the signing key is not an Ed25519 private key")
    return key


def build_package(
    image_file: bytes,
    image_name: str,
    *,
    brand: str,
    model: str,
    version: str,
    release_notes: str = "",
    created_by: str = "",
    fmt: str | None = None,
    base_address: int | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    signer: str = "",
    hardware_ids: tuple[str, ...] = (),
    bootloader_versions: tuple[str, ...] = (),
    release_counter: int | None = None,
) -> bytes:
    """Build a package zip; the image must parse (ImageError otherwise). Signs when a key is
    given (then `signer` names the key holder; readers pick the key by its fingerprint).
    `hardware_ids`, `bootloader_versions` and `release_counter` are the package policy."""
    why = _check_member_name(image_name)
    if why or image_name in (MANIFEST_NAME, SIGNATURE_NAME):
        raise PackageError(f"image name {image_name!r} {why or 'is reserved'}")
    if signing_key is not None and not signer.strip():
        raise PackageError("a signed package needs a signer name")
    image, fmt = load_image(image_file, fmt=fmt, base_address=base_address, source=image_name)
    manifest = PackageManifest(
        brand=brand,
        model=model,
        version=version,
        image=image_name,
        format=fmt,
        base_address=base_address if fmt == "bin" else None,
        file_sha256=hashlib.sha256(image_file).hexdigest(),
        image_sha256=image.sha256(),
        crc32=image.crc32(),
        size=image.total_size,
        segments=tuple((s.address, s.length) for s in image.segments),
        release_notes=release_notes,
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        created_by=created_by,
        hardware_ids=tuple(hardware_ids),
        bootloader_versions=tuple(bootloader_versions),
        release_counter=release_counter,
    )
    manifest.validate(image_name)
    manifest_bytes = manifest.to_json()
    members = [(MANIFEST_NAME, manifest_bytes), (image_name, image_file)]
    if signing_key is not None:
        signature = {
            "algorithm": SIGNATURE_ALGORITHM,
            "signer": signer,
            "keyid": key_fingerprint(public_pem_of(signing_key)),
            "signature": base64.b64encode(signing_key.sign(manifest_bytes)).decode("ascii"),
        }
        members.append((SIGNATURE_NAME, json.dumps(signature, indent=2).encode() + b"\n"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return buffer.getvalue()


def is_package(data: bytes) -> bool:
    """True if data is a zip holding a manifest.json (cheap; does not verify anything)."""
    if data[:4] != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return MANIFEST_NAME in zf.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError):
        return False


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, source: str) -> bytes:
    """Decompress one member, stopping as soon as it exceeds its header size or the limit."""
    parts: list[bytes] = []
    total = 0
    try:
        with zf.open(info) as stream:
            while block := stream.read(_READ_BLOCK_BYTES):
                total += len(block)
                if total > limit or total > info.file_size:
                    raise _fail(
                        source,
                        f"member {info.filename!r} decompresses to more than "
                        f"{min(limit, info.file_size)} bytes (its header or the limit)",
                    )
                parts.append(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        # A CRC mismatch here also catches a header that understates the size.
        raise _fail(source, f"member {info.filename!r} is corrupt: {exc}") from None
    except (NotImplementedError, RuntimeError) as exc:
        # zipfile: a "version needed to extract" above what it supports, an unknown
        # compression, or an encrypted member (RuntimeError "password required").
        raise _fail(
            source, f"member {info.filename!r} cannot be read: {exc} (not a package we wrote)"
        ) from None
    return b"".join(parts)


def _check_members(zf: zipfile.ZipFile, source: str) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _fail(
            source, f"the zip holds {len(infos)} members, a package holds at most {MAX_MEMBERS}"
        )
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        why = _check_member_name(name)
        if why:
            raise _fail(source, f"unsafe member name {name!r}: {why}")
        if name in members:
            raise _fail(source, f"member {name!r} appears twice")
        if info.flag_bits & 0x1:
            raise _fail(source, f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _fail(source, f"member {name!r} uses an unsupported compression method")
        if info.file_size > MAX_MEMBER_BYTES:
            raise _fail(
                source,
                f"member {name!r} declares {info.file_size} bytes, more than the "
                f"{MAX_MEMBER_BYTES >> 20} MiB limit",
            )
        if info.file_size > RATIO_CHECK_MIN_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise _fail(
                source,
                f"member {name!r} compresses {info.file_size // max(info.compress_size, 1)}:1, "
                f"more than {MAX_COMPRESSION_RATIO}:1 (a zip bomb?)",
            )
        members[name] = info
    if MANIFEST_NAME not in members:
        raise _fail(source, f"the zip has no {MANIFEST_NAME}; it is not a firmware package")
    return members


def _verify_signature(
    raw: bytes, manifest_bytes: bytes, trusted_keys: Mapping[str, bytes], source: str
) -> tuple[str, str]:
    """Check signature.json over manifest_bytes; return (signer name, key fingerprint).

    The key is chosen by the signature's `keyid` (fingerprint) among the trusted keys, so a key
    that is no longer trusted cannot be reached through a name; a legacy signature without
    `keyid` uses the key trusted under its signer name.
    """
    try:
        sig = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _fail(source, f"{SIGNATURE_NAME} is not valid JSON") from None
    if (
        not isinstance(sig, dict)
        or not set(sig) >= _SIGNATURE_FIELDS
        or set(sig) - _SIGNATURE_FIELDS - _OPTIONAL_SIGNATURE_FIELDS
    ):
        raise _fail(source, f"{SIGNATURE_NAME} must hold exactly {sorted(_SIGNATURE_FIELDS)}")
    if not all(isinstance(v, str) for v in sig.values()):
        raise _fail(source, f"{SIGNATURE_NAME} fields must be strings")
    if sig["algorithm"] != SIGNATURE_ALGORITHM:
        raise _fail(source, f"unsupported signature algorithm {sig['algorithm']!r}")
    signer: str = sig["signer"]
    by_fingerprint: dict[str, tuple[str, bytes]] = {}
    for name, pem in trusted_keys.items():
        try:
            by_fingerprint[key_fingerprint(pem)] = (name, pem)
        except PackageError:
            raise _fail(source, f"the trusted key of {name!r} is not an Ed25519 PEM key") from None
    keyid = sig.get("keyid")
    if keyid is not None:
        if keyid not in by_fingerprint:
            known = ", ".join(f"{n} ({fp[:16]}…)" for fp, (n, _) in sorted(by_fingerprint.items()))
            raise _fail(
                source,
                f"signed by {signer!r}, who is not a trusted signer: key {keyid} is not a "
                f"trusted key (trusted: {known or 'none configured'}); add the signer's public "
                "key to the trusted keys if you trust it",
            )
        pem = by_fingerprint[keyid][1]
    else:
        if signer not in trusted_keys:
            known = ", ".join(sorted(trusted_keys)) or "none configured"
            raise _fail(
                source,
                f"signed by {signer!r}, who is not a trusted signer (trusted: {known}); add the "
                "signer's public key to the trusted keys if you trust it",
            )
        pem = trusted_keys[signer]
    public = serialization.load_pem_public_key(pem)
    assert isinstance(public, Ed25519PublicKey)  # key_fingerprint checked it above
    try:
        public.verify(base64.b64decode(sig["signature"], validate=True), manifest_bytes)
    except (InvalidSignature, binascii.Error, ValueError):
        raise _fail(
            source,
            f"bad signature by {signer!r}: {MANIFEST_NAME} was changed after signing or the "
            "signature is corrupt; do not use this package",
        ) from None
    return signer, key_fingerprint(pem)


def read_package(
    data: bytes,
    *,
    source: str,
    trusted_keys: Mapping[str, bytes],
    require_signature: bool,
) -> LoadedPackage:
    """Verify a package completely (see module docstring); PackageError names the reason."""
    if data[:4] != b"PK\x03\x04":
        raise _fail(source, "not a zip file (a firmware package is a zip)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _fail(source, f"not a readable zip file: {exc}") from None
    except NotImplementedError as exc:  # a "version needed to extract" zipfile cannot read
        raise _fail(source, f"not a readable zip file: {exc} (not a package we wrote)") from None
    with zf:
        members = _check_members(zf, source)
        manifest_bytes = _read_member(zf, members[MANIFEST_NAME], MAX_MANIFEST_BYTES, source)
        signer: str | None = None
        fingerprint = ""
        if SIGNATURE_NAME in members:
            raw_sig = _read_member(zf, members[SIGNATURE_NAME], MAX_SIGNATURE_BYTES, source)
            signer, fingerprint = _verify_signature(raw_sig, manifest_bytes, trusted_keys, source)
        elif require_signature:
            raise _fail(source, "the package is unsigned, but a signature is required")
        manifest = PackageManifest.from_json(manifest_bytes, source=source)
        extra = sorted(set(members) - {MANIFEST_NAME, SIGNATURE_NAME, manifest.image})
        if extra:
            raise _fail(source, f"unexpected member(s): {', '.join(extra)}")
        if manifest.image not in members:
            raise _fail(
                source, f"the image file {manifest.image!r} named in the manifest is missing"
            )
        image_file = _read_member(zf, members[manifest.image], MAX_MEMBER_BYTES, source)
    file_sha = hashlib.sha256(image_file).hexdigest()
    if file_sha != manifest.file_sha256:
        raise _fail(
            source,
            f"file_sha256 mismatch: the manifest says {manifest.file_sha256}, the image file "
            f"{manifest.image!r} hashes to {file_sha}; the package was altered or damaged",
        )
    try:
        image, _fmt = load_image(
            image_file,
            fmt=manifest.format,
            base_address=manifest.base_address,
            source=manifest.image,
        )
    except ImageError as exc:
        raise _fail(source, f"the image does not parse: {exc}") from exc
    checks = (
        ("image_sha256", manifest.image_sha256, image.sha256()),
        ("crc32", manifest.crc32, image.crc32()),
        ("size", manifest.size, image.total_size),
        ("segments", manifest.segments, tuple((s.address, s.length) for s in image.segments)),
    )
    for name, declared, actual in checks:
        if declared != actual:
            raise _fail(
                source, f"{name} mismatch: the manifest says {declared}, the image has {actual}"
            )
    return LoadedPackage(
        manifest=manifest,
        image_file=image_file,
        image=image,
        signature_state="valid" if signer else "unsigned",
        signer=signer,
        signer_fingerprint=fingerprint,
    )
