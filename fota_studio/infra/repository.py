"""Software Repositories: version-managed firmware per ECU type (Brand + Model) in the workspace.

`RepositoryStore` keeps repositories and their immutable versions in the workspace DB and each
version's firmware file (the exact HEX/S-record/binary bytes, or the image file inside an
imported package) in the content-addressed blob store. An import parses and validates the whole
file first (nothing is stored on any error), then writes the blob atomically, then inserts the
row in one transaction, so a crash leaves either no version or a complete one (at worst an
unreferenced blob that `Workspace.collect_garbage` removes). Versions are never updated except
for the `retired` flag and a re-signature of the same firmware
(`TrustStore.apply_resigned_package`).

Thread use: any thread; the workspace serialises DB access. Imports and `verify` hash and parse
whole images, so the GUI must run them off its thread.

Why this size: `RepositoryStore` is the one store of repositories and versions (import, look-ups
in a fixed number of queries, retire, verify); the trust policy already moved to `trust.py` and
the image formats live in `core/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypedDict, Unpack

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fota_studio.core import firmware, package
from fota_studio.core.errors import FotaError, ImageError, RepositoryError, WorkspaceError
from fota_studio.core.firmware import FirmwareImage
from fota_studio.core.safe_text import check_version_text
from fota_studio.core.versions import version_key
from fota_studio.infra import trust
from fota_studio.infra.user import current_user
from fota_studio.infra.workspace import Workspace, atomic_write, public_file_mode

if TYPE_CHECKING:
    from fota_studio.infra.workspace import _Cursor

#: Workspace setting that makes imports require a validly signed package (owned by infra/trust).
REQUIRE_SIGNED_SETTING = trust.REQUIRE_SIGNED_SETTING

#: The image formats a version's file may have (firmware loader names).
SOURCE_FORMATS = ("hex", "srec", "bin")

#: Export formats; "s19" and "srec" are the same Motorola S-record format.
EXPORT_FORMATS = ("hex", "s19", "srec", "bin", "package")

_FILE_EXT = {"hex": ".hex", "srec": ".s19", "bin": ".bin"}

ProgressCallback = Callable[[float], None]

#: `versions` columns that go into the `VersionInfo` field of the same name as they are.
_VERSION_TEXT_COLUMNS = (
    "brand",
    "model",
    "version",
    "notes",
    "source_name",
    "source_format",
    "imported_at",
    "imported_by",
    "signature_state",
    "signer",
    "signer_fingerprint",
    "release_counter",
)


class ImportOptions(TypedDict, total=False):
    """The keyword options `import_file`/`import_bytes` pass on to `prepare_import`."""

    notes: str
    base_address: int | None
    fmt: str | None
    imported_by: str | None
    create_repository: bool
    progress: ProgressCallback | None


def _report(options: ImportOptions, fraction: float) -> None:
    """Tell the import's progress callback (when it has one) how far it got."""
    progress = options.get("progress")
    if progress is not None:
        progress(fraction)


@dataclass(frozen=True)
class RepositoryInfo:
    """One Software Repository (an ECU type) and how many versions it holds."""

    id: int
    brand: str
    model: str
    description: str
    created_at: str
    version_count: int

    @property
    def label(self) -> str:
        """The name users see: "Brand / Model"."""
        return f"{self.brand} / {self.model}"


@dataclass(frozen=True)
class VersionInfo:
    """One immutable firmware version; `sha256` is of the image data, `file_sha256` of the file."""

    id: int
    brand: str
    model: str
    version: str
    notes: str
    sha256: str
    file_sha256: str
    crc32: int
    size: int
    segments: tuple[tuple[int, int], ...]
    source_name: str
    source_format: str
    imported_at: str
    imported_by: str
    signature_state: str
    signer: str
    retired: bool
    base_address: int | None = None  # only for "bin" files: where the file's first byte goes
    signer_fingerprint: str = ""  # SHA-256 of the raw public key that verified the signature
    hardware_ids: tuple[str, ...] = ()  # package policy: the ECU hardware it fits (empty: any)
    bootloader_versions: tuple[str, ...] = ()  # ... and the bootloaders (empty: any)
    release_counter: int | None = None  # ... and its monotonically increasing release counter

    @property
    def label(self) -> str:
        """The name users see: "Brand / Model version"."""
        return f"{self.brand} / {self.model} {self.version}"

    def gaps(self) -> list[tuple[int, int]]:
        """(start, end) address ranges between consecutive segments."""
        out: list[tuple[int, int]] = []
        for (addr, length), (next_addr, _) in zip(self.segments, self.segments[1:], strict=False):
            if addr + length < next_addr:
                out.append((addr + length, next_addr))
        return out


