"""Store flash records and their BLF bus logs in the workspace.

`save_flash_record(ws, record, buslog_path)` puts the BLF bytes of the job's session into the
blob store (atomic, content-addressed) BEFORE committing the `flash_records` row that names its
SHA-256 in `buslog_sha256` (workspace durability rule), then deletes the temporary BLF file.
`list_flash_records` / `load_flash_record` / `load_buslog` read them back. Any thread may call
these (the workspace serialises access); the engine calls them from the job's worker thread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from fota_studio.core.errors import WorkspaceError
from fota_studio.core.flash_record import FlashRecord
from fota_studio.infra.buslog_store import restore_buslog
from fota_studio.infra.flash_journal import INSERT_FLASH_RECORD, flash_record_row
from fota_studio.infra.workspace import Workspace


@dataclass(frozen=True)
class FlashRecordRow:
    """One stored flash record's summary (the full record is `load_flash_record(id)`)."""

    id: int
    started_at: str
    finished_at: str | None
    machine: str
    ecu: str
    version: str
    result: str
    error: str
    buslog_sha256: str | None


def save_flash_record(
    ws: Workspace, record: FlashRecord, buslog_path: Path | None = None, *, keep_file: bool = False
) -> int:
    """Store `record` (+ the BLF file's bytes as a blob); return the new row id."""
    if buslog_path is not None and buslog_path.is_file():
        record.buslog_sha256 = ws.blobs.put(buslog_path.read_bytes())
    with ws.transaction() as cur:
        row = cur.execute(INSERT_FLASH_RECORD, flash_record_row(record))
        rid = int(row.lastrowid or 0)
    if buslog_path is not None and not keep_file:
        with contextlib.suppress(OSError):
            buslog_path.unlink()
    return rid


def list_flash_records(
    ws: Workspace, *, ecu: str | None = None, limit: int = 200
) -> list[FlashRecordRow]:
    """Newest first, optionally for one ECU."""
    sql = (
        "SELECT id, started_at, finished_at, machine, ecu, version, result, error, buslog_sha256 "
        "FROM flash_records"
    )
    params: tuple[object, ...] = ()
    if ecu is not None:
        sql += " WHERE ecu = ?"
        params = (ecu,)
    sql += " ORDER BY id DESC LIMIT ?"
    rows = ws.read(sql, (*params, limit))
    return [FlashRecordRow(**dict(r)) for r in rows]


def load_flash_record(ws: Workspace, record_id: int) -> FlashRecord:
    """The full record with this id; WorkspaceError when unknown."""
    rows = ws.read("SELECT record FROM flash_records WHERE id = ?", (record_id,))
    if not rows:
        raise WorkspaceError(f"flash record {record_id} does not exist in {ws.root}")
    return FlashRecord.from_json(rows[0]["record"])


def load_buslog(ws: Workspace, record: FlashRecord) -> bytes | None:
    """The BLF bytes of a record's session as they went on the bus (None when it has none):
    TransferData payload kept by reference is put back and checked
    (`infra/buslog_store.restore_buslog`; BuslogRestoreError when it cannot be)."""
    return restore_buslog(ws, record)
