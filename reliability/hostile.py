"""Issue 14's concurrency, fault, hostile-storage and hostile-text attacks as campaign cases.

Each case runs the attack the issue describes against real parts (real `fota-studio`
processes, the in-process simulated machine, real file locks, a real full or read-only file
system where the kernel allows a private mount namespace) and checks the promised behaviour:

- two `flash` processes on one ECU: the second is refused naming the first, the first verifies;
  `flash` refuses while an update request for the ECU is open; a killed lock holder's lock is
  released as stale;
- a `flash` SIGKILLed at ~70 %: the next open marks its record interrupted, bus log kept;
- disk full (tmpfs in `unshare -rm`, else RLIMIT_FSIZE): `repo import` and `flash --simulate`
  end with one "error:" line, never a traceback or SIGBUS; a newer-schema workspace is refused
  byte-for-byte untouched; a read-only workspace serves `records list`, `repo list`, `ea list`
  (read-only bind mount; skipped without namespaces); four processes opening a new workspace
  seed it once; `workspace check` names a missing blob, a corrupt blob, scribbled DB pages;
- hostile text: versions with U+200B / U+2028 / U+202E / DEL refused at import naming the
  character; a 5,000-deep EA and a 400-digit bitrate are file:line errors.

`run_cases()` returns one `CaseResult` per case; `python -m reliability.hostile` prints them.
POSIX only (fork, SIGKILL). Main thread of a script or test.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.processes import sigkill_at_percent
from tests.fakes.storage import scribble_btree_pages

REPO = Path(__file__).resolve().parents[1]
MACHINE, ECU, VERSION = "Unit #1001", "VCU", "3.2.0"
HOLDER = """
import sys
from fota_studio.infra.locks import EcuLock
lock = EcuLock(sys.argv[1], sys.argv[2], sys.argv[3])
lock.acquire("flash VCU (hostile campaign holder)")
print("locked", flush=True)
sys.stdin.read()
"""
SEED_RACER = """
import sys, time
from fota_studio.cli import main
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
sys.exit(main(["--workspace", sys.argv[1], "--log-level", "WARNING", "repo", "list"]))
"""


@dataclass
class CaseResult:
    """One attack: did the console behave as issue 14 demands?"""

    name: str
    ok: bool
    detail: str
    skipped: bool = False


class _Failed(Exception):
    """A case's expectation was not met (the message says which)."""


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise _Failed(message)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fota_studio", "--log-level", "WARNING", *args]


def _flash_args(ws: Path) -> list[str]:
    return ["--workspace", str(ws), "flash", "--machine", MACHINE, "--ecu", ECU]


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        **kw,  # type: ignore[arg-type]
    )


def _one_error_line(proc: subprocess.CompletedProcess[str], needle: str) -> str:
    err = proc.stderr
    _expect(proc.returncode == 1, f"exit {proc.returncode} (-7 is SIGBUS): {err[-300:]}")
    _expect("Traceback" not in err, f"traceback: {err[-300:]}")
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    _expect(len(lines) == 1, f"{len(lines)} error lines: {err[-300:]}")
    _expect(needle in lines[0], f"{needle!r} not in {lines[0][:200]!r}")
    return lines[0]


# -- workspaces ------------------------------------------------------------------------------


def seeded_workspace(root: Path) -> Path:
    """A new workspace with the demo data."""
    from fota_studio.demo.seed import ensure_demo
    from fota_studio.infra.workspace import Workspace

    with Workspace.open(root) as ws:
        ensure_demo(ws)
    return root


@contextlib.contextmanager
def _copy(template: Path, tmp: Path, name: str) -> Iterator[Path]:
    target = tmp / name
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("sim", "locks"))
    try:
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def namespaces_available() -> bool:
    """True when `unshare -rm` can mount a tmpfs (private user + mount namespace)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "d=$(mktemp -d); mount -t tmpfs -o size=64k t $d"],
        capture_output=True,
    )
    return probe.returncode == 0


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    return _run(["unshare", "-rm", "sh", "-c", script])


def _sh(cmd: list[str]) -> str:
    import shlex

    return shlex.join(cmd)


def _fill(mount: Path, leave_kib: int) -> str:
    return (
        f"avail=$(df -k --output=avail {mount} | tail -1); "
        f"dd if=/dev/zero of={mount}/filler bs=1k count=$((avail - {leave_kib})) 2>/dev/null; "
    )


def _fsize_limited(cmd: list[str], limit_bytes: int) -> subprocess.CompletedProcess[str]:
    """Run `cmd` with RLIMIT_FSIZE: writes past `limit_bytes` fail with EFBIG (SIGXFSZ
    ignored), which is how a full disk looks to one process where no tmpfs can be mounted."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), timeout=300, preexec_fn=limit
    )


