"""Cross-process locks in a workspace: one flash per (machine, ECU), one demo seeding at a time.

A lock is a small file under `<workspace>/locks/` locked with the OS's advisory file lock
(`fcntl.flock` on POSIX, `msvcrt.locking` on Windows). The kernel drops such a lock when its
process dies, however it dies (SIGKILL, power cut of the process), so a killed holder can never
block the next flash: the file only keeps the *description* of the last holder (pid, host, user,
what, since) as JSON, which the next holder finds, reports as stale ("released a stale lock of
pid N, process gone") and overwrites. A live holder is named in the refusal
(`EcuLockedError`), so the user knows who to ask.

Why not the `filelock` package: it would add a dependency for ~40 lines, and its lock files
carry no holder description (we need one for the refusal message). Locks taken with `flock` on
separate open files conflict inside one process too, so the GUI's flash and a request run in the
same process exclude each other like two processes do.

Thread use: any thread; a `FileLock` object itself is used by one owner at a time (acquire on
one thread, release on another is fine).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from fota_studio.core.errors import FotaError
from fota_studio.infra.user import current_user

log = logging.getLogger(__name__)

LOCK_DIR = "locks"
#: Windows locks this byte range (far beyond the JSON) so the description stays readable.
_WIN_LOCK_OFFSET = 1 << 20
#: A busy lock is re-tried this many times, PEEK_RETRY_S apart, before it counts as held.
PEEK_RETRIES = 3
PEEK_RETRY_S = 0.02


class LockBusyError(FotaError):
    """Another live process (or another job of this one) holds the lock; names the holder."""

    def __init__(self, message: str, holder: LockHolder | None, *, hint: str | None = None):
        self.holder = holder
        super().__init__(message, hint=hint)


class EcuLockedError(LockBusyError):
    """The ECU is being flashed by someone else (another process, the GUI, a request run)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a lock."""

    pid: int
    host: str
    user: str
    what: str
    since: str

    def describe(self) -> str:
        """'flash VCU 3.2.1 by anna@bench-3 (pid 4711) since 2026-12-06T21:50:00Z'."""
        return f"{self.what} by {self.user}@{self.host} (pid {self.pid}) since {self.since}"

    @classmethod
    def current(cls, what: str) -> LockHolder:
        """A description of this process doing `what`."""
        user = current_user()
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(os.getpid(), socket.gethostname(), user, what, now)

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The holder a lock file describes, or None (empty or unreadable file)."""
        try:
            raw = json.loads(text)
            return cls(
                int(raw["pid"]),
                str(raw["host"]),
                str(raw["user"]),
                str(raw["what"]),
                str(raw["since"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists on this host (this process always is)."""
    if pid is None or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def _try_lock(fh: IO[bytes]) -> bool:
    """Take the OS lock without waiting; False when someone else holds it."""
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        fh.seek(_WIN_LOCK_OFFSET)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]  # Windows
        except OSError:
            return False
        finally:
            fh.seek(0)
        return True
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _try_lock_patiently(fh: IO[bytes]) -> bool:
    """`_try_lock`, retried briefly: a `peek` by another process holds the lock for
    microseconds, and that must not be mistaken for a flash in progress."""
    for attempt in range(PEEK_RETRIES):
        if _try_lock(fh):
            return True
        if attempt + 1 < PEEK_RETRIES:
            time.sleep(PEEK_RETRY_S)
    return False


def _unlock(fh: IO[bytes]) -> None:
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        fh.seek(_WIN_LOCK_OFFSET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]  # Windows
        return
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class FileLock:
    """A non-blocking, holder-describing lock on one file (see the module docstring).

    `acquire(what)` raises `LockBusyError` naming the live holder; after a successful acquire,
    `stale` is the description a dead holder left behind (None when the lock was clean).
    """

    def __init__(self, path: Path, *, label: str = "") -> None:
        self.path = Path(path)
        self.label = label or self.path.name
        self._fh: IO[bytes] | None = None
        self.holder: LockHolder | None = None
        self.stale: LockHolder | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fh is not None

    def _open(self) -> IO[bytes]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LockBusyError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}",
                None,
                hint="the workspace folder must be writable to flash (check its permissions "
                "and free space)",
            ) from exc
        return os.fdopen(fd, "r+b")

    def peek(self) -> LockHolder | None:
        """The live holder of this lock, or None when nobody holds it (never blocks)."""
        if self.held:
            return self.holder
        if not self.path.exists():
            return None
        fh = self._open()
        try:
            if _try_lock(fh):
                _unlock(fh)
                return None
            fh.seek(0)
            return LockHolder.parse(fh.read(4096).decode("utf-8", "replace")) or LockHolder(
                0, "?", "?", "unknown holder", "?"
            )
        finally:
            fh.close()

    def acquire(self, what: str, *, wait_s: float = 0.0) -> LockHolder:
        """Take the lock for `what`, waiting up to `wait_s` for a live holder to finish;
        LockBusyError naming the holder when it is still taken."""
        if self.held:
            raise LockBusyError(f"{self.label}: already held by this object", self.holder)
        fh = self._open()
        deadline = time.monotonic() + wait_s
        try:
            got = _try_lock_patiently(fh)
            while not got and time.monotonic() < deadline:
                time.sleep(PEEK_RETRY_S)
                got = _try_lock(fh)
            if not got:
                fh.seek(0)
                holder = LockHolder.parse(fh.read(4096).decode("utf-8", "replace"))
                raise self.busy_error(holder)
            fh.seek(0)
            previous = LockHolder.parse(fh.read(4096).decode("utf-8", "replace"))
            if previous is not None:
                # The OS dropped the lock of a holder that never released it: it died.
                gone = previous.host != socket.gethostname() or not pid_alive(previous.pid)
                self.stale = previous
                log.warning(
                    "%s: released a stale lock of %s (%s)",
                    self.label,
                    previous.describe(),
                    "process gone" if gone else "lock no longer held",
                )
            holder = LockHolder.current(what)
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(asdict(holder)).encode("utf-8"))
            fh.flush()
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        self.holder = holder
        return holder

    def busy_error(self, holder: LockHolder | None) -> LockBusyError:
        """The refusal naming `holder`."""
        who = holder.describe() if holder else "another process"
        return LockBusyError(
            f"{self.label} is locked by {who}",
            holder,
            hint="wait until it has finished",
        )

    def release(self) -> None:
        """Release the lock and clear the holder description (idempotent)."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
                fh.flush()
            with contextlib.suppress(OSError):
                _unlock(fh)
        finally:
            fh.close()
            self.holder = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:40] or "_"


def ecu_lock_path(workspace_root: Path, machine: str, ecu: str) -> Path:
    """The lock file of (machine, ECU) in a workspace (name readable, collision-free)."""
    digest = hashlib.sha256(f"{machine}\x1f{ecu}".encode()).hexdigest()[:10]
    return Path(workspace_root) / LOCK_DIR / f"ecu-{_slug(machine)}-{_slug(ecu)}-{digest}.lock"


class EcuLock(FileLock):
    """The lock that allows one flash per (machine, ECU) across processes.

    Held by `fota-studio flash`, the GUI's Flash panel (both through `Engine.submit_flash`)
    and update-request runs (`engine/workflow.py`), from before the first frame to after the
    record is stored.
    """

    def __init__(self, workspace_root: Path, machine: str, ecu: str) -> None:
        self.machine = machine
        self.ecu = ecu
        where = f' on machine "{machine}"' if machine else ""
        super().__init__(ecu_lock_path(workspace_root, machine, ecu), label=f"ECU {ecu}{where}")

    def busy_error(self, holder: LockHolder | None) -> EcuLockedError:
        """The refusal naming `holder`."""
        who = holder.describe() if holder else "another process"
        return EcuLockedError(
            f"{self.label} is being flashed: {who}",
            holder,
            hint="only one flash per ECU at a time; wait until it has finished (a killed "
            "holder's lock is released by the OS at once)",
        )


def ecu_busy(workspace_root: Path, machine: str, ecu: str) -> LockHolder | None:
    """Who is flashing (machine, ECU) right now, or None."""
    return EcuLock(workspace_root, machine, ecu).peek()
