"""Read flash bus logs whole again: the TransferData payload a log keeps by reference.

A flash whose image is a stored repository version writes its bus log with the TransferData
payload zeroed and named by runs (`protocols/buslog_elision.py`); the record names the image
file (`buslog_image`) and the runs (`buslog_elided`). Every reader of a record's bus log — the
trace, `records`, the report — goes through `restore_buslog`, which checks the image file's
hash, the image's hash against the record and each run's CRC-32, then rebuilds the BLF frame
for frame. `image_reference` finds the stored file of an image before a flash;
`recover_partial_buslog` restores the partial log of a killed job from its journal.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can

from fota_studio.core import firmware
from fota_studio.core.errors import FotaError
from fota_studio.core.flash_record import FlashRecord
from fota_studio.infra.repository import SOURCE_FORMATS
from fota_studio.infra.workspace import Workspace, atomic_write
from fota_studio.protocols.buslog_elision import BuslogRestoreError, ImageView, restore_frames

log = logging.getLogger(__name__)


class _Kept(io.BytesIO):
    """A BytesIO that survives BLFWriter.stop() closing it."""

    def close(self) -> None:
        pass


def image_reference(ws: Workspace, image: Any) -> dict[str, Any] | None:
    """The stored file of `image` (a repository version holding exactly its data), as the
    record names it; None when no version holds it (a flash from a loose file) or the
    workspace cannot say (logged: the bus log then keeps every byte)."""
    sha = image.sha256()
    try:
        rows = ws.read(
            "SELECT blob_sha256, segments, source_format FROM versions "
            "WHERE crc32 = ? AND size = ?",
            (int(image.crc32()), sum(len(seg.data) for seg in image.segments)),
        )
    except (FotaError, sqlite3.Error) as exc:
        log.warning("bus log keeps every byte: the stored image cannot be looked up: %s", exc)
        return None
    for row in rows:
        try:
            meta = json.loads(row["segments"])
        except ValueError:
            continue
        if not isinstance(meta, dict) or meta.get("image_sha256") != sha:
            continue
        fmt = row["source_format"]
        base = meta.get("base_address")
        return {
            "file_sha256": row["blob_sha256"],
            "format": fmt if fmt in SOURCE_FORMATS else None,
            "base_address": None if base is None else int(base),
            "image_sha256": sha,
        }
    return None


def reference_image(ws: Workspace, ref: dict[str, Any], what: str) -> ImageView:
    """The image a record's bus log refers to, checked: the file re-hashes to its name and the
    parsed data to the image hash the record holds."""
    file_sha = str(ref.get("file_sha256") or "")
    try:
        data = ws.blobs.get(file_sha)
    except (FotaError, OSError) as exc:
        raise BuslogRestoreError(
            f"{what}: the image file {file_sha[:12]}… it refers to cannot be read: {exc}",
            hint="restore the workspace's blobs from a backup; the TransferData payload of this "
            "log is kept by reference to that file",
        ) from None
    if hashlib.sha256(data).hexdigest() != file_sha:
        raise BuslogRestoreError(
            f"{what}: the image file {file_sha[:12]}… it refers to is corrupted (hash mismatch)",
            hint="run `fota-studio repo verify`; restore the blob from a backup",
        )
    base = ref.get("base_address")
    fmt = ref.get("format")
    try:
        image, _ = firmware.load_image(
            data,
            fmt=str(fmt) if fmt else None,
            base_address=None if base is None else int(base),
            source=f"image {file_sha[:12]}",
        )
    except FotaError as exc:
        raise BuslogRestoreError(f"{what}: {exc}") from None
    if ref.get("image_sha256") and image.sha256() != ref["image_sha256"]:
        raise BuslogRestoreError(
            f"{what}: the image file holds other data than the flashed image",
            hint="the record was changed; run `fota-studio records verify`",
        )
    return ImageView(image.segments)


def _frames(data: bytes) -> Iterator[can.Message]:
    yield from can.BLFReader(io.BytesIO(data))


def _write_blf(frames: Iterator[can.Message]) -> bytes:
    out = _Kept()
    writer = can.BLFWriter(out)
    for msg in frames:
        writer.on_message_received(msg)
    writer.stop()
    return out.getvalue()


def _what(record: FlashRecord) -> str:
    return f"bus log of the {record.ecu} flash ({record.version or 'no version'})"


def restore_buslog(ws: Workspace, record: FlashRecord) -> bytes | None:
    """The record's bus log as it went on the bus (BLF bytes); None when it has none.

    BuslogRestoreError (a WorkspaceError) when the payload kept by reference cannot be put
    back exactly: its image is missing or changed, or a run's CRC-32 does not match."""
    if not record.buslog_sha256:
        return None
    data = ws.blobs.get(record.buslog_sha256)
    if not record.buslog_elided:
        return data
    what = _what(record)
    view = reference_image(ws, record.buslog_image or {}, what)
    return _write_blf(restore_frames(_frames(data), record.buslog_elided, view, what=what))


def check_restore(ws: Workspace, record: FlashRecord) -> int:
    """Put the record's elided payload back without writing a log; the bytes restored.
    BuslogRestoreError as `restore_buslog`."""
    if not record.buslog_sha256 or not record.buslog_elided:
        return 0
    what = _what(record)
    view = reference_image(ws, record.buslog_image or {}, what)
    data = ws.blobs.get(record.buslog_sha256)
    for _msg in restore_frames(_frames(data), record.buslog_elided, view, what=what):
        pass
    return sum(int(r[5]) for r in record.buslog_elided)


def read_journal(path: Path) -> tuple[dict[str, Any] | None, list[list[int]], list[int] | None]:
    """(image reference, complete runs, the open run) of an elision journal; a torn last line
    (the process was killed while writing it) is ignored."""
    ref: dict[str, Any] | None = None
    runs: list[list[int]] = []
    open_run: list[int] | None = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict):
            continue
        if "image" in item:
            ref = item["image"]
        elif "start" in item:
            open_run = [int(v) for v in item["start"]]
        elif "run" in item:
            run = [int(v) for v in item["run"]]
            if run[5] > 0:
                runs.append(run)
            open_run = None
    return ref, runs, open_run


def recover_partial_buslog(ws: Workspace, blf: Path, journal: Path) -> str:
    """Put the elided payload back into a killed job's partial bus log `blf` (in place), from
    its `journal`; what was done, for the record's error text. The log is left as it is (and
    that is said) when the image or the journal cannot be read."""
    what = f"partial bus log {blf.name}"
    try:
        ref, runs, open_run = read_journal(journal)
        if not runs and open_run is None:
            return ""
        frames: list[can.Message] = []
        with blf.open("rb") as fh:
            try:
                for msg in can.BLFReader(fh):
                    frames.append(msg)
            except Exception:  # a torn last container ends the partial log
                pass
        view = reference_image(ws, ref or {}, what)
        data = _write_blf(
            restore_frames(frames, runs, view, open_run=open_run, partial=True, what=what)
        )
        atomic_write(blf, data)
        return "its TransferData payload was restored from the image"
    except (FotaError, OSError) as exc:
        log.warning("%s: payload not restored: %s", what, exc)
        return f"its TransferData payload could not be restored ({exc}); those bytes read as 0"
