"""Workspace storage: one folder with a SQLite database (WAL) and a content-addressed blob store.

Layout of a workspace folder::

    workspace.db        SQLite, WAL journal, schema version in PRAGMA user_version
    blobs/ab/cdef...    firmware images and bus logs, named by their SHA-256

Durability rule: a blob is written to a temp file, fsynced and renamed into place BEFORE the DB
row that references it is committed in a transaction, so a crash at any point leaves either the
old or the new state; at worst an unreferenced blob, which `collect_garbage` removes.

Thread use: one `Workspace` may be shared by the GUI thread and engine workers; every DB access
goes through `transaction()` / `read()`, which serialise on one lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from fota_studio.core.errors import FotaError, WorkspaceError

DB_NAME = "workspace.db"
BLOB_DIR = "blobs"

#: Schema migrations; index i upgrades from user_version i to i+1. Never edit a shipped entry:
#: append a new one.
MIGRATIONS: list[str] = [
    # 0 -> 1: repositories, EAs, machines, settings, trusted keys
    """
    CREATE TABLE repositories (
        id INTEGER PRIMARY KEY,
        brand TEXT NOT NULL,
        model TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        UNIQUE (brand, model)
    );
    CREATE TABLE versions (
        id INTEGER PRIMARY KEY,
        repository_id INTEGER NOT NULL REFERENCES repositories(id),
        version TEXT NOT NULL,
        notes TEXT NOT NULL DEFAULT '',
        blob_sha256 TEXT NOT NULL,
        crc32 INTEGER NOT NULL,
        size INTEGER NOT NULL,
        segments TEXT NOT NULL,
        source_name TEXT NOT NULL DEFAULT '',
        source_format TEXT NOT NULL DEFAULT '',
        imported_at TEXT NOT NULL,
        imported_by TEXT NOT NULL DEFAULT '',
        signature_state TEXT NOT NULL DEFAULT 'unsigned',
        signer TEXT NOT NULL DEFAULT '',
        retired INTEGER NOT NULL DEFAULT 0,
        UNIQUE (repository_id, version)
    );
    CREATE TABLE eas (
        name TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE machines (
        serial TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        ea_name TEXT REFERENCES eas(name) ON UPDATE CASCADE,
        installed TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE machine_history (
        id INTEGER PRIMARY KEY,
        serial TEXT NOT NULL REFERENCES machines(serial),
        ecu TEXT NOT NULL,
        version TEXT,
        at TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE trusted_keys (
        name TEXT PRIMARY KEY,
        public_key_pem TEXT NOT NULL,
        added_at TEXT NOT NULL
    );
    CREATE TABLE flash_records (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        machine TEXT NOT NULL DEFAULT '',
        ecu TEXT NOT NULL,
        version TEXT NOT NULL DEFAULT '',
        image_sha256 TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        record TEXT NOT NULL,
        buslog_sha256 TEXT
    );
    """,
    # 1 -> 2: update requests and their append-only, hash-chained record entries
    """
    CREATE TABLE update_requests (
        id INTEGER PRIMARY KEY,
        machine TEXT NOT NULL,
        ecu TEXT NOT NULL,
        brand TEXT NOT NULL,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        step TEXT NOT NULL DEFAULT '',
        approved INTEGER NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        installed_before TEXT,
        flash_record_id INTEGER REFERENCES flash_records(id),
        owner_pid INTEGER
    );
    CREATE INDEX update_requests_ecu ON update_requests(machine, ecu, status);
    CREATE TABLE request_entries (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES update_requests(id),
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    );
    CREATE INDEX request_entries_request ON request_entries(request_id, id);
    """,
    # 2 -> 3: signed records (infra/record_signing.py): per entry the request fields it sets
    # (`state`, JSON) and an Ed25519 signature of its hash; the signed chain head (one row)
    """
    ALTER TABLE request_entries ADD COLUMN state TEXT;
    ALTER TABLE request_entries ADD COLUMN sig TEXT;
    CREATE TABLE record_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        count INTEGER NOT NULL,
        last_hash TEXT NOT NULL,
        at TEXT NOT NULL,
        first_signed INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        sig TEXT NOT NULL
    );
    """,
    # 3 -> 4: trust by key (infra/trust.py): each version's signing-key fingerprint and package
    # policy (hardware IDs, bootloader versions, release counter); the append-only trust log
    # (trusted / replaced / revoked, who, when); signed downgrade allowances
    """
    ALTER TABLE versions ADD COLUMN signer_fingerprint TEXT NOT NULL DEFAULT '';
    ALTER TABLE versions ADD COLUMN hardware_ids TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE versions ADD COLUMN bootloader_versions TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE versions ADD COLUMN release_counter INTEGER;
    CREATE TABLE trust_events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        by TEXT NOT NULL,
        action TEXT NOT NULL,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX trust_events_fingerprint ON trust_events(fingerprint, action);
    CREATE TABLE downgrade_allowances (
        id INTEGER PRIMARY KEY,
        statement TEXT NOT NULL,
        signature TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL
    );
    """,
    # 4 -> 5: indexes for the queries lists use (issue 21): versions by repository for the
    # grouped counts, machine history by serial, requests by status and by last change (the
    # Requests panel's refresh reads only what changed), flash records by ECU (newest first)
    """
    CREATE INDEX IF NOT EXISTS versions_repository ON versions(repository_id, retired);
    CREATE INDEX IF NOT EXISTS machine_history_serial ON machine_history(serial, id);
    CREATE INDEX IF NOT EXISTS update_requests_status ON update_requests(status);
    CREATE INDEX IF NOT EXISTS update_requests_updated ON update_requests(updated_at);
    CREATE INDEX IF NOT EXISTS flash_records_ecu ON flash_records(ecu, id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def _fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def public_file_mode() -> int:
    """The mode `open()` gives a new file (0o666 minus the umask): for exports, which are not
    secrets — a temp file from `mkstemp` is 0o600, readable by its owner only."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS, Windows): read it by setting it back at once
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename.

    The file is 0o600 (owner only) unless `mode` is given (exports: `public_file_mode()`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def storage_error(exc: BaseException, where: Path | str) -> WorkspaceError | None:
    """The one-line WorkspaceError for a full disk / read-only media / I/O failure, else None.

    Used where the workspace writes (blobs, transactions) so a full disk or a read-only
    medium reads "workspace …: the disk is full" instead of a traceback.
    """
    text = str(exc).lower()
    errno_ = getattr(exc, "errno", None)
    if errno_ in (28, 27) or "disk is full" in text or "file too large" in text:  # ENOSPC/EFBIG
        return WorkspaceError(
            f"{where}: the disk is full ({exc})",
            hint="free some space (or choose another workspace folder) and try again; nothing "
            "half-written was kept",
        )
    if errno_ in (30, 13) or "readonly" in text or "read-only" in text:  # EROFS/EACCES
        return WorkspaceError(
            f"{where}: the workspace is read-only ({exc})",
            hint="only read-only commands (list, show, verify, check) work here; copy the "
            "workspace to a writable folder to change it",
        )
    if isinstance(exc, OSError) or "disk i/o error" in text:
        return WorkspaceError(
            f"{where}: storage error ({exc})",
            hint="check the disk (free space, permissions, media) and try again",
        )
    return None


def _is_writable(root: Path, db_path: Path) -> bool:
    """True when the folder (and the DB file, if present) can be written (False on read-only
    media, even for root: access() reports EROFS)."""
    if not root.exists():
        parent = next((p for p in root.parents if p.exists()), None)
        return parent is not None and os.access(parent, os.W_OK)
    if not os.access(root, os.W_OK):
        return False
    return not db_path.exists() or os.access(db_path, os.W_OK)


def make_folder(path: Path, what: str, *, hint: str) -> None:
    """Create the folder `path` (and its parents); when the OS refuses, a WorkspaceError that
    names the folder, `what` it is for, the OS reason and the `hint`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(
            f"{path}: cannot create the {what} ({exc.strerror or exc})", hint=hint
        ) from exc


class BlobStore:
    """Content-addressed files under `blobs/`, named by SHA-256; written atomically."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root
        if create:
            self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Return the file path of a blob (it may not exist)."""
        return self.root / sha256[:2] / sha256[2:]

    def put(self, data: bytes) -> str:
        """Store bytes (idempotent) and return their SHA-256 hex digest."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if not target.exists():
            try:
                atomic_write(target, data)
            except OSError as exc:
                raise (storage_error(exc, self.root) or exc) from exc
        return sha

    def get(self, sha256: str) -> bytes:
        """Return a blob's bytes; WorkspaceError if missing."""
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise WorkspaceError(
                f"blob {sha256[:12]}… is missing from {self.root}",
                hint="run `fota-studio repo verify`; restore the workspace from a backup",
            ) from None

    def exists(self, sha256: str) -> bool:
        """True when the blob file exists."""
        return self.path(sha256).is_file()

    def verify(self, sha256: str) -> bool:
        """Re-hash a blob; True when present and its content matches its name."""
        p = self.path(sha256)
        if not p.is_file():
            return False
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest() == sha256

    def all_hashes(self) -> list[str]:
        """Every blob name in the store."""
        out: list[str] = []
        if not self.root.is_dir():
            return out
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                out.extend(sub.name + f.name for f in sub.iterdir() if not f.name.startswith("."))
        return out


class Workspace:
    """An open workspace folder: DB connection, blob store and small typed settings.

    The schema version is read before anything is written (a newer workspace is refused
    untouched: not even switched to WAL). A folder on read-only media (or opened with
    `read_only=True`) opens read-only: reads work, every write raises one WorkspaceError.
    """

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        db_path = self.root / DB_NAME
        self.read_only = read_only or not _is_writable(self.root, db_path)
        if self.read_only:
            if not db_path.is_file():
                raise WorkspaceError(
                    f"{self.root}: no workspace here, and the folder is read-only",
                    hint="choose another folder with --workspace",
                )
        else:
            make_folder(
                self.root,
                "workspace folder",
                hint="choose another folder with --workspace",
            )
        try:
            self.blobs = BlobStore(self.root / BLOB_DIR, create=not self.read_only)
        except OSError as exc:
            raise (storage_error(exc, self.root) or exc) from exc
        try:
            self._conn = self._connect(db_path)
            self._check_schema(self._stored_version())
            if not self.read_only:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
                self._conn.execute("PRAGMA foreign_keys=ON")
                self._migrate()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            # UnicodeDecodeError: SQLite met a damaged schema text (reliability fuzz record_db).
            with contextlib.suppress(Exception):
                self._conn.close()
            converted = storage_error(exc, db_path) if _is_storage(exc) else None
            raise converted or WorkspaceError(
                f"{db_path}: not a usable workspace database ({exc})",
                hint="open another folder, or restore workspace.db from a backup",
            ) from exc
        except WorkspaceError:
            with contextlib.suppress(Exception):
                self._conn.close()
            raise
        if not self.read_only:
            # A flash killed mid-way left a "started" record: mark it interrupted on this
            # open (imported here: flash_journal builds on this module).
            from fota_studio.infra.flash_journal import recover_interrupted_flashes

            # Damaged pages must not make the workspace unopenable: `records verify` and
            # `workspace check` name them (found by reliability/fuzz.py's record_db target).
            with contextlib.suppress(sqlite3.DatabaseError, UnicodeDecodeError):
                recover_interrupted_flashes(self)

    def _connect(self, db_path: Path) -> sqlite3.Connection:
        """Open the DB; read-only media get `mode=ro`, or `immutable=1` when SQLite cannot
        create the WAL index (-shm) beside a WAL-mode database there."""
        if not self.read_only:
            conn = sqlite3.connect(
                db_path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            conn.row_factory = sqlite3.Row
            return conn
        uri = "file:" + urllib.parse.quote(str(db_path.resolve()))
        last: sqlite3.Error | None = None
        for flags in ("?mode=ro", "?mode=ro&immutable=1"):
            conn = sqlite3.connect(
                uri + flags, uri=True, check_same_thread=False, isolation_level=None
            )
            try:
                conn.execute("PRAGMA user_version").fetchone()
            except sqlite3.Error as exc:
                conn.close()
                last = exc
                continue
            conn.row_factory = sqlite3.Row
            return conn
        assert last is not None
        raise last

    def _stored_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _check_schema(self, current: int) -> None:
        """Refuse a newer schema (before any write) and an older one opened read-only."""
        if current > SCHEMA_VERSION:
            raise WorkspaceError(
                f"{self.root}: workspace schema {current} is newer than this FOTA Studio "
                f"understands ({SCHEMA_VERSION}); it was not changed",
                hint="update FOTA Studio, or open another workspace",
            )
        if self.read_only and current < SCHEMA_VERSION:
            raise WorkspaceError(
                f"{self.root}: workspace schema {current} needs an upgrade to "
                f"{SCHEMA_VERSION}, but the workspace is read-only",
                hint="copy it to a writable folder and open it there once",
            )

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path | str, *, read_only: bool = False) -> Workspace:
        """Open (creating if needed) the workspace in folder `root`; read-only on request or
        when the folder cannot be written."""
        return cls(Path(root), read_only=read_only)

    def close(self) -> None:
        """Close the DB connection (checkpointing the WAL)."""
        with self._lock:
            if not self.read_only:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        # The version is re-read inside each write transaction: several processes opening a
        # new workspace at once must not run the same migration twice.
        while True:
            with self.transaction() as cur:
                current = int(cur.execute("PRAGMA user_version").fetchone()[0])
                self._check_schema(current)
                if current >= SCHEMA_VERSION:
                    return
                cur.executescript_parts(MIGRATIONS[current])
                cur.execute(f"PRAGMA user_version = {current + 1}")

    @property
    def schema_version(self) -> int:
        """The schema version stored in the DB."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # -- DB access -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Cursor]:
        """Run a write transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on any exception)."""
        if self.read_only:
            raise WorkspaceError(
                f"{self.root}: the workspace is read-only; this command needs to write",
                hint="only read-only commands (list, show, verify, check) work here; copy the "
                "workspace to a writable folder to change it",
            )
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                converted = storage_error(exc, self.root) if _is_storage(exc) else None
                if converted is not None:
                    raise converted from exc
                raise
            try:
                yield _Cursor(self._conn)
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                converted = storage_error(exc, self.root) if _is_storage(exc) else None
                if isinstance(exc, sqlite3.OperationalError) and converted is not None:
                    raise converted from exc
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                converted = storage_error(exc, self.root) if _is_storage(exc) else None
                if converted is not None:
                    raise converted from exc
                raise

    def read(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run one query and return all rows."""
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def integrity_check(self) -> str:
        """Return SQLite's `PRAGMA integrity_check` verdict ("ok" when healthy)."""
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- settings --------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """Return a JSON-decoded workspace setting, or `default`."""
        rows = self.read("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-encodable workspace setting."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO settings(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def referenced_blobs(self) -> set[str]:
        """Every blob hash some row references (extended by later schema versions)."""
        refs = {r["blob_sha256"] for r in self.read("SELECT blob_sha256 FROM versions")}
        refs |= {
            r["buslog_sha256"]
            for r in self.read("SELECT buslog_sha256 FROM flash_records")
            if r["buslog_sha256"]
        }
        # A bus log that keeps its TransferData payload by reference needs that image file.
        refs |= {
            r["f"]
            for r in self.read(
                "SELECT CASE WHEN json_valid(record) THEN "
                "json_extract(record, '$.buslog_image.file_sha256') END AS f "
                "FROM flash_records WHERE record LIKE '%\"buslog_image\": {%'"
            )
            if r["f"]
        }
        return refs

    def collect_garbage(self) -> list[str]:
        """Delete blobs no row references (left by a crash between blob write and commit).

        Also removes stale `.tmp-*` files of blob writes killed before their rename.
        """
        referenced = self.referenced_blobs()
        removed = []
        for sha in self.blobs.all_hashes():
            if sha not in referenced:
                with contextlib.suppress(OSError):
                    self.blobs.path(sha).unlink()
                    removed.append(sha)
        # Temp files of a blob write killed before its rename; spare ones that may be in flight.
        cutoff = time.time() - 3600.0
        for tmp in self.blobs.root.glob("*/.tmp-*"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
        return removed


def _is_storage(exc: BaseException) -> bool:
    """True for SQLite errors caused by the medium (full, read-only, I/O), not by the SQL."""
    text = str(exc).lower()
    return any(k in text for k in ("disk is full", "readonly", "read-only", "disk i/o"))


class _Cursor:
    """The handle a transaction yields: `execute` and a script runner that stays in the txn."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Execute one statement inside the transaction."""
        return self._conn.execute(sql, params)

    def one(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any], missing: FotaError
    ) -> sqlite3.Row:
        """The first row of a query that must find one; raises `missing` when it finds none."""
        row = self._conn.execute(sql, params).fetchone()
        if row is None:
            raise missing
        return cast(sqlite3.Row, row)

    def executescript_parts(self, script: str) -> None:
        """Run a ;-separated DDL script statement by statement (executescript would COMMIT)."""
        for stmt in script.split(";"):
            if stmt.strip():
                self._conn.execute(stmt)
