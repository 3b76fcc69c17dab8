"""What the GUI start does not load (issue 21: `gui_start_4000_repos_s`): cantools (DBC
decoding) and jsonschema (EA checks) load when first used, 0.1 s each of every start
otherwise. A fresh interpreter imports what the GUI's entry point imports; then each library
still works on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fakes.processes import child_env

_SCRIPT = textwrap.dedent(
    """
    import sys
    from fota_studio import cli
    cli.build_parser(only=None)
    import fota_studio.ui.main_window, fota_studio.ui.workbench
    lazy = [m for m in ("cantools", "jsonschema") if m in sys.modules]
    assert not lazy, f"imported at start: {lazy}"
    from fota_studio.core.ea_format import structure_problems
    assert structure_problems({"ecus": 1}), "the EA schema check found nothing"
    from fota_studio.protocols.decode.dbc import DbcDecoder
    dbc = sys.argv[1]
    open(dbc, "w").write('VERSION ""\\n\\nBU_: ECU\\n\\nBO_ 256 Speed: 8 ECU\\n'
                         ' SG_ kmh : 0|16@1+ (0.1,0) [0|500] "km/h" ECU\\n')
    assert DbcDecoder().load(dbc) == 1
    print("OK")
    """
)


def test_gui_start_path_leaves_cantools_and_jsonschema_for_first_use(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "t.dbc")],
        capture_output=True,
        text=True,
        env=child_env(QT_QPA_PLATFORM="offscreen"),
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr[-2000:]
