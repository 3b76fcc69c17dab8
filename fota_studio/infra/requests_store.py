"""Storage of update requests and their append-only, hash-chained record entries.

Tables (workspace schema v2): `update_requests` holds the latest state of each request (status,
attempt, last step reached, whether Checkpoint 1 approved it, outcome, error, the flash record
of its last flash, the pid of the process running it), and `request_entries` the history: every
creation, step, decision, flash record, Checkpoint 2 result and final status, one row each, never
updated or deleted. Each entry stores the SHA-256 of the previous entry (one chain over the whole
table) and its own hash over (previous hash, request, attempt, time, kind, canonical JSON data),
so `verify_chain` detects an edited, removed or inserted entry. Status changes go through the
transition table of `core/update_request.py` inside the same transaction as their entry.

A request whose `owner_pid` is not a live process while In progress was interrupted (app crash,
power cut): `recover_interrupted` marks it Failed (interrupted) with the step it reached.

Thread use: any thread; every access goes through the workspace's serialised transactions.
"""

from __future__ import annotations

import builtins
import getpass
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fota_studio.core.errors import WorkspaceError
from fota_studio.core.update_request import (
    OPEN_STATUSES,
    Outcome,
    RequestStateError,
    RequestStatus,
    UpdateRequest,
    check_transition,
)
from fota_studio.infra.workspace import Workspace, _Cursor

#: The hash the first entry of the chain points back to.
GENESIS_HASH = "0" * 64