@dataclass(frozen=True)
class ImportResult:
    """The stored version and any warnings (e.g. the same image already exists as another)."""

    version: VersionInfo
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreparedImport:
    """A fully parsed and validated import, ready to be stored by `commit_imports`."""

    brand: str
    model: str
    version: str
    file_bytes: bytes
    image: FirmwareImage
    source_name: str
    source_format: str
    notes: str = ""
    base_address: int | None = None
    imported_by: str = ""
    signature_state: str = "unsigned"
    signer: str = ""
    signer_fingerprint: str = ""
    hardware_ids: tuple[str, ...] = ()
    bootloader_versions: tuple[str, ...] = ()
    release_counter: int | None = None
    create_repository: bool = False
    repository_description: str = ""
    warnings: tuple[str, ...] = ()


# -- helpers ---------------------------------------------------------------------------------


def _now() -> str:
    """Current time as ISO-8601 UTC with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_user() -> str:
    """The OS user name for `imported_by` ("unknown" when the OS cannot tell)."""
    return current_user()


def _clean_name(value: str | None, what: str) -> str:
    """Strip a brand/model/version; RepositoryError when empty or containing control chars.
    A version must also be in the safe character set of `core/safe_text.py` (after NFC)."""
    if what == "version":
        return check_version_text(value)
    text = (value or "").strip()
    if not text:
        raise RepositoryError(f"{what} is empty", hint=f"give a {what}")
    if any(ord(c) < 32 for c in text):
        raise RepositoryError(f"{what} {text!r} contains control characters")
    return text


def _normalise_fmt(fmt: str | None) -> str | None:
    """Map user format names to loader names ("s19"/"s-record"/"mot" -> "srec", "ihex" -> "hex")."""
    if fmt is None or fmt == "":
        return None
    f = fmt.strip().lower()
    aliases = {"s19": "srec", "s-record": "srec", "mot": "srec", "ihex": "hex", "binary": "bin"}
    f = aliases.get(f, f)
    if f not in (*SOURCE_FORMATS, "package"):
        raise RepositoryError(
            f"unknown firmware format {fmt!r}", hint="use hex, s19, bin or package"
        )
    return f


def _safe_file_part(text: str) -> str:
    """A file-name-safe form of a brand/model/version."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "firmware"


