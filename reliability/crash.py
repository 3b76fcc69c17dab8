"""Crash durability: a child process writing to a workspace is SIGKILLed at random moments.

The child loops over the workspace's write paths in random order — firmware import
(`RepositoryStore.import_bytes`), flash-record writes with their BLF bus log
(`save_flash_record`), flash jobs' journals (`infra/flash_journal.py`: "started" row, bus log
streamed into the workspace, final row), EA saves (`EaStore.save`) and update requests driven
to "In progress" and beyond (`RequestsStore`) — and prints one line per committed operation.
After every kill the parent reopens the workspace and checks: SQLite integrity "ok", `repo
verify` clean (no half-written version), every committed version / record / EA revision /
request / flash job still there (no lost committed data), every record's bus log blob intact,
the requests' hash chain intact, requests left "In progress" by the dead child marked Failed
(interrupted) by `recover_interrupted`, and flash jobs it left "started" marked interrupted by
the reopen, their partial bus log kept. POSIX only. Run `python -m reliability.crash [KILLS]`;
main thread.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fota_studio.core.update_request import RequestStatus
from fota_studio.engine.records import list_flash_records, load_buslog, load_flash_record
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.requests_store import RequestsStore
from fota_studio.infra.workspace import Workspace

#: Longest random delay between the child's "ready" and the kill.
MAX_KILL_DELAY_S = 0.6
BRAND, MODEL = "Crash", "Durable"

CHILD = textwrap.dedent(
    """
    import os, random, sys, time
    from pathlib import Path
    from fota_studio.demo.catalog import demo_architecture
    from fota_studio.core.flash_record import FlashRecord
    from fota_studio.core.update_request import RequestStatus
    from fota_studio.engine.records import save_flash_record
    from fota_studio.infra.ea_store import EaStore
    from fota_studio.infra.repository import RepositoryStore
    from fota_studio.infra.requests_store import RequestsStore
    from fota_studio.infra.workspace import Workspace
    from fota_studio.infra.flash_journal import begin_flash_record, finish_flash_record
    from fota_studio.infra.locks import EcuLock

    ws_dir, scratch, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    ws = Workspace.open(ws_dir)
    repo, eas, reqs = RepositoryStore(ws), EaStore(ws), RequestsStore(ws)
    repo.create_repository("Crash", "Durable") if not any(
        r.brand == "Crash" for r in repo.list_repositories()) else None
    ea = demo_architecture()
    ea.name = "Durable"
    def out(line):
        sys.stdout.write(line + "\\n"); sys.stdout.flush()
    out("ready")
    n = seed * 100000
    while True:
        n += 1
        op = rng.choice(("import", "record", "ea", "request", "flash"))
        if op == "flash":  # a flash job's journal: started row, streamed bus log, final row
            lock = EcuLock(ws_dir, "M", "VCU")
            lock.acquire("crash child flash")
            rec = FlashRecord(ecu="VCU", machine="M", version=f"f{n}")
            rid, path = begin_flash_record(ws, rec)
            out(f"started flash {rid}")
            with open(path, "wb") as fh:
                for _ in range(5):
                    fh.write(os.urandom(20_000)); fh.flush(); time.sleep(0.003)
            rec.result, rec.finished_at = "success", time.time()
            finish_flash_record(ws, rid, rec, path)
            lock.release()
            out(f"committed flash {rid} f{n}")
        elif op == "import":
            data = bytearray(os.urandom(64)) + bytes(200_000)
            data[0:8] = n.to_bytes(8, "little")
            repo.import_bytes("Crash", "Durable", f"1.{n}", bytes(data),
                              source_name=f"fw-{n}.bin", base_address=0x10000)
            out(f"committed import 1.{n}")
        elif op == "record":
            blf = scratch / f"job-{n}.blf"
            blf.write_bytes(os.urandom(50_000))
            rec = FlashRecord(ecu="VCU", machine="M", version=f"r{n}", result="success",
                              bytes_total=1, started_at=time.time(), finished_at=time.time())
            rid = save_flash_record(ws, rec, blf)
            out(f"committed record {rid} r{n}")
        elif op == "ea":
            ea.description = f"rev {n}"
            eas.save(ea, replace=True)
            out(f"committed ea {n}")
        else:
            r = reqs.create(machine="M", ecu="VCU", brand="Crash", model="Durable",
                            version="1.0")
            reqs.update(r.id, status=RequestStatus.IN_PROGRESS, step="transfer_data",
                        owner_pid=os.getpid())
            out(f"inprogress request {r.id}")
            for step in ("erase", "transfer_data", "check"):  # a flash takes a while
                reqs.update(r.id, step=step, entry=("step", {"step": step}))
                time.sleep(0.003)
            final = RequestStatus.SUCCESSFUL if rng.random() < 0.5 else RequestStatus.FAILED
            reqs.update(r.id, status=final, step="done", owner_pid=None)
            out(f"committed request {r.id} {final.name}")
    """
)


@dataclass
class CrashReport:
    """Figures of a kill campaign."""

    kills: int = 0
    committed: int = 0
    corruptions: list[str] = field(default_factory=list)
    interrupted_marked: int = 0
    flashes_interrupted: int = 0  # flash jobs killed mid-way, found marked "interrupted"
    last_ops: dict[str, int] = field(default_factory=dict)  # op the kill interrupted -> count


def _run_child(ws_dir: Path, scratch: Path, seed: int, rng: random.Random) -> list[str]:
    """Start the child, kill it after a random delay; return the lines it printed."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ws_dir), str(scratch), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = None
    start = time.monotonic()
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if now - start > 60:
            break
        if proc.poll() is not None:
            break
        timeout = 0.05 if deadline is None else max(0.0, min(0.05, deadline - now))
        for _key, _ in sel.select(timeout):
            chunk = os.read(proc.stdout.fileno(), 65536)
            buf += chunk
            if deadline is None and b"ready\n" in buf:
                deadline = time.monotonic() + rng.uniform(0.0, MAX_KILL_DELAY_S)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Lines printed before the kill are committed; read whatever was still in the pipe.
    buf += proc.stdout.read()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    sel.close()
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != -signal.SIGKILL and "Traceback" in err:
        raise RuntimeError(f"crash child failed on its own:\n{err[-2000:]}")
    return [ln for ln in buf.decode().splitlines() if ln]


