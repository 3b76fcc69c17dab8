"""`fota-studio workspace check`: everything that can be wrong with a workspace folder, read-only.

`check_workspace(root)` opens the workspace read-only (it never writes: no migration, no WAL
switch, no recovery) and reports, each problem naming what and where:

- the schema version (newer than this FOTA Studio, or older and not yet upgraded);
- SQLite's `PRAGMA integrity_check` (every message, up to SQLite's limit) and
  `PRAGMA foreign_key_check`;
- every row of every table read back (damaged overflow pages surface only then), and the
  values that must have a shape: `*sha256` columns are 64 hex digits, JSON columns parse;
- every blob a row references (firmware versions, flash-job bus logs, anything a later schema
  adds to `Workspace.referenced_blobs`): missing, or its content no longer hashing to its name;
- a database that cannot be opened at all (not a database, torn header).

SQLite keeps no checksum of row contents, so random bytes inside a free-text value (a release
note) go unnoticed here; the records those matter for are signed (`records verify`).

Notes (not problems): flash jobs left "started" by a killed process (the next writable open
marks them interrupted), unreferenced blobs and temp files (`collect_garbage` removes them).
Thread use: any thread; it opens its own connection.
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from fota_studio.core.errors import FotaError
from fota_studio.infra.workspace import DB_NAME, SCHEMA_VERSION, Workspace


@dataclass
class CheckReport:
    """What `check_workspace` found: problems fail the check, notes do not."""

    root: Path
    schema_version: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    blobs_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def _schema_of(db: Path) -> int | None:
    """PRAGMA user_version read through a read-only connection, or None when unreadable."""
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(str(db.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _referencers(ws: Workspace) -> dict[str, str]:
    """Blob hash -> who references it (for the messages); the rest of referenced_blobs too."""
    who: dict[str, str] = {}
    for r in ws.read(
        "SELECT r.brand, r.model, v.version, v.blob_sha256 FROM versions v "
        "JOIN repositories r ON r.id = v.repository_id"
    ):
        who.setdefault(r["blob_sha256"], f"firmware {r['brand']} {r['model']} {r['version']}")
    for r in ws.read("SELECT id, buslog_sha256 FROM flash_records WHERE buslog_sha256 IS NOT NULL"):
        who.setdefault(r["buslog_sha256"], f"bus log of flash job #{r['id']}")
    for sha in ws.referenced_blobs():
        who.setdefault(sha, "a workspace row")
    return who


#: Columns holding JSON (the table's name . column) that must parse.
JSON_COLUMNS = frozenset(
    {"versions.segments", "machines.installed", "flash_records.record", "request_entries.data"}
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_rows(ws: Workspace, report: CheckReport) -> None:
    """Read every row back; check foreign keys and the shaped columns."""
    db = ws.root / DB_NAME
    try:
        for r in ws.read("PRAGMA foreign_key_check"):
            report.problems.append(
                f"{db}: {r[0]} row {r[1]} points to a missing {r[2]} row (foreign key)"
            )
        tables = [
            str(r[0])
            for r in ws.read("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not str(r[0]).startswith("sqlite_")
        ]
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{db}: cannot read the schema ({exc})")
        return
    for table in tables:
        try:
            rows = ws.read(f'SELECT rowid AS _rowid_, * FROM "{table}"')
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"{db}: table {table} cannot be read ({exc})")
            continue
        columns = rows[0].keys() if rows else []  # sqlite3.Row iterates values, not names
        for row in rows:
            for col in columns:
                value = row[col]
                where = f"{db}: {table} row {row['_rowid_']} column {col}"
                if col.endswith("sha256") and value not in (None, ""):
                    if not isinstance(value, str) or not _SHA256.fullmatch(value):
                        report.problems.append(f"{where}: {str(value)[:20]!r} is not a SHA-256")
                elif f"{table}.{col}" in JSON_COLUMNS and value is not None:
                    try:
                        json.loads(value)
                    except (TypeError, ValueError):
                        report.problems.append(f"{where}: not valid JSON")


def check_workspace(root: Path) -> CheckReport:
    """Check the workspace in folder `root` (read-only); see the module docstring."""
    report = CheckReport(Path(root))
    db = report.root / DB_NAME
    if not db.is_file():
        report.problems.append(f"{report.root}: no workspace database ({DB_NAME}) here")
        return report
    report.schema_version = _schema_of(db)
    if report.schema_version is not None and report.schema_version > SCHEMA_VERSION:
        report.problems.append(
            f"{db}: schema {report.schema_version} is newer than this FOTA Studio understands "
            f"({SCHEMA_VERSION}); update FOTA Studio"
        )
        return report
    if report.schema_version is not None and report.schema_version < SCHEMA_VERSION:
        report.notes.append(
            f"schema {report.schema_version}: upgraded to {SCHEMA_VERSION} on the next "
            "writable open"
        )
    try:
        ws = Workspace.open(report.root, read_only=True)
    except FotaError as exc:
        if report.schema_version is not None and report.schema_version < SCHEMA_VERSION:
            return report  # an older schema cannot be opened read-only; not a fault
        report.problems.append(str(exc))
        return report
    if report.schema_version is None:  # read-only media: only the immutable open could read it
        report.schema_version = ws.schema_version
    try:
        _check_open(ws, report)
    finally:
        ws.close()
    return report


def _check_open(ws: Workspace, report: CheckReport) -> None:
    try:
        verdicts = [str(r[0]) for r in ws.read("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        verdicts = [f"integrity_check failed: {exc}"]
    if verdicts != ["ok"]:
        report.problems += [f"{ws.root / DB_NAME}: {v}" for v in verdicts]
    _check_rows(ws, report)
    try:
        who = _referencers(ws)
        started = ws.read("SELECT id, ecu, machine FROM flash_records WHERE result = 'started'")
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{ws.root / DB_NAME}: cannot read the tables ({exc})")
        return
    for sha, owner in sorted(who.items(), key=lambda kv: kv[1]):
        report.blobs_checked += 1
        path = ws.blobs.path(sha)
        if not path.is_file():
            report.problems.append(f"missing blob {sha[:12]}… ({owner}): {path} is gone")
        elif not ws.blobs.verify(sha):
            report.problems.append(
                f"corrupt blob {sha[:12]}… ({owner}): {path} no longer hashes to its name"
            )
    for r in started:
        report.notes.append(
            f"flash job #{r['id']} ({r['ecu']} on {r['machine'] or '-'}) is running or was "
            "interrupted; the next writable open marks it if its process is gone"
        )
    orphans = set(ws.blobs.all_hashes()) - set(who)
    if orphans:
        report.notes.append(
            f"{len(orphans)} unreferenced blob(s) (left by an interrupted write; removed by "
            "garbage collection)"
        )
