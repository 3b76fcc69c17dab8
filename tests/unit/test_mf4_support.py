"""MF4 support loads on first use (infra/mf4_support): `import can` after `defer_mf4()` skips
asammdf/pandas, and `ensure_mf4()` then makes python-can's own MF4 writer and reader work —
including the class objects `can.Logger`/`can.LogReader` captured before the reload (the
python-can internal this relies on: `can.io.mf4` module globals bound in one try block)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import sys
    from fota_studio.infra import mf4_support
    assert mf4_support.defer_mf4()
    import can
    import can.io.logger
    assert "asammdf" not in sys.modules and "pandas" not in sys.modules, "asammdf loaded at import"
    assert not mf4_support.mf4_available()
    assert mf4_support.ensure_mf4() and mf4_support.mf4_available()
    path = sys.argv[1]
    frames = [can.Message(arbitration_id=0x100 + i, data=bytes([i] * 8), timestamp=1.0 + i / 100)
              for i in range(50)]
    with can.Logger(path) as log:
        for m in frames:
            log.on_message_received(m)
    got = list(can.LogReader(path))
    assert [(m.arbitration_id, bytes(m.data)) for m in got] == [
        (m.arbitration_id, bytes(m.data)) for m in frames], got[:3]
    print("OK", len(got))
    """
)


def _in_a_fresh_interpreter(script: str, tmp_path: Path) -> str:
    """Run `script` (argv[1]: an MF4 file's path) in a new interpreter; it must succeed. Its
    stdout, stripped."""
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "t.mf4")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_import_can_skips_asammdf_until_mf4_is_used(tmp_path: Path) -> None:
    assert _in_a_fresh_interpreter(_SCRIPT, tmp_path) == "OK 50"


_THROUGH_TRACEFILE = textwrap.dedent(
    """
    import sys
    from fota_studio.infra import mf4_support
    assert mf4_support.defer_mf4()
    import can
    from fota_studio.infra import tracefile
    assert "asammdf" not in sys.modules
    path = sys.argv[1]
    frames = [can.Message(arbitration_id=0x200 + i, data=bytes([i] * 4), timestamp=2.0 + i / 10)
              for i in range(20)]
    tracefile.write_log(path, frames)
    got = [(int(b.ids[i]), bytes(b.data[i][: b.length[i]]))
           for b in tracefile.read_log(path) for i in range(len(b))]
    assert got == [(m.arbitration_id, bytes(m.data)) for m in frames], got[:3]
    print("OK", len(got))
    """
)


def test_tracefile_loads_mf4_support_on_first_mf4(tmp_path: Path) -> None:
    """The GUI's path: python-can imported without asammdf, then an MF4 saved and opened."""
    assert _in_a_fresh_interpreter(_THROUGH_TRACEFILE, tmp_path) == "OK 20"


def test_defer_is_a_no_op_once_can_is_imported() -> None:
    import can  # noqa: F401  (this process imported python-can already)

    from fota_studio.infra import mf4_support

    assert not mf4_support.defer_mf4()
    assert mf4_support.ensure_mf4()