# -- cases: concurrency and kills ------------------------------------------------------------


def case_two_flash_processes(template: Path, tmp: Path) -> str:
    from fota_studio.infra.locks import ecu_busy

    with _copy(template, tmp, "two") as ws:
        first = subprocess.Popen(
            _cli(*_flash_args(ws), "--version", VERSION, "--simulate", "--no-progress"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            deadline = time.monotonic() + 60
            while ecu_busy(ws, MACHINE, ECU) is None:
                _expect(first.poll() is None, "the first flash ended before taking the ECU")
                _expect(time.monotonic() < deadline, "the first flash never took the ECU")
                time.sleep(0.02)
            second = _run(_cli(*_flash_args(ws), "--version", VERSION, "--simulate"))
            line = _one_error_line(second, "is being flashed")
            _expect(f"pid {first.pid}" in line, f"the refusal does not name pid {first.pid}")
            out, err = first.communicate(timeout=180)
            _expect(first.returncode == 0 and "verified" in out, f"first flash: {err[-300:]}")
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
    return line[:160]


def case_flash_with_open_request(template: Path, tmp: Path) -> str:
    from fota_studio.infra.requests_store import RequestsStore
    from fota_studio.infra.workspace import Workspace

    with _copy(template, tmp, "openreq") as ws:
        with Workspace.open(ws) as w:
            repo = w.read("SELECT brand, model FROM repositories ORDER BY id LIMIT 1")[0]
            req = RequestsStore(w).create(
                machine=MACHINE, ecu=ECU, brand=repo[0], model=repo[1], version=VERSION
            )
        proc = _run(_cli(*_flash_args(ws), "--version", VERSION, "--simulate"))
        return _one_error_line(proc, f"open update request #{req.id}")[:160]


def case_stale_lock_released(template: Path, tmp: Path) -> str:
    from fota_studio.infra.locks import EcuLock

    del template
    ws = tmp / "stale"
    ws.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ws), MACHINE, ECU],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert child.stdout is not None
        _expect(child.stdout.readline().strip() == "locked", "the holder did not lock")
        child.send_signal(signal.SIGKILL)
        child.wait()
        lock = EcuLock(ws, MACHINE, ECU)
        lock.acquire("hostile campaign")
        stale = lock.stale
        lock.release()
        _expect(stale is not None and stale.pid == child.pid, "stale holder not detected")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    return f"lock of killed pid {child.pid} released as stale"


