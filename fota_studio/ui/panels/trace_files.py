"""The trace panel's file jobs: open and save logs through `ui/background.py`, one at a time.

`FileJobs` runs one job (`open_work` reads a log into a fresh store; `save_work` writes a
snapshot) on a `fota-ui-io` worker, drives the panel's progress bar and Cancel button, and
hands the result to the panel's callbacks on the GUI thread. A cancelled or replaced job's
result is dropped: an open that was cancelled opens nothing, a save that was cancelled writes
nothing (write_log's temporary file is removed; an existing file keeps its content).
`temp_copy` keeps in-memory logs (a flash record's bus log) in a temporary folder until the
job that reads them ends. GUI thread only; the work callables run on the worker.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QProgressBar, QPushButton

from fota_studio.core.errors import CancelledError
from fota_studio.core.frames import FrameBatch
from fota_studio.engine.trace_capture import load_log
from fota_studio.engine.trace_store import TraceStore
from fota_studio.infra.tracefile import WriteReport, write_log
from fota_studio.protocols.decode.frames import batch_messages
from fota_studio.ui.background import BackgroundTask, run_in_background

Report = Callable[[float], None]
Work = Callable[[Report, threading.Event], object]


def open_work(path: Path, store: TraceStore, produce: Callable[[], bytes] | None = None) -> Work:
    """A job that reads the log at `path` into `store` (unbounded, not shown yet); returns
    the frames read. Cancel points are its progress reports. `produce`: the log's bytes are
    made on the worker first and written to `path` (a record's bus log restored from its
    image, which takes a moment per MiB flashed)."""

    def work(report: Report, _cancel: threading.Event) -> object:
        if produce is not None:
            path.write_bytes(produce())
        return load_log(path, store, report)

    return work


def save_work(path: Path, snapshot: FrameBatch, names: list[str], allow_loss: bool) -> Work:
    """A job that writes `snapshot` to `path` (temporary file renamed when complete); returns
    the WriteReport. A cancel leaves nothing behind."""
    total = max(1, len(snapshot))

    def work(report: Report, cancel: threading.Event) -> object:
        def written(count: int) -> None:
            if not cancel.is_set():
                report(min(count / total, 0.999))

        result: WriteReport = write_log(
            path,
            batch_messages(snapshot, names),
            progress=written,
            cancel=cancel,
            allow_loss=allow_loss,
        )
        if cancel.is_set():
            raise CancelledError(f"saving {path.name}: cancelled by the user")
        return result

    return work


class FileJobs:
    """One file job at a time with a progress bar and a Cancel button (see module docstring)."""

    def __init__(self, progress: QProgressBar, cancel_button: QPushButton) -> None:
        self.progress, self.cancel_button = progress, cancel_button
        self._task: BackgroundTask | None = None
        self._cancel = threading.Event()
        self._tasks: list[BackgroundTask] = []
        self._temp_files: list[Path] = []
        self.saving: Path | None = None
        """The file a running save writes (None while opening or idle)."""

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self._task is not None

    def start(
        self,
        work: Work,
        on_success: Callable[[object], None],
        on_error: Callable[[BaseException], None],
        *,
        name: str,
        saving: Path | None = None,
    ) -> None:
        """Stop a running job, then start `work(report, cancel)` with the progress shown;
        exactly one of the callbacks follows on the GUI thread (none when cancelled by
        `abort`/`cancel` or replaced)."""
        self.abort()
        cancel = threading.Event()
        self._cancel = cancel
        self.saving = saving
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)

        def progress(fraction: float) -> None:
            if not cancel.is_set():
                self.progress.setValue(int(1000 * fraction))

        def success(result: object) -> None:
            if not cancel.is_set():
                self._done()
                on_success(result)

        def error(exc: BaseException, _trace: str) -> None:
            if not cancel.is_set():
                self._done()
                on_error(exc)

        task = run_in_background(
            lambda report: work(report, cancel),
            name=name,
            on_success=success,
            on_error=error,
            on_progress=progress,
        )
        self._task = task
        self._tasks = [t for t in self._tasks if not t.done] + [task]

    def _done(self) -> None:
        self._task = None
        self.saving = None
        self.progress.setValue(1000)
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.remove_temp_files()

    def abort(self, wait: bool = False) -> bool:
        """Stop a running job (its result is dropped); True when one was running."""
        task = self._task
        self._task = None
        self.saving = None
        self._cancel.set()
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if task is None:
            return False
        task.cancel()
        if wait:
            self.wait()
        return True

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Join the workers started so far (shutdown and tests); True when all ended."""
        return all(task.wait(timeout_s) for task in self._tasks)

    def temp_copy(self, data: bytes | None, suffix: str) -> Path:
        """Write an in-memory log to a temporary file (removed when its job ends); with
        `data` None only the file's place is made (its job writes it)."""
        self.remove_temp_files()
        folder = Path(tempfile.mkdtemp(prefix="fota-trace-"))
        path = folder / f"buslog{suffix}"
        if data is not None:
            path.write_bytes(data)
        self._temp_files.append(path)
        return path

    def remove_temp_files(self) -> None:
        """Remove the temporary copies (a job that still reads one was aborted first)."""
        for path in self._temp_files:
            shutil.rmtree(path.parent, ignore_errors=True)
        self._temp_files.clear()

    @property
    def temp_files(self) -> list[Path]:
        """Temporary copies still on disk."""
        return list(self._temp_files)
