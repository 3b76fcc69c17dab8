"""The GUI as the Windows windowed exe starts it: no console, sys.stdout/sys.stderr are None."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
sys.stdout = None  # what a PyInstaller console=False exe gives the app on Windows
sys.stderr = None
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])
shown = []

def finish():
    shown.extend(w.windowTitle() for w in app.topLevelWidgets() if w.isVisible())
    for w in app.topLevelWidgets():
        w.close()
    app.quit()

QTimer.singleShot(3000, finish)
from fota_studio.cli import main
code = main(["--workspace", sys.argv[1]])
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    fh.write(f"{code}\\n" + "\\n".join(shown))
"""


def test_gui_runs_without_console_streams(tmp_path: Path) -> None:
    """Logging, warnings and the welcome must not need a console: the window opens on the
    demo workspace and the app exits cleanly."""
    out = tmp_path / "result.txt"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ws"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, *titles = out.read_text(encoding="utf-8").splitlines()
    assert code == "0"
    assert any(t.startswith("FOTA Studio") for t in titles), titles
    assert (tmp_path / "ws" / "workspace.db").is_file()