def check_workspace(
    ws_dir: Path, committed: list[str], report: CrashReport, killed_flashes: Sequence[int] = ()
) -> None:
    """Reopen and check everything the module docstring promises; `killed_flashes` are flash
    records the child started but never finished (the reopen must mark them interrupted)."""
    with Workspace.open(ws_dir) as ws:
        problems: list[str] = []
        still = ws.read("SELECT id FROM flash_records WHERE result = 'started'")
        if still:
            problems.append(f"flash records still 'started' after reopen: {[r[0] for r in still]}")
        for fid in killed_flashes:
            got = ws.read("SELECT result, buslog_sha256 FROM flash_records WHERE id = ?", (fid,))
            # "success": the kill came after the final row was committed, before the print.
            result = got[0]["result"] if got else None
            if result not in ("interrupted", "success"):
                problems.append(f"killed flash record {fid} not marked interrupted: {result}")
            elif got[0]["buslog_sha256"] and not ws.blobs.verify(got[0]["buslog_sha256"]):
                problems.append(f"killed flash record {fid}: bus log damaged")
            elif result == "interrupted":
                report.flashes_interrupted += 1
        verdict = ws.integrity_check()
        if verdict != "ok":
            problems.append(f"integrity_check: {verdict}")
        repo = RepositoryStore(ws)
        problems += [f"repo verify: {p}" for p in repo.verify()]
        versions = {v.version for v in repo.all_versions() if v.brand == BRAND}
        records = {r.id for r in list_flash_records(ws, limit=1 << 30)}
        eas = EaStore(ws)
        ea = eas.find("Durable")
        reqs = RequestsStore(ws)
        marked = reqs.recover_interrupted()
        report.interrupted_marked += len(marked)
        for r in marked:
            if r.status != RequestStatus.FAILED or "interrupted" not in (r.error or ""):
                problems.append(f"request {r.id} not marked interrupted: {r.status} {r.error}")
        left = ws.read(
            "SELECT id FROM update_requests WHERE status = ?", (RequestStatus.IN_PROGRESS.value,)
        )
        if left:
            problems.append(f"requests still In progress after recovery: {[r['id'] for r in left]}")
        problems += [f"records verify: {p}" for p in reqs.verify_chain()]
        last_ea = 0
        for line in committed:
            parts = line.split()
            if parts[:2] == ["committed", "import"] and parts[2] not in versions:
                problems.append(f"lost committed version {parts[2]}")
            elif parts[:2] == ["committed", "record"]:
                rid = int(parts[2])
                if rid not in records:
                    problems.append(f"lost committed flash record {rid}")
                else:
                    rec = load_flash_record(ws, rid)
                    if rec.version != parts[3] or load_buslog(ws, rec) is None:
                        problems.append(f"flash record {rid} damaged or its bus log missing")
            elif parts[:2] == ["committed", "flash"]:
                got = ws.read(
                    "SELECT result, version, buslog_sha256 FROM flash_records WHERE id = ?",
                    (int(parts[2]),),
                )
                ok = bool(got) and got[0]["result"] == "success" and got[0]["version"] == parts[3]
                if not ok or not ws.blobs.verify(got[0]["buslog_sha256"] or ""):
                    problems.append(f"committed flash job {parts[2]} lost or its bus log missing")
            elif parts[:2] == ["committed", "ea"]:
                last_ea = max(last_ea, int(parts[2]))
            elif parts[:2] == ["committed", "request"]:
                got = reqs.find(int(parts[2]))
                if got is None or got.status.name != parts[3]:
                    problems.append(f"lost committed request {parts[2]}")
        if last_ea:
            rev = int((ea.description if ea else "rev 0").split()[-1])
            if ea is None or rev < last_ea:
                problems.append(f"EA lost its committed revision {last_ea} (has {rev})")
        ws.collect_garbage()
        report.corruptions += problems


