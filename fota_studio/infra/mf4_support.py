"""MF4 support loaded when it is first needed, not at every GUI start.

python-can imports its MF4 reader/writer module (`can.io.mf4`) from `import can`, and that
module imports asammdf, which imports pandas: about a second of every GUI start (issue 21:
`gui_start_4000_repos_s`), although most sessions never touch an MF4 file. `defer_mf4()`,
called by the GUI entry point before python-can is imported, makes that first import of
`can.io.mf4` skip asammdf (python-can then marks MF4 as unavailable); `ensure_mf4()` — called
by `infra/tracefile` before it reads or writes an .mf4 file, and by the GUI a few seconds after
its window is shown — imports asammdf and reloads `can.io.mf4`, so its reader/writer classes
(the very objects `can.LogReader`/`can.Logger` hold) see asammdf from then on.

Relies on python-can internals: `can.io.mf4` binds `asammdf`, `np`, `MDF4`… as module globals
inside one `try: import asammdf …` block and its classes test `asammdf is None`; pinned by
`python-can<4.7` in pyproject.toml and checked by tests/unit/test_mf4_support.py.
Thread-safe; any thread.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

_MF4_MODULE = "can.io.mf4"
_lock = threading.Lock()


class _SkipAsammdfWhileCanLoads(importlib.abc.MetaPathFinder):
    """Refuses `import asammdf` only while `can.io.mf4` is being executed the first time."""

    def __init__(self) -> None:
        self.active = True

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Raise ModuleNotFoundError for asammdf while can.io.mf4 initialises; else defer."""
        if not self.active or fullname != "asammdf":
            return None
        module = sys.modules.get(_MF4_MODULE)
        spec = getattr(module, "__spec__", None)
        if module is not None and getattr(spec, "_initializing", False):
            raise ModuleNotFoundError(
                "asammdf is loaded when an MF4 file is first used", name="asammdf"
            )
        return None


_finder: _SkipAsammdfWhileCanLoads | None = None


def defer_mf4() -> bool:
    """Before python-can is imported: let `import can` skip asammdf. False (nothing done)
    when python-can is already imported or asammdf is not installed."""
    global _finder
    with _lock:
        if "can" in sys.modules or _finder is not None:
            return False
        if importlib.util.find_spec("asammdf") is None:
            return False
        _finder = _SkipAsammdfWhileCanLoads()
        sys.meta_path.insert(0, _finder)
        return True


def mf4_available() -> bool:
    """True when python-can's MF4 reader/writer can be used now (asammdf loaded into it)."""
    module = sys.modules.get(_MF4_MODULE)
    return module is not None and getattr(module, "asammdf", None) is not None


def ensure_mf4() -> bool:
    """Make python-can's MF4 reader/writer usable (import asammdf, reload `can.io.mf4` if it
    was imported without it). True when MF4 works; False when asammdf is not installed."""
    global _finder
    with _lock:
        if _finder is not None:
            _finder.active = False
            if _finder in sys.meta_path:
                sys.meta_path.remove(_finder)
            _finder = None
        module = importlib.import_module(_MF4_MODULE)
        if getattr(module, "asammdf", None) is None:
            try:
                importlib.import_module("asammdf")
            except ImportError:
                return False
            importlib.reload(module)
        return getattr(module, "asammdf", None) is not None


def warm_up_in_background() -> threading.Thread:
    """Load MF4 support on a daemon thread (the GUI calls it once its window is shown)."""
    thread = threading.Thread(target=ensure_mf4, name="fota-mf4-warmup", daemon=True)
    thread.start()
    return thread