# Entry kinds (the `kind` column); readers show unknown kinds as they are.
ENTRY_CREATED = "created"
ENTRY_ATTEMPT = "attempt_started"
ENTRY_STATUS = "status"
ENTRY_STEP = "step"
ENTRY_DECISION = "decision"
ENTRY_FLASH = "flash_record"
ENTRY_CHECKPOINT2 = "checkpoint_2"
ENTRY_LOG = "log"
ENTRY_FINAL = "final"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def current_user() -> str:
    """The OS user name (who creates/approves), or "unknown"."""
    try:
        return getpass.getuser()
    except Exception:  # getpass raises various errors without a login name
        return "unknown"


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str, request_id: int, attempt: int, at: str, kind: str, data_json: str
) -> str:
    """The SHA-256 that chains one entry to the previous one."""
    text = "\x1f".join([prev_hash, str(request_id), str(attempt), at, kind, data_json])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pid_alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class RecordEntry:
    """One entry of a request's history."""

    id: int
    request_id: int
    attempt: int
    at: str
    kind: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class RequestsStore:
    """Update requests and their record entries in one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def _row(r: sqlite3.Row) -> UpdateRequest:
        return UpdateRequest(
            id=int(r["id"]),
            machine=r["machine"],
            ecu=r["ecu"],
            brand=r["brand"],
            model=r["model"],
            version=r["version"],
            created_at=r["created_at"],
            created_by=r["created_by"],
            status=RequestStatus(r["status"]),
            attempt=int(r["attempt"]),
            step=r["step"],
            approved=bool(r["approved"]),
            outcome=r["outcome"],
            error=r["error"],
            updated_at=r["updated_at"],
            installed_before=r["installed_before"],
            flash_record_id=r["flash_record_id"],
        )

    def find(self, request_id: int) -> UpdateRequest | None:
        """The request with this id, or None."""
        rows = self.ws.read("SELECT * FROM update_requests WHERE id = ?", (request_id,))
        return self._row(rows[0]) if rows else None

    def get(self, request_id: int) -> UpdateRequest:
        """The request with this id; WorkspaceError when unknown."""
        req = self.find(request_id)
        if req is None:
            raise WorkspaceError(
                f"no update request #{request_id} in {self.ws.root}",
                hint="list them with `fota-studio request list`",
            )
        return req

    def list(
        self,
        *,
        machine: str | None = None,
        ecu: str | None = None,
        status: RequestStatus | str | None = None,
    ) -> builtins.list[UpdateRequest]:
        """Requests in creation order, optionally filtered."""
        sql = "SELECT * FROM update_requests WHERE 1=1"
        params: list[Any] = []
        for col, val in (("machine", machine), ("ecu", ecu), ("status", status)):
            if val:
                sql += f" AND {col} = ?"
                params.append(str(val))
        return [self._row(r) for r in self.ws.read(sql + " ORDER BY id", tuple(params))]

    def open_for_ecu(
        self, machine: str, ecu: str, *, before: int | None = None
    ) -> builtins.list[UpdateRequest]:
        """Pending / In progress requests of one ECU (only those older than `before`)."""
        out = [
            r
            for r in self.list(machine=machine, ecu=ecu)
            if r.status in OPEN_STATUSES and (before is None or r.id < before)
        ]
        return out

    def entries(self, request_id: int | None = None) -> builtins.list[RecordEntry]:
        """Record entries of one request (or all), oldest first."""
        sql = "SELECT * FROM request_entries"
        params: tuple[Any, ...] = ()
        if request_id is not None:
            sql += " WHERE request_id = ?"
            params = (request_id,)
        return [
            RecordEntry(
                id=int(r["id"]),
                request_id=int(r["request_id"]),
                attempt=int(r["attempt"]),
                at=r["at"],
                kind=r["kind"],
                data=json.loads(r["data"]),
                prev_hash=r["prev_hash"],
                hash=r["hash"],
            )
            for r in self.ws.read(sql + " ORDER BY id", params)
        ]

    # -- writing ---------------------------------------------------------------------------

    def _append(
        self, cur: _Cursor, request_id: int, attempt: int, kind: str, data: dict[str, Any]
    ) -> str:
        last = cur.execute("SELECT hash FROM request_entries ORDER BY id DESC LIMIT 1").fetchone()
        prev = last["hash"] if last else GENESIS_HASH
        at = _now()
        data_json = _canonical(data)
        digest = entry_hash(prev, request_id, attempt, at, kind, data_json)
        cur.execute(
            "INSERT INTO request_entries(request_id, attempt, at, kind, data, prev_hash, hash) "
            "VALUES (?,?,?,?,?,?,?)",
            (request_id, attempt, at, kind, data_json, prev, digest),
        )
        return digest

    def create(
        self,
        *,
        machine: str,
        ecu: str,
        brand: str,
        model: str,
        version: str,
        installed_before: str | None = None,
        created_by: str | None = None,
        warnings: builtins.list[str] | None = None,
    ) -> UpdateRequest:
        """Store a new Pending request with its "created" entry (who, when, confirmed warnings)."""
        who = created_by or current_user()
        now = _now()
        with self.ws.transaction() as cur:
            c = cur.execute(
                "INSERT INTO update_requests(machine, ecu, brand, model, version, created_at, "
                "created_by, status, updated_at, installed_before) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    machine,
                    ecu,
                    brand,
                    model,
                    version,
                    now,
                    who,
                    RequestStatus.PENDING.value,
                    now,
                    installed_before,
                ),
            )
            rid = int(c.lastrowid or 0)
            self._append(
                cur,
                rid,
                1,
                ENTRY_CREATED,
                {
                    "by": who,
                    "machine": machine,
                    "ecu": ecu,
                    "repository": f"{brand} / {model}",
                    "version": version,
                    "installed_before": installed_before,
                    "confirmed_warnings": list(warnings or []),
                },
            )
        return self.get(rid)

    def append(self, request_id: int, kind: str, data: dict[str, Any]) -> None:
        """Append one entry to the request's history (current attempt)."""
        with self.ws.transaction() as cur:
            row = cur.execute(
                "SELECT attempt FROM update_requests WHERE id = ?", (request_id,)
            ).fetchone()
            if row is None:
                raise WorkspaceError(f"no update request #{request_id}")
            self._append(cur, request_id, int(row["attempt"]), kind, data)

    def update(
        self,
        request_id: int,
        *,
        status: RequestStatus | None = None,
        step: str | None = None,
        approved: bool | None = None,
        outcome: str | None = None,
        error: str | None = None,
        flash_record_id: int | None = None,
        owner_pid: int | bool | None = False,
        entry: tuple[str, dict[str, Any]] | None = None,
        expect: frozenset[RequestStatus] | None = None,
    ) -> UpdateRequest:
        """Change fields of a request (status via the transition table) + optional entry.

        `owner_pid=False` leaves the owner alone; None clears it. `expect` refuses the update
        (RequestStateError) unless the current status is one of them.
        """
        with self.ws.transaction() as cur:
            row = cur.execute(
                "SELECT * FROM update_requests WHERE id = ?", (request_id,)
            ).fetchone()
            if row is None:
                raise WorkspaceError(f"no update request #{request_id}")
            old = RequestStatus(row["status"])
            if expect is not None and old not in expect:
                raise RequestStateError(
                    f"update request #{request_id} is {old.value}",
                    hint="refresh the list; another action changed it",
                )
            sets: dict[str, Any] = {"updated_at": _now()}
            if status is not None and status != old:
                check_transition(old, status, request_id=request_id)
                sets["status"] = status.value
            for col, val in (
                ("step", step),
                ("outcome", outcome),
                ("error", error),
                ("flash_record_id", flash_record_id),
            ):
                if val is not None:
                    sets[col] = val
            if approved is not None:
                sets["approved"] = int(approved)
            if owner_pid is not False:
                sets["owner_pid"] = owner_pid
            cols = ", ".join(f"{k} = ?" for k in sets)
            cur.execute(
                f"UPDATE update_requests SET {cols} WHERE id = ?", (*sets.values(), request_id)
            )
            if status is not None and status != old:
                self._append(
                    cur,
                    request_id,
                    int(row["attempt"]),
                    ENTRY_STATUS,
                    {"from": old.value, "to": status.value, "outcome": outcome or ""},
                )
            if entry is not None:
                self._append(cur, request_id, int(row["attempt"]), entry[0], entry[1])
        return self.get(request_id)

    def cancel(self, request_id: int, *, by: str | None = None, reason: str = "") -> UpdateRequest:
        """Cancel a request that no workflow is running; refused after Checkpoint 1 approval."""
        req = self.get(request_id)
        if not req.cancellable:
            why = (
                "the operator already approved it at Checkpoint 1; it runs to an end"
                if req.approved and req.status in OPEN_STATUSES
                else f"it is {req.status.value}"
            )
            raise RequestStateError(f"update request #{request_id} cannot be cancelled: {why}")
        return self.update(
            request_id,
            status=RequestStatus.CANCELLED,
            outcome=Outcome.CANCELLED.value,
            error=reason or "cancelled by the user",
            owner_pid=None,
            expect=OPEN_STATUSES,
            entry=(ENTRY_FINAL, {"status": "Cancelled", "by": by or current_user(), "why": reason}),
        )

    def rerun(self, request_id: int, *, by: str | None = None) -> UpdateRequest:
        """Start a new attempt of a Failed/Cancelled request: Pending again, history kept."""
        req = self.get(request_id)
        if not req.rerunnable:
            raise RequestStateError(
                f"update request #{request_id} is {req.status.value}; only Failed or Cancelled "
                "requests can be re-run"
            )
        with self.ws.transaction() as cur:
            check_transition(req.status, RequestStatus.PENDING, request_id=request_id)
            attempt = req.attempt + 1
            cur.execute(
                "UPDATE update_requests SET status = ?, attempt = ?, step = '', approved = 0, "
                "outcome = '', error = '', owner_pid = NULL, updated_at = ? WHERE id = ?",
                (RequestStatus.PENDING.value, attempt, _now(), request_id),
            )
            self._append(
                cur,
                request_id,
                attempt,
                ENTRY_ATTEMPT,
                {"attempt": attempt, "by": by or current_user(), "after": req.status.value},
            )
        return self.get(request_id)

    def recover_interrupted(self) -> builtins.list[UpdateRequest]:
        """Mark In-progress requests whose process is gone as Failed (interrupted)."""
        out: list[UpdateRequest] = []
        rows = self.ws.read(
            "SELECT id, step, owner_pid FROM update_requests WHERE status = ?",
            (RequestStatus.IN_PROGRESS.value,),
        )
        for r in rows:
            if _pid_alive(r["owner_pid"]):
                continue
            step = r["step"] or "start"
            msg = f"interrupted (application closed or power lost) during step {step}"
            out.append(
                self.update(
                    int(r["id"]),
                    status=RequestStatus.FAILED,
                    outcome=Outcome.INTERRUPTED.value,
                    error=msg,
                    owner_pid=None,
                    expect=frozenset({RequestStatus.IN_PROGRESS}),
                    entry=(
                        ENTRY_FINAL,
                        {"status": "Failed", "outcome": "interrupted", "step": step},
                    ),
                )
            )
        return out

    # -- integrity -------------------------------------------------------------------------

    def verify_chain(self) -> builtins.list[str]:
        """Re-hash every entry; one line per problem (empty = the history is intact)."""
        problems: list[str] = []
        prev = GENESIS_HASH
        rows = self.ws.read("SELECT * FROM request_entries ORDER BY id")
        for r in rows:
            if r["prev_hash"] != prev:
                problems.append(
                    f"entry {r['id']} (request #{r['request_id']}): previous-hash link broken "
                    "(an entry before it was removed, inserted or changed)"
                )
            try:
                data_json = _canonical(json.loads(r["data"]))
            except ValueError:
                data_json = r["data"]
            digest = entry_hash(
                r["prev_hash"],
                int(r["request_id"]),
                int(r["attempt"]),
                r["at"],
                r["kind"],
                data_json,
            )
            if digest != r["hash"] or data_json != r["data"]:
                problems.append(
                    f"entry {r['id']} (request #{r['request_id']}, {r['kind']}): content does not "
                    "match its hash (edited after it was written)"
                )
            prev = r["hash"]
        known = {int(r["request_id"]) for r in rows}
        for r in self.ws.read("SELECT id FROM update_requests"):
            if int(r["id"]) not in known:
                problems.append(f"request #{r['id']} has no record entries (history removed)")
        return problems