def kill_campaign(kills: int, seed: int = 1, ws_dir: Path | None = None) -> CrashReport:
    """`kills` child runs against one workspace, each killed at a random moment."""
    rng = random.Random(seed)
    report = CrashReport()
    with tempfile.TemporaryDirectory(prefix="fota-crash-") as tmp:
        root = ws_dir or Path(tmp) / "ws"
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        committed: list[str] = []
        for k in range(kills):
            lines = _run_child(root, scratch, seed * 1000 + k + 1, rng)
            report.kills += 1
            ops = [ln for ln in lines if ln.startswith(("committed", "inprogress"))]
            done = {ln.split()[2] for ln in lines if ln.startswith("committed flash")}
            killed = [
                int(ln.split()[2])
                for ln in lines
                if ln.startswith("started flash") and ln.split()[2] not in done
            ]
            committed += [ln for ln in ops if ln.startswith("committed")]
            if ops:
                kind = ops[-1].split()[1]
                report.last_ops[kind] = report.last_ops.get(kind, 0) + 1
            # This run's lines, plus a sample of older ones (all of them after the last kill).
            old = committed[: -len(ops) or None] if ops else committed
            sample = old if k == kills - 1 else rng.sample(old, min(len(old), 200))
            recent = [ln for ln in ops if ln.startswith("committed")]
            ea_lines = [ln for ln in committed if ln.startswith("committed ea")][-1:]
            check_workspace(root, sample + recent + ea_lines, report, killed)
            for leftover in scratch.iterdir():
                leftover.unlink()
        report.committed = len(committed)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the kill campaign (default 100 kills) and print the figures."""
    args = sys.argv[1:] if argv is None else argv
    rep = kill_campaign(int(args[0]) if args else 100)
    sys.stdout.write(
        f"crash: {rep.kills} kills, {rep.committed} committed operations checked, "
        f"{rep.interrupted_marked} interrupted requests marked, "
        f"{rep.flashes_interrupted} killed flash jobs marked interrupted, "
        f"{len(rep.corruptions)} problems {rep.corruptions[:5]}\n"
    )
    return 1 if rep.corruptions else 0


if __name__ == "__main__":
    raise SystemExit(main())