def _atomic_stream(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Stream an export into `path` atomically: temp file in the same folder, fsync, rename;
    the file gets the mode a new file gets (not the temp file's 0o600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, public_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _image_segments(image: FirmwareImage) -> tuple[tuple[int, int], ...]:
    return tuple((s.address, s.length) for s in image.segments)


class RepositoryStore:
    """Software Repositories and their versions in one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- repositories ----------------------------------------------------------------------

    # One query answers a whole screen: the version counts come from one grouped scan of
    # `versions` (indexed by repository_id), never one look-up per repository.
    _REPOSITORY_SELECT = (
        "SELECT r.id, r.brand, r.model, r.description, r.created_at, COALESCE(c.n, 0) AS n "
        "FROM repositories r LEFT JOIN (SELECT repository_id, COUNT(*) AS n FROM versions "
        "GROUP BY repository_id) c ON c.repository_id = r.id "
    )

    @staticmethod
    def _row_to_repository(r: sqlite3.Row) -> RepositoryInfo:
        return RepositoryInfo(
            id=int(r["id"]),
            version_count=int(r["n"]),
            **{key: r[key] for key in ("brand", "model", "description", "created_at")},
        )

    def list_repositories(self) -> list[RepositoryInfo]:
        """Every repository, sorted by brand then model (one query)."""
        infos = [self._row_to_repository(r) for r in self.ws.read(self._REPOSITORY_SELECT)]
        infos.sort(key=lambda i: (i.brand.casefold(), i.model.casefold(), i.brand, i.model))
        return infos

    def create_repository(self, brand: str, model: str, description: str = "") -> RepositoryInfo:
        """Create an empty repository; RepositoryError when Brand+Model already exists."""
        brand = _clean_name(brand, "brand")
        model = _clean_name(model, "model")
        try:
            with self.ws.transaction() as cur:
                self._insert_repository(cur, brand, model, description)
        except sqlite3.IntegrityError:
            raise RepositoryError(
                f'Software Repository "{brand} / {model}" already exists',
                hint="import versions into it, or choose another brand/model",
            ) from None
        return self.get_repository(brand, model)

    def _insert_repository(self, cur: _Cursor, brand: str, model: str, description: str) -> int:
        c = cur.execute(
            "INSERT INTO repositories(brand, model, description, created_at) VALUES(?, ?, ?, ?)",
            (brand, model, description.strip(), _now()),
        )
        return int(c.lastrowid or 0)

    def get_repository(self, brand: str, model: str) -> RepositoryInfo:
        """The repository Brand+Model; RepositoryError naming the known ones when unknown.

        Looked up by its key in SQL (the UNIQUE(brand, model) index), not by listing them all.
        """
        rows = self.ws.read(
            "SELECT r.id, r.brand, r.model, r.description, r.created_at, "
            "(SELECT COUNT(*) FROM versions v WHERE v.repository_id = r.id) AS n "
            "FROM repositories r WHERE r.brand = ? AND r.model = ?",
            (brand, model),
        )
        if rows:
            return self._row_to_repository(rows[0])
        labels = [i.label for i in self.list_repositories()]
        known = ", ".join(labels[:20]) + (f", … ({len(labels)} in all)" if len(labels) > 20 else "")
        known = known or "none"
        raise RepositoryError(
            f'no Software Repository "{brand} / {model}" (known: {known})',
            hint="create it first (`fota-studio repo create`), or import with --create",
        )

    def _repository_id(self, brand: str, model: str) -> int | None:
        rows = self.ws.read(
            "SELECT id FROM repositories WHERE brand = ? AND model = ?", (brand, model)
        )
        return int(rows[0]["id"]) if rows else None

    # -- versions --------------------------------------------------------------------------

    _VERSION_SELECT = (
        "SELECT v.*, r.brand AS brand, r.model AS model FROM versions v "
        "JOIN repositories r ON r.id = v.repository_id "
    )

    @staticmethod
    def _row_to_version(row: sqlite3.Row) -> VersionInfo:
        meta = json.loads(row["segments"])
        # The schema-v1 `segments` column holds a JSON object with the segment list, the image
        # data SHA-256 and (binary files only) the base address; see `_segments_json`.
        if isinstance(meta, list):
            meta = {"segments": meta}
        base = meta.get("base_address")
        return VersionInfo(
            id=int(row["id"]),
            sha256=str(meta.get("image_sha256", "")),
            file_sha256=row["blob_sha256"],
            crc32=int(row["crc32"]),
            size=int(row["size"]),
            segments=tuple((int(a), int(n)) for a, n in meta.get("segments", [])),
            retired=bool(row["retired"]),
            base_address=None if base is None else int(base),
            hardware_ids=tuple(json.loads(row["hardware_ids"])),
            bootloader_versions=tuple(json.loads(row["bootloader_versions"])),
            **{key: row[key] for key in _VERSION_TEXT_COLUMNS},
        )

    @staticmethod
    def _segments_json(item: PreparedImport) -> str:
        meta: dict[str, Any] = {
            "segments": [list(s) for s in _image_segments(item.image)],
            "image_sha256": item.image.sha256(),
        }
        if item.base_address is not None:
            meta["base_address"] = item.base_address
        return json.dumps(meta, separators=(",", ":"))

    def list_versions(
        self, brand: str, model: str, *, include_retired: bool = True
    ) -> list[VersionInfo]:
        """Versions of a repository, oldest first in semantic-version order (one query by key;
        RepositoryError naming the known repositories when Brand+Model is unknown)."""
        sql = self._VERSION_SELECT + "WHERE r.brand = ? AND r.model = ?"
        if not include_retired:
            sql += " AND v.retired = 0"
        rows = self.ws.read(sql, (brand, model))
        if not rows and self._repository_id(brand, model) is None:
            self.get_repository(brand, model)  # raises the error naming the known ones
        versions = [self._row_to_version(r) for r in rows]
        versions.sort(key=lambda v: version_key(v.version))
        return versions

    def versions_by_repository(self) -> dict[int, list[VersionInfo]]:
        """Every version grouped by repository id, each list in version order (one query)."""
        grouped: dict[int, list[VersionInfo]] = {}
        for row in self.ws.read(self._VERSION_SELECT):
            grouped.setdefault(int(row["repository_id"]), []).append(self._row_to_version(row))
        for versions in grouped.values():
            versions.sort(key=lambda v: version_key(v.version))
        return grouped

    def latest_versions(self, *, include_retired: bool = False) -> dict[int, VersionInfo]:
        """Repository id -> its highest version (not retired unless asked), in one query."""
        sql = self._VERSION_SELECT + ("" if include_retired else "WHERE v.retired = 0")
        best: dict[int, tuple[Any, VersionInfo]] = {}
        for row in self.ws.read(sql):
            key = version_key(row["version"])
            rid = int(row["repository_id"])
            held = best.get(rid)
            if held is None or held[0] < key:
                best[rid] = (key, self._row_to_version(row))
        return {rid: v for rid, (_, v) in best.items()}

    def all_versions(self) -> list[VersionInfo]:
        """Every version of every repository (repository order, then version order)."""
        grouped = self.versions_by_repository()
        out: list[VersionInfo] = []
        for repo in self.list_repositories():
            out.extend(grouped.get(repo.id, ()))
        return out

    def get_version(self, brand: str, model: str, version: str) -> VersionInfo:
        """One version; RepositoryError naming the known versions when unknown."""
        rows = self.ws.read(
            self._VERSION_SELECT + "WHERE r.brand = ? AND r.model = ? AND v.version = ?",
            (brand, model, version),
        )
        if rows:
            return self._row_to_version(rows[0])
        repo = self.get_repository(brand, model)
        known = ", ".join(v.version for v in self.list_versions(brand, model)) or "none"
        raise RepositoryError(
            f'no version "{version}" in {repo.label} (known: {known})',
            hint="import it first, or pick a known version",
        )

    def latest_version(
        self, brand: str, model: str, *, include_retired: bool = False
    ) -> VersionInfo | None:
        """The highest version (not retired unless asked), or None when there is none."""
        versions = self.list_versions(brand, model, include_retired=include_retired)
        return versions[-1] if versions else None

    # -- import ----------------------------------------------------------------------------

    def import_file(
        self,
        brand: str | None,
        model: str | None,
        version: str | None,
        path: str | Path,
        **options: Unpack[ImportOptions],
    ) -> ImportResult:
        """Import a HEX/S19/BIN file or a firmware package (auto-detected) as a new version.

        For a package, brand/model/version may be None (taken from its manifest); when given
        they must match it. `options` are those of `prepare_import`. Raises
        ImageError/PackageError/RepositoryError; stores nothing then.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise RepositoryError(f"{p}: no such file", hint="check the path") from None
        except OSError as exc:
            raise RepositoryError(f"{p}: cannot read ({exc.strerror})") from exc
        _report(options, 0.1)
        return self.import_bytes(brand, model, version, data, source_name=p.name, **options)

    def import_bytes(
        self,
        brand: str | None,
        model: str | None,
        version: str | None,
        data: bytes,
        *,
        source_name: str,
        **options: Unpack[ImportOptions],
    ) -> ImportResult:
        """Like `import_file` for bytes already in memory; `source_name` names them in errors."""
        item = self.prepare_import(brand, model, version, data, source_name=source_name, **options)
        result = self.commit_imports([item])[0]
        _report(options, 1.0)
        return result

    def prepare_import(
        self,
        brand: str | None,
        model: str | None,
        version: str | None,
        data: bytes,
        *,
        source_name: str,
        notes: str = "",
        base_address: int | None = None,
        fmt: str | None = None,
        imported_by: str | None = None,
        create_repository: bool = False,
        progress: ProgressCallback | None = None,
    ) -> PreparedImport:
        """Parse and validate an import without storing anything (the first half of an import)."""
        norm_fmt = _normalise_fmt(fmt)
        if brand and model and not create_repository:
            # Fail fast on an unknown repository or a duplicate version before parsing a large
            # file; both are re-checked after parsing and enforced by the DB at commit.
            self.get_repository(brand.strip(), model.strip())
            if version:
                self._check_new_version(brand.strip(), model.strip(), version.strip())
        if progress is not None:
            progress(0.15)
        signature_state = "unsigned"
        signer = ""
        policy: dict[str, Any] = {}
        if norm_fmt == "package" or (norm_fmt is None and package.is_package(data)):
            loaded = package.read_package(
                data,
                source=source_name,
                trusted_keys=self.trusted_keys(),
                require_signature=self.require_signed_packages,
            )
            man = loaded.manifest
            for what, given, actual in (
                ("brand", brand, man.brand),
                ("model", model, man.model),
                ("version", version, man.version),
            ):
                if given and given.strip() != actual:
                    raise RepositoryError(
                        f"{source_name}: package is for {what} {actual!r}, not {given.strip()!r}",
                        hint=f"import it under {what} {actual!r}, or leave the {what} out",
                    )
            brand, model, version = man.brand, man.model, man.version
            notes = notes or man.release_notes
            file_bytes = loaded.image_file
            image = loaded.image
            # Keep the image file, not the zip: its hash is the manifest's file_sha256 and it
            # reloads without the signing keys that were trusted at import time.
            source_format = man.format
            base_address = man.base_address if source_format == "bin" else None
            signature_state = loaded.signature_state
            signer = loaded.signer or ""
            policy = {
                "signer_fingerprint": loaded.signer_fingerprint,
                "hardware_ids": man.hardware_ids,
                "bootloader_versions": man.bootloader_versions,
                "release_counter": man.release_counter,
            }
        else:
            if self.require_signed_packages:
                raise RepositoryError(
                    f"{source_name}: this workspace accepts only signed firmware packages, "
                    "not plain HEX/S19/BIN files",
                    hint="import a package signed by a trusted key, or turn the policy off "
                    "with `fota-studio repo require-signed off`",
                )
            if norm_fmt != "bin" and base_address is not None:
                detected = norm_fmt or firmware.detect_format(data, source_name)
                if detected != "bin":
                    raise RepositoryError(
                        f"{source_name}: a base address applies only to binary files "
                        f"(this is {detected})",
                        hint="leave out the base address; HEX and S-record carry addresses",
                    )
            if (
                base_address is None
                and (norm_fmt or firmware.detect_format(data, source_name)) == "bin"
            ):
                raise ImageError(
                    "not a HEX or S-record file, so it is read as a raw binary, which needs the "
                    "address of its first byte",
                    source=source_name,
                    hint="give a base address (CLI: --base-address 0x10000)",
                )
            image, source_format = firmware.load_image(
                data, fmt=norm_fmt, base_address=base_address, source=source_name
            )
            file_bytes = data
            if source_format != "bin":
                base_address = None
        if progress is not None:
            progress(0.6)
        if image.total_size == 0:
            raise ImageError("contains no firmware data", source=source_name)
        brand_c = _clean_name(brand, "brand")
        model_c = _clean_name(model, "model")
        version_c = _clean_name(version, "version")
        repo_id = self._repository_id(brand_c, model_c)
        if repo_id is None and not create_repository:
            self.get_repository(brand_c, model_c)  # raises, naming the known repositories
        warnings: list[str] = []
        if repo_id is not None:
            self._check_new_version(brand_c, model_c, version_c)
            image_sha = image.sha256()
            for other in self.list_versions(brand_c, model_c):
                if other.sha256 == image_sha:
                    warnings.append(
                        f"the image of {version_c} is identical to version {other.version} "
                        f"(image SHA-256 {image_sha[:12]}…)"
                    )
        return PreparedImport(
            brand=brand_c,
            model=model_c,
            version=version_c,
            file_bytes=file_bytes,
            image=image,
            source_name=source_name,
            source_format=source_format,
            notes=notes.strip(),
            base_address=base_address,
            imported_by=imported_by if imported_by is not None else default_user(),
            signature_state=signature_state,
            signer=signer,
            create_repository=create_repository,
            warnings=tuple(warnings),
            **policy,
        )

    def _check_new_version(self, brand: str, model: str, version: str) -> None:
        rows = self.ws.read(
            "SELECT 1 FROM versions v JOIN repositories r ON r.id = v.repository_id "
            "WHERE r.brand = ? AND r.model = ? AND v.version = ?",
            (brand, model, version),
        )
        if rows:
            raise self._duplicate_error(brand, model, version)

    @staticmethod
    def _duplicate_error(brand: str, model: str, version: str) -> RepositoryError:
        return RepositoryError(
            f"version {version} already exists in {brand} / {model}; versions are immutable — "
            "import under a new version or retire the old one"
        )

    def commit_imports(
        self,
        items: Sequence[PreparedImport],
        *,
        in_transaction: Callable[[_Cursor], None] | None = None,
    ) -> list[ImportResult]:
        """Store prepared imports: blobs first (atomic, fsynced), then ALL rows in one transaction.

        `in_transaction` runs inside that transaction (e.g. to record a setting atomically).
        """
        for item in items:
            self.ws.blobs.put(item.file_bytes)
        ids: list[int] = []
        with self.ws.transaction() as cur:
            for item in items:
                row = cur.execute(
                    "SELECT id FROM repositories WHERE brand = ? AND model = ?",
                    (item.brand, item.model),
                ).fetchone()
                if row is not None:
                    repo_id = int(row[0])
                elif item.create_repository:
                    repo_id = self._insert_repository(
                        cur, item.brand, item.model, item.repository_description
                    )
                else:
                    raise RepositoryError(
                        f'no Software Repository "{item.brand} / {item.model}"',
                        hint="create it first, or import with --create",
                    )
                try:
                    c = cur.execute(
                        "INSERT INTO versions(repository_id, version, notes, blob_sha256, crc32, "
                        "size, segments, source_name, source_format, imported_at, imported_by, "
                        "signature_state, signer, retired, signer_fingerprint, hardware_ids, "
                        "bootloader_versions, release_counter) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                        (
                            repo_id,
                            item.version,
                            item.notes,
                            hashlib.sha256(item.file_bytes).hexdigest(),
                            item.image.crc32(),
                            item.image.total_size,
                            self._segments_json(item),
                            item.source_name,
                            item.source_format,
                            _now(),
                            item.imported_by,
                            item.signature_state,
                            item.signer,
                            item.signer_fingerprint,
                            json.dumps(list(item.hardware_ids)),
                            json.dumps(list(item.bootloader_versions)),
                            item.release_counter,
                        ),
                    )
                except sqlite3.IntegrityError:
                    raise self._duplicate_error(item.brand, item.model, item.version) from None
                ids.append(int(c.lastrowid or 0))
            if in_transaction is not None:
                in_transaction(cur)
        results = []
        for item, vid in zip(items, ids, strict=True):
            rows = self.ws.read(self._VERSION_SELECT + "WHERE v.id = ?", (vid,))
            results.append(ImportResult(self._row_to_version(rows[0]), item.warnings))
        return results

    # -- reading ---------------------------------------------------------------------------

    def read_file_bytes(self, v: VersionInfo) -> bytes:
        """The version's firmware file bytes; WorkspaceError when the blob is missing or corrupt."""
        data = self.ws.blobs.get(v.file_sha256)
        if hashlib.sha256(data).hexdigest() != v.file_sha256:
            raise WorkspaceError(
                f"{v.label}: stored file {v.file_sha256[:12]}… is corrupted (hash mismatch)",
                hint="run `fota-studio repo verify`; re-import the version or restore a backup",
            )
        return data

    def load_image(self, v: VersionInfo) -> FirmwareImage:
        """Parse the version's stored file into a FirmwareImage (checks its hashes)."""
        data = self.read_file_bytes(v)
        image, _ = firmware.load_image(
            data,
            fmt=v.source_format if v.source_format in SOURCE_FORMATS else None,
            base_address=v.base_address if v.source_format == "bin" else None,
            source=f"{v.label} ({v.source_name})",
        )
        if v.sha256 and image.sha256() != v.sha256:
            raise WorkspaceError(
                f"{v.label}: image data does not match its recorded SHA-256",
                hint="run `fota-studio repo verify`; re-import the version",
            )
        return image

    # -- export ----------------------------------------------------------------------------

    def export(
        self,
        brand: str,
        model: str,
        version: str,
        fmt: str,
        output: Path | str,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        signer: str = "",
        policy: dict[str, Any] | None = None,
        confirm_size: Callable[[int, int], bool] | None = None,
    ) -> Path:
        """Write a version as hex|s19|bin|package to `output` (atomically) and return the path.

        The original file is written unchanged when `fmt` is its own format. A package is
        unsigned unless `signing_key` is given; it carries the version's package policy, or
        `policy` (hardware_ids, bootloader_versions, release_counter) when given.

        A binary export streams the address span (gaps filled with 0xFF) to the file. When that
        file would be much larger than the data (`firmware.BINARY_BLOWUP_FACTOR`), it is written
        only if `confirm_size(file_bytes, data_bytes)` says yes; otherwise RepositoryError
        names the size.
        """
        norm = _normalise_fmt(fmt)
        if norm is None:
            raise RepositoryError("no export format given", hint="use hex, s19, bin or package")
        v = self.get_version(brand, model, version)
        out = Path(output)
        if norm == "bin" and v.source_format != "bin":
            self._check_binary_size(v, confirm_size)
            image = self.load_image(v)
            try:
                _atomic_stream(out, lambda fh: firmware.write_binary(image, fh))
            except OSError as exc:
                raise RepositoryError(f"{out}: cannot write ({exc.strerror})") from exc
            return out
        file_bytes = self.read_file_bytes(v)
        if norm == "package":
            name = (
                f"{_safe_file_part(v.model)}_{_safe_file_part(v.version)}"
                f"{_FILE_EXT.get(v.source_format, '.bin')}"
            )
            data = package.build_package(
                file_bytes,
                name,
                brand=v.brand,
                model=v.model,
                version=v.version,
                release_notes=v.notes,
                created_by=default_user(),
                fmt=v.source_format,
                base_address=v.base_address,
                signing_key=signing_key,
                signer=signer,
                hardware_ids=tuple((policy or {}).get("hardware_ids", v.hardware_ids)),
                bootloader_versions=tuple(
                    (policy or {}).get("bootloader_versions", v.bootloader_versions)
                ),
                release_counter=(policy or {}).get("release_counter", v.release_counter),
            )
        elif norm == v.source_format:
            data = file_bytes
        else:
            image = self.load_image(v)
            if norm == "hex":
                data = firmware.to_hex(image)
            elif norm == "srec":
                data = firmware.to_srec(image)
            else:
                _, data = firmware.to_binary(image)
        try:
            atomic_write(out, data, mode=public_file_mode())  # an export, not a secret
        except OSError as exc:
            raise RepositoryError(f"{out}: cannot write ({exc.strerror})") from exc
        return out

    @staticmethod
    def _check_binary_size(v: VersionInfo, confirm_size: Callable[[int, int], bool] | None) -> None:
        """Refuse (unless confirmed) a binary export much larger than the version's data."""
        if not v.segments:
            return
        span = v.segments[-1][0] + v.segments[-1][1] - v.segments[0][0]
        if not firmware.binary_needs_confirmation(span, v.size):
            return
        if confirm_size is not None and confirm_size(span, v.size):
            return
        raise RepositoryError(
            f"{v.label}: a binary export would write {span:,} bytes ({span / 2**20:,.1f} MiB) "
            f"for {v.size:,} bytes of data (the gaps between its {len(v.segments)} segments "
            "are filled with 0xFF); not written",
            hint="export as hex or s19 (they keep the gaps), or confirm the size "
            "(`repo export --allow-large-bin`)",
        )

    # -- lifecycle -------------------------------------------------------------------------

    def retire(self, brand: str, model: str, version: str) -> VersionInfo:
        """Mark a version retired (kept, but not offered for new updates); idempotent."""
        v = self.get_version(brand, model, version)
        with self.ws.transaction() as cur:
            cur.execute("UPDATE versions SET retired = 1 WHERE id = ?", (v.id,))
        return self.get_version(brand, model, version)

    def verify(self, progress: ProgressCallback | None = None) -> list[str]:
        """Re-hash and re-parse every version's file; one line per problem (empty = all OK)."""
        return self.verify_counted(progress)[0]

    def verify_counted(self, progress: ProgressCallback | None = None) -> tuple[list[str], int]:
        """`verify` plus how many versions it checked (each version listed and read once)."""
        problems: list[str] = []
        verdict = self.ws.integrity_check()
        if verdict != "ok":
            problems.append(f"workspace database: integrity check failed: {verdict}")
        versions = self.all_versions()
        for n, v in enumerate(versions):
            if progress is not None:
                progress(n / max(1, len(versions)))
            if not self.ws.blobs.exists(v.file_sha256):
                problems.append(f"{v.label}: file {v.file_sha256[:12]}… is missing")
                continue
            if not self.ws.blobs.verify(v.file_sha256):
                problems.append(
                    f"{v.label}: file {v.file_sha256[:12]}… is corrupted (hash mismatch)"
                )
                continue
            try:
                image = self.load_image(v)
            except FotaError as exc:
                problems.append(f"{v.label}: {exc}")
                continue
            if image.crc32() != v.crc32 or image.total_size != v.size:
                problems.append(f"{v.label}: image CRC32/size do not match the recorded values")
        if progress is not None:
            progress(1.0)
        return problems, len(versions)

    # -- signing policy (infra/trust.py owns it; these delegate) -----------------------------

    def trusted_keys(self) -> dict[str, bytes]:
        """Trusted (not revoked) package signers: name -> Ed25519 public key PEM."""
        return trust.TrustStore(self.ws).trusted_keys()

    def add_trusted_key(self, name: str, public_pem: bytes) -> None:
        """Trust `public_pem` as signer `name`; see `TrustStore.add` (replacing is logged)."""
        trust.TrustStore(self.ws).add(name, public_pem)

    def remove_trusted_key(self, name: str) -> None:
        """Stop trusting (and revoke) the key of signer `name`; RepositoryError when unknown."""
        trust.TrustStore(self.ws).remove(name)

    @property
    def require_signed_packages(self) -> bool:
        """When True, imports accept only packages signed by a trusted key."""
        return trust.TrustStore(self.ws).require_signed_packages

    @require_signed_packages.setter
    def require_signed_packages(self, value: bool) -> None:
        trust.TrustStore(self.ws).set_require_signed(value)

    def signature_policy_problem(self, v: VersionInfo) -> str | None:
        """Why `v` may not reach an ECU under the trust policy, or None (see
        `trust.check_flashable`, the one rule with the hardware and downgrade checks)."""
        return trust.TrustStore(self.ws).flash_problem(v)
