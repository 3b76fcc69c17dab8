"""Flash jobs that leave evidence even when killed: a "started" record first, a streamed bus log.

`begin_flash_record` commits a `flash_records` row with result "started" BEFORE the first frame
goes to the ECU and names the file the job's BLF bus log streams into: `<workspace>/buslogs/
flash-<id>.blf` (inside the workspace, not the temp folder, so a kill leaves it where the next
start looks). `finish_flash_record` stores the final record over that row and moves the bus log
into the blob store. The job holds the ECU's lock (`infra/locks.EcuLock`) from before the begin
to after the finish, so a "started" row whose ECU lock nobody holds belongs to a process that
died: `recover_interrupted_flashes` (run by every writable `Workspace` open) marks it
"interrupted", keeps the partial bus log as a blob and names it in the record.

Thread use: any thread (the workspace serialises access); the engine calls begin/finish from
the job's worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import time
from pathlib import Path

from fota_studio.core.errors import FotaError
from fota_studio.core.flash_record import FlashRecord
from fota_studio.infra.locks import ecu_busy
from fota_studio.infra.workspace import Workspace, make_folder

log = logging.getLogger(__name__)

BUSLOG_DIR = "buslogs"
#: `flash_records.result` of a job that is running (or died before it finished).
RESULT_STARTED = "started"
#: `flash_records.result` of a job whose process ended before it finished.
RESULT_INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = (
    "interrupted: the flashing process ended (killed, crashed or powered off) before the flash "
    "finished; the ECU may hold a partial image and stay in its bootloader — flash it again"
)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).isoformat(timespec="milliseconds")


def buslog_path(ws: Workspace, record_id: int) -> Path:
    """Where the bus log of flash record `record_id` streams while the job runs."""
    return ws.root / BUSLOG_DIR / f"flash-{record_id}.blf"


def elision_journal_path(blf: Path) -> Path:
    """The journal of the runs a streaming bus log keeps by reference (next to the log):
    JSON lines {"image": ref}, {"start": [...]}, {"run": [...]} (`protocols/buslog_elision`)."""
    return blf.with_suffix(".runs")


#: The statement that adds one flash record row (values: `flash_record_row`).
INSERT_FLASH_RECORD = (
    "INSERT INTO flash_records(started_at, finished_at, machine, ecu, version, "
    "image_sha256, result, error, record, buslog_sha256) VALUES (?,?,?,?,?,?,?,?,?,?)"
)


def begin_flash_record(ws: Workspace, record: FlashRecord) -> tuple[int, Path]:
    """Commit `record` as a "started" row; return its id and the bus-log file to stream into."""
    record.result = RESULT_STARTED
    if not record.started_at:
        record.started_at = time.time()
    with ws.transaction() as cur:
        row = cur.execute(
            INSERT_FLASH_RECORD,
            (
                _iso(record.started_at),
                None,
                record.machine,
                record.ecu,
                record.version,
                record.image_sha256,
                RESULT_STARTED,
                "",
                record.to_json(),
                None,
            ),
        )
        rid = int(row.lastrowid or 0)
    path = buslog_path(ws, rid)
    make_folder(
        path.parent,
        "bus-log folder",
        hint="check the workspace folder's permissions and free space",
    )
    return rid, path


def _store_buslog(ws: Workspace, path: Path | None) -> str | None:
    """Move a (complete or partial) bus log into the blob store; its SHA-256, or None."""
    if path is None or not path.is_file():
        return None
    sha = ws.blobs.put(path.read_bytes())
    with contextlib.suppress(OSError):
        path.unlink()
    with contextlib.suppress(OSError):
        elision_journal_path(path).unlink()
    return sha


def finish_flash_record(
    ws: Workspace, record_id: int, record: FlashRecord, buslog: Path | None
) -> None:
    """Store the final `record` over the "started" row and its bus log as a blob."""
    sha = _store_buslog(ws, buslog)
    if sha is not None:
        record.buslog_sha256 = sha
    with ws.transaction() as cur:
        cur.execute(
            "UPDATE flash_records SET started_at = ?, finished_at = ?, machine = ?, ecu = ?, "
            "version = ?, image_sha256 = ?, result = ?, error = ?, record = ?, "
            "buslog_sha256 = ? WHERE id = ?",
            (*flash_record_row(record), record_id),
        )


def flash_record_row(record: FlashRecord) -> tuple[str | None, ...]:
    """The `flash_records` column values of a finished `record`, in the order of
    `INSERT_FLASH_RECORD` (and of the UPDATE that finishes a started row)."""
    return (
        _iso(record.started_at),
        _iso(record.finished_at),
        record.machine,
        record.ecu,
        record.version,
        record.image_sha256,
        record.result,
        record.error,
        record.to_json(),
        record.buslog_sha256,
    )


def _count_frames(path: Path) -> int:
    """Frames readable from a (possibly truncated) BLF file; 0 when none can be read."""
    import can

    count = 0
    # Our own file object: BLFReader does not close the file when the header is not BLF.
    # A torn last container ends the count, nothing else.
    with path.open("rb") as fh, contextlib.suppress(Exception):
        for _msg in can.BLFReader(fh):
            count += 1
    return count


def recover_interrupted_flashes(ws: Workspace) -> list[int]:
    """Mark "started" flash records whose job is gone as "interrupted", keeping the partial
    bus log; return their ids. A job still running (its ECU lock is held) is left alone."""
    if ws.read_only:
        return []
    rows = ws.read(
        "SELECT id, machine, ecu, record FROM flash_records WHERE result = ?", (RESULT_STARTED,)
    )
    marked: list[int] = []
    for r in rows:
        try:
            if ecu_busy(ws.root, r["machine"], r["ecu"]) is not None:
                continue
            rid = int(r["id"])
            partial = buslog_path(ws, rid)
            record = FlashRecord.from_json(r["record"])
            record.result = RESULT_INTERRUPTED
            record.error = INTERRUPTED_ERROR
            if partial.is_file():
                record.finished_at = partial.stat().st_mtime
                journal = elision_journal_path(partial)
                if journal.is_file():
                    from fota_studio.infra.buslog_store import recover_partial_buslog

                    said = recover_partial_buslog(ws, partial, journal)
                    if said:
                        record.error = f"{INTERRUPTED_ERROR}; bus log: {said}"
                record.buslog_frames = _count_frames(partial)
            finish_flash_record(ws, rid, record, partial)
            marked.append(rid)
            log.warning("flash record %d (%s on %s) was interrupted", rid, r["ecu"], r["machine"])
        except (FotaError, OSError, ValueError) as exc:
            log.warning("flash record %s: cannot mark it interrupted: %s", r["id"], exc)
    return marked