def case_kill_at_70_percent(template: Path, tmp: Path) -> str:
    from fota_studio.engine.records import list_flash_records, load_flash_record
    from fota_studio.infra.workspace import Workspace

    with _copy(template, tmp, "kill") as ws:
        proc = subprocess.Popen(
            _cli(*_flash_args(ws), "--version", VERSION, "--simulate"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        reached = sigkill_at_percent(proc, 70.0)
        with Workspace.open(ws) as w:
            rows = list_flash_records(w)
            _expect(len(rows) == 1, f"{len(rows)} flash records")
            rec = load_flash_record(w, rows[0].id)
            _expect(rec.result == "interrupted", f"record result {rec.result!r}")
            sha = rec.buslog_sha256 or ""
            _expect(bool(sha) and w.blobs.verify(sha), "partial bus log not kept")
            _expect(rec.buslog_frames > 0, "the partial bus log holds no frame")
    return f"killed at {reached:.1f} %: record interrupted, {rec.buslog_frames} frames kept"


# -- cases: storage --------------------------------------------------------------------------


def case_disk_full_import(template: Path, tmp: Path) -> str:
    firmware = tmp / "big.bin"
    firmware.write_bytes(random.Random(1).randbytes(600 * 1024))
    args = ["repo", "import", str(firmware), "--brand", "Hostile", "--model", "Disk"]
    args += ["--version", "1.0.0", "--create", "--base-address", "0x10000"]
    if namespaces_available():
        mnt = tmp / "mnt-import"
        mnt.mkdir()
        ws = mnt / "ws"
        proc = _in_namespace(
            f"mount -t tmpfs -o size=8m full {mnt} && cp -a {template} {ws} && "
            + _fill(mnt, 200)
            + _sh(_cli("--workspace", str(ws), *args))
        )
        how = "tmpfs"
    else:
        with _copy(template, tmp, "fsize") as ws:
            proc = _fsize_limited(_cli("--workspace", str(ws), *args), 300 * 1024)
        how = "RLIMIT_FSIZE"
    return f"{how}: " + _one_error_line(proc, "disk is full")[:140]


def case_disk_full_simulated_flash(template: Path, tmp: Path) -> str:
    args = [*_flash_args(Path("WS")), "--version", VERSION, "--simulate", "--no-progress"]
    if namespaces_available():
        mnt = tmp / "mnt-flash"
        mnt.mkdir()
        ws = mnt / "ws"
        args[1] = str(ws)
        proc = _in_namespace(
            f"mount -t tmpfs -o size=8m full {mnt} && cp -a {template} {ws} && "
            + _fill(mnt, 300)
            + _sh(_cli(*args))
        )
        how = "tmpfs"
    else:
        with _copy(template, tmp, "fsize-flash") as ws:
            args[1] = str(ws)
            proc = _fsize_limited(_cli(*args), 512 * 1024)
        how = "RLIMIT_FSIZE"
    _expect(proc.returncode != -signal.SIGBUS, "killed by SIGBUS")
    return f"{how}: " + _one_error_line(proc, "cannot allocate the simulated ECU flash")[:140]


def case_newer_schema_untouched(template: Path, tmp: Path) -> str:
    from fota_studio.core.errors import WorkspaceError
    from fota_studio.infra.workspace import DB_NAME, SCHEMA_VERSION, Workspace

    del template
    ws = tmp / "newer"
    ws.mkdir()
    raw = sqlite3.connect(ws / DB_NAME)
    raw.execute("CREATE TABLE future (x)")
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    before = (ws / DB_NAME).read_bytes()
    try:
        Workspace.open(ws).close()
    except WorkspaceError as exc:
        message = str(exc)
    else:
        raise _Failed("a newer schema was opened")
    _expect((ws / DB_NAME).read_bytes() == before, "the database changed")
    _expect(not (ws / (DB_NAME + "-wal")).exists(), "switched to WAL")
    return message[:140]


def case_read_only_workspace(template: Path, tmp: Path) -> str:
    if not namespaces_available():
        raise _Skip("no mount namespace for a read-only bind mount")
    with _copy(template, tmp, "ro") as ws:
        ro = f"mount --bind {ws} {ws} && mount -o remount,ro,bind {ws} && "
        for args in (["records", "list"], ["repo", "list"], ["ea", "list"], ["workspace", "check"]):
            proc = _in_namespace(ro + _sh(_cli("--workspace", str(ws), *args)))
            _expect(proc.returncode == 0, f"{' '.join(args)}: {proc.stderr[-300:]}")
        proc = _in_namespace(
            ro + _sh(_cli("--workspace", str(ws), "repo", "create", "--brand", "R", "--model", "O"))
        )
        line = _one_error_line(proc, "read-only")
    return "records/repo/ea list and workspace check served; a write: " + line[:80]


def case_seeding_race(template: Path, tmp: Path) -> str:
    from fota_studio.demo.catalog import DEMO_REPOSITORIES
    from fota_studio.infra.workspace import Workspace

    del template
    root = tmp / "race"
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SEED_RACER, str(root), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(4)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=180)
        _expect(p.returncode == 0, f"exit {p.returncode}: {err[-300:]}")
    with Workspace.open(root) as ws:
        count = int(ws.read("SELECT COUNT(*) FROM versions")[0][0])
    want = sum(len(r.versions) for r in DEMO_REPOSITORIES)
    _expect(count == want, f"{count} versions, expected {want}")
    return f"4 processes, {count} demo versions seeded once"


def _check(ws: Path) -> subprocess.CompletedProcess[str]:
    return _run(_cli("--workspace", str(ws), "workspace", "check"))


def case_check_missing_blob(template: Path, tmp: Path) -> str:
    with _copy(template, tmp, "missing") as ws:
        victim = next(p for p in (ws / "blobs").rglob("*") if p.is_file())
        victim.unlink()
        proc = _check(ws)
        _expect(proc.returncode == 1 and "missing blob" in proc.stdout, proc.stdout[-300:])
    return "missing blob named, exit 1"


def case_check_corrupt_blob(template: Path, tmp: Path) -> str:
    with _copy(template, tmp, "corrupt") as ws:
        victim = next(p for p in (ws / "blobs").rglob("*") if p.is_file())
        victim.write_bytes(b"\x00" + victim.read_bytes()[1:])
        proc = _check(ws)
        _expect(proc.returncode == 1 and "corrupt blob" in proc.stdout, proc.stdout[-300:])
    return "corrupt blob named, exit 1"


def case_check_scribbled_db(template: Path, tmp: Path) -> str:
    from fota_studio.infra.workspace import DB_NAME

    with _copy(template, tmp, "scribble") as ws:
        scribble_btree_pages(ws / DB_NAME, random.Random(14))
        proc = _check(ws)
        _expect(proc.returncode == 1 and "PROBLEM" in proc.stdout, proc.stdout[-300:])
        _expect("Traceback" not in proc.stderr, proc.stderr[-300:])
    return "damaged pages reported, exit 1"


# -- cases: hostile text ---------------------------------------------------------------------


def _version_case(ch: str, name: str) -> Callable[[Path, Path], str]:
    def case(template: Path, tmp: Path) -> str:
        from fota_studio.core.firmware import to_hex
        from tests.fakes.sim_rig import make_image

        fw = tmp / f"fw-{ord(ch):04x}.hex"
        fw.write_bytes(to_hex(make_image("3.2.1")))
        with _copy(template, tmp, f"ver-{ord(ch):04x}") as ws:
            args = ["repo", "import", str(fw), "--create", "--brand", "Hostile"]
            args += ["--model", "Text", "--version", "3.2.1" + ch]
            proc = _run(_cli("--workspace", str(ws), *args))
        return _one_error_line(proc, name)[:140]

    return case


def case_ea_5000_deep(template: Path, tmp: Path) -> str:
    del template
    path = tmp / "deep.ea.yaml"
    path.write_text("name: deep\necus: " + "[" * 5000 + "]" * 5000 + "\n")
    proc = _run(_cli("ea", "validate", str(path)))
    text = proc.stdout + proc.stderr
    _expect(proc.returncode != 0 and "RecursionError" not in text, text[-300:])
    _expect(re.search(r"deep\.ea\.yaml:\d+: nested more than", text) is not None, text[-300:])
    return "file:line error, no RecursionError"


def case_ea_400_digit_bitrate(template: Path, tmp: Path) -> str:
    from fota_studio.core.ea_format import dump_ea_yaml
    from fota_studio.demo.catalog import demo_architecture

    del template
    ea = demo_architecture()
    ea.ecus[0].connection.bitrate_bps = 10**400
    path = tmp / "bitrate.ea.yaml"
    path.write_text(dump_ea_yaml(ea))
    proc = _run(_cli("ea", "validate", str(path)))
    text = proc.stdout + proc.stderr
    found = re.search(r"bitrate\.ea\.yaml:\d+: error: ecus\[0\]\.bitrate_bps: [^\n]*", text)
    _expect(proc.returncode != 0 and found is not None, text[-300:])
    return found.group(0)[-90:] if found else ""


class _Skip(Exception):
    """The case cannot run on this machine (the message says why)."""


CASES: list[tuple[str, Callable[[Path, Path], str]]] = [
    ("two flash processes", case_two_flash_processes),
    ("flash with open request", case_flash_with_open_request),
    ("stale lock of killed pid", case_stale_lock_released),
    ("flash SIGKILLed at 70 %", case_kill_at_70_percent),
    ("disk full: import", case_disk_full_import),
    ("disk full: flash --simulate", case_disk_full_simulated_flash),
    ("newer schema untouched", case_newer_schema_untouched),
    ("read-only workspace", case_read_only_workspace),
    ("4 processes seed at once", case_seeding_race),
    ("check: missing blob", case_check_missing_blob),
    ("check: corrupt blob", case_check_corrupt_blob),
    ("check: scribbled DB pages", case_check_scribbled_db),
    ("version + U+200B", _version_case("\u200b", "U+200B ZERO WIDTH SPACE")),
    ("version + U+2028", _version_case("\u2028", "U+2028 LINE SEPARATOR")),
    ("version + U+202E", _version_case("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE")),
    ("version + DEL", _version_case("\x7f", "U+007F DELETE")),
    ("EA nested 5,000 deep", case_ea_5000_deep),
    ("EA 400-digit bitrate", case_ea_400_digit_bitrate),
]


def run_cases(names: list[str] | None = None) -> list[CaseResult]:
    """Run every case (or those named) against copies of one seeded demo workspace."""
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="fota-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        template = seeded_workspace(tmp / "template")
        for name, fn in CASES:
            if names is not None and name not in names:
                continue
            case_tmp = tmp / f"case-{len(results)}"
            case_tmp.mkdir()
            try:
                results.append(CaseResult(name, True, fn(template, case_tmp)))
            except _Skip as exc:
                results.append(CaseResult(name, True, f"skipped: {exc}", skipped=True))
            except _Failed as exc:
                results.append(CaseResult(name, False, str(exc)))
            except Exception as exc:  # a crash of the case is a failure, named
                results.append(CaseResult(name, False, f"{type(exc).__name__}: {exc}"))
            finally:
                shutil.rmtree(case_tmp, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print one line each; exit 1 when any failed."""
    import logging

    logging.disable(logging.CRITICAL)
    results = run_cases(argv or None)
    for r in results:
        mark = "skipped" if r.skipped else ("ok" if r.ok else "FAILED")
        sys.stdout.write(f"{r.name:<28} {mark:<8} {r.detail[:110]}\n")
    failed = [r for r in results if not r.ok]
    sys.stdout.write(f"hostile: {len(results) - len(failed)} of {len(results)} cases ok\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
