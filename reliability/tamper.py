"""Record-tampering campaign: every attack of issue 14's **Records** list, as an attacker with
write access to the workspace folder (but not the record-signing key) would run it.

`build_workspace(root)` makes a workspace through the product's own API: two update requests,
the first ends Failed after a flash whose record and BLF bus log (written by python-can's
BLFWriter) are stored like the workflow stores them. Each attack in `ATTACKS` then edits the
closed workspace with plain sqlite3 / file writes, and `run_case` asks `records verify`'s check
(infra/record_verify.verify_workspace) whether it notices; a crash of the verifier counts as
not detected. `campaign()` runs them all: `tamper_cases == tamper_detected` is the bar.
Main thread of a script or test; each case uses its own temp folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import can
import keyring
from keyring.backends.null import Keyring as NullKeyring

from fota_studio.core.errors import WorkspaceError
from fota_studio.core.flash_record import FlashRecord, StepRecord
from fota_studio.core.update_request import RequestStatus, UpdateRequest
from fota_studio.engine.records import save_flash_record
from fota_studio.infra.record_verify import verify_workspace
from fota_studio.infra.requests_store import ENTRY_FINAL, ENTRY_FLASH, ENTRY_STEP, RequestsStore
from fota_studio.infra.workspace import DB_NAME, Workspace


@contextlib.contextmanager
def private_user_state(folder: Path) -> Iterator[None]:
    """Keep the campaign's signing keys and key pins out of the user's keyring and config:
    a null keyring (so key files are used) and a config folder under `folder`."""
    old_env = os.environ.get("XDG_CONFIG_HOME")
    old_keyring = keyring.get_keyring()
    os.environ["XDG_CONFIG_HOME"] = str(folder / "config")
    keyring.set_keyring(NullKeyring())
    try:
        yield
    finally:
        keyring.set_keyring(old_keyring)
        if old_env is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = old_env


@dataclass(frozen=True)
class Scenario:
    """What `build_workspace` made: the failed request with a flash record, and a second one."""

    root: Path
    failed_request: int
    flash_record: int
    buslog_sha256: str
    other_request: int


def _write_blf(path: Path, frames: int = 40) -> None:
    with can.BLFWriter(str(path)) as writer:
        for i in range(frames):
            writer.on_message_received(
                can.Message(
                    timestamp=1_700_000_000.0 + i * 0.001,
                    arbitration_id=0x7E0 + (i & 1) * 8,
                    data=bytes([0x10 + i % 7, i & 0xFF, 0x36, 1, 2, 3, 4, 5]),
                    is_extended_id=False,
                    channel=0,
                )
            )


def _request(
    store: RequestsStore, machine: str, ecu: str, model: str, versions: tuple[str, str], by: str
) -> UpdateRequest:
    """A TTControl update request by `by` of `machine`'s `ecu` (repository `model`) from
    `versions[0]` to `versions[1]`."""
    before, version = versions
    return store.create(
        machine=machine,
        ecu=ecu,
        brand="TTControl",
        model=model,
        version=version,
        installed_before=before,
        created_by=by,
    )


def build_workspace(root: Path) -> Scenario:
    """A workspace with a Failed request (flash record + BLF) and a Pending one."""
    with Workspace.open(root) as ws:
        store = RequestsStore(ws)
        req = _request(store, "Unit #1001", "VCU", "TTC 2390", ("3.1.0", "3.2.0"), "alice")
        store.update(
            req.id, status=RequestStatus.IN_PROGRESS, step="flash", approved=True, owner_pid=1
        )
        store.append(req.id, ENTRY_STEP, {"step": "flash", "state": "started", "detail": ""})
        record = FlashRecord(
            ecu="VCU",
            machine="Unit #1001",
            version="3.2.0",
            image_sha256="ab" * 32,
            bytes_total=4096,
            started_at=1_700_000_000.0,
            finished_at=1_700_000_003.5,
            result="failed",
            error="NRC 0x72 generalProgrammingFailure at transfer_data block 3",
            failed_step="transfer_data",
            steps=[StepRecord("transfer_data", 1_700_000_001.0, 1_700_000_003.0, False, "NRC")],
            buslog_frames=40,
        )
        blf = root / "job.blf"
        _write_blf(blf)
        fid = save_flash_record(ws, record, blf)
        store.update(
            req.id,
            flash_record_id=fid,
            entry=(
                ENTRY_FLASH,
                {
                    "flash_record_id": fid,
                    "result": record.result,
                    "error": record.error,
                    "buslog_sha256": record.buslog_sha256,
                },
            ),
        )
        store.update(
            req.id,
            status=RequestStatus.FAILED,
            outcome="flash_failed",
            error="flash failed at transfer_data",
            owner_pid=None,
            entry=(ENTRY_FINAL, {"status": "Failed", "outcome": "flash_failed"}),
        )
        other = _request(store, "Unit #1002", "BCU", "TTC 580", ("1.3.0", "1.4.0"), "bob")
        # Two entries, so deleting the chain's last one leaves the request with a history.
        store.append(other.id, ENTRY_STEP, {"step": "verify_package", "state": "ok"})
        assert record.buslog_sha256 is not None
        return Scenario(root, req.id, fid, record.buslog_sha256, other.id)


def _sql(s: Scenario, *statements: tuple[str, tuple[object, ...]]) -> None:
    raw = sqlite3.connect(s.root / DB_NAME)
    try:
        for sql, params in statements:
            raw.execute(sql, params)
        raw.commit()
    finally:
        raw.close()


def delete_last_entry(s: Scenario) -> None:
    """Remove the newest chain entry (truncation)."""
    _sql(s, ("DELETE FROM request_entries WHERE id = (SELECT MAX(id) FROM request_entries)", ()))


def delete_whole_request(s: Scenario) -> None:
    """Remove the failed request and all its entries."""
    _sql(
        s,
        ("DELETE FROM request_entries WHERE request_id = ?", (s.failed_request,)),
        ("DELETE FROM update_requests WHERE id = ?", (s.failed_request,)),
    )


def delete_newest_request(s: Scenario) -> None:
    """Remove the newest request with its entries (they are the chain's tail)."""
    _sql(
        s,
        ("DELETE FROM request_entries WHERE request_id = ?", (s.other_request,)),
        ("DELETE FROM update_requests WHERE id = ?", (s.other_request,)),
    )


def status_failed_to_successful(s: Scenario) -> None:
    """Make the list and the report say Successful."""
    _sql(
        s,
        (
            "UPDATE update_requests SET status = 'Successful', outcome = 'success', error = '' "
            "WHERE id = ?",
            (s.failed_request,),
        ),
    )


def edit_flash_result(s: Scenario) -> None:
    """flash_records.result failed -> success (the column only)."""
    _sql(
        s,
        ("UPDATE flash_records SET result = 'success', error = '' WHERE id = ?", (s.flash_record,)),
    )


def edit_flash_json(s: Scenario) -> None:
    """Rewrite the flash record's JSON and its columns consistently to say success."""
    raw = sqlite3.connect(s.root / DB_NAME)
    text = raw.execute(
        "SELECT record FROM flash_records WHERE id = ?", (s.flash_record,)
    ).fetchone()
    data = json.loads(text[0])
    data.update(result="success", error="", failed_step="")
    raw.execute(
        "UPDATE flash_records SET record = ?, result = 'success', error = '' WHERE id = ?",
        (json.dumps(data), s.flash_record),
    )
    raw.commit()
    raw.close()


def rehash_chain(s: Scenario) -> None:
    """The attacker's script: edit an entry, recompute every later hash and the head."""
    raw = sqlite3.connect(s.root / DB_NAME)
    rows = raw.execute(
        "SELECT id, request_id, attempt, at, kind, data, state FROM request_entries ORDER BY id"
    ).fetchall()
    prev = "0" * 64
    for rid_, req, attempt, at, kind, data, state in rows:
        if kind == "final" and req == s.failed_request:
            data = '{"outcome":"success","status":"Successful"}'
            state = '{"error":"","outcome":"success","owner":null,"status":"Successful"}'
        text = "\x1f".join([prev, str(req), str(attempt), at, kind, data, "state", state or "{}"])
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        raw.execute(
            "UPDATE request_entries SET data = ?, state = ?, prev_hash = ?, hash = ? WHERE id = ?",
            (data, state, prev, digest, rid_),
        )
        prev = digest
    raw.execute("UPDATE record_head SET last_hash = ?", (prev,))
    raw.execute(
        "UPDATE update_requests SET status = 'Successful', outcome = 'success', error = '' "
        "WHERE id = ?",
        (s.failed_request,),
    )
    raw.commit()
    raw.close()


def overwrite_buslog(s: Scenario) -> None:
    """Replace the BLF bus log's bytes (same file name)."""
    path = s.root / "blobs" / s.buslog_sha256[:2] / s.buslog_sha256[2:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def delete_buslog(s: Scenario) -> None:
    """Remove the BLF bus log blob."""
    (s.root / "blobs" / s.buslog_sha256[:2] / s.buslog_sha256[2:]).unlink()


def random_db_pages(s: Scenario, seed: int = 7) -> None:
    """Overwrite two whole database pages after the header page with random bytes."""
    path = s.root / DB_NAME
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    pages = len(data) // page
    rng = random.Random(seed)
    for n in rng.sample(range(1, pages), min(2, pages - 1)):
        data[n * page : (n + 1) * page] = rng.randbytes(page)
    path.write_bytes(bytes(data))


ATTACKS: dict[str, Callable[[Scenario], None]] = {
    "delete_last_entry": delete_last_entry,
    "delete_whole_request": delete_whole_request,
    "delete_newest_request": delete_newest_request,
    "status_failed_to_successful": status_failed_to_successful,
    "edit_flash_result": edit_flash_result,
    "edit_flash_json": edit_flash_json,
    "rehash_chain": rehash_chain,
    "overwrite_buslog": overwrite_buslog,
    "delete_buslog": delete_buslog,
    "random_db_pages": random_db_pages,
}


@dataclass
class CaseResult:
    """One attack: whether verification named it, and what it said."""

    name: str
    detected: bool
    problems: list[str] = field(default_factory=list)
    crash: str = ""


def verify_folder(root: Path) -> list[str]:
    """What `records verify` finds in a workspace folder (an unopenable DB is a problem)."""
    try:
        ws = Workspace.open(root)
    except WorkspaceError as exc:
        return [f"the workspace cannot be opened: {exc}"]
    with ws:
        return verify_workspace(ws).problems


def run_case(name: str, folder: Path) -> CaseResult:
    """Build a fresh workspace in `folder`, run attack `name`, verify."""
    scenario = build_workspace(folder)
    if verify_folder(folder):
        return CaseResult(name, False, crash="the untouched workspace does not verify")
    ATTACKS[name](scenario)
    try:
        problems = verify_folder(folder)
    except Exception:  # the verifier must never crash; count it as a miss
        return CaseResult(name, False, crash=traceback.format_exc(limit=3))
    return CaseResult(name, bool(problems), problems)


@dataclass
class TamperReport:
    """The campaign's figures."""

    cases: int = 0
    detected: int = 0
    results: list[CaseResult] = field(default_factory=list)


def campaign() -> TamperReport:
    """Run every attack once, each in its own workspace."""
    rep = TamperReport()
    with (
        tempfile.TemporaryDirectory(prefix="fota-tamper-") as tmp,
        private_user_state(Path(tmp)),
    ):
        for name in ATTACKS:
            res = run_case(name, Path(tmp) / name)
            rep.cases += 1
            rep.detected += int(res.detected)
            rep.results.append(res)
    return rep
