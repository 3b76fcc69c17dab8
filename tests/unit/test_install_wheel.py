"""A normal, non-editable `pip install` of FOTA Studio carries its resources and passes its
self-test (before, `package-data` listed only py.typed: no EDS, schema, icons or manual).

The project is built into a wheel from a copy of the source tree (no network: the dev venv's
setuptools/wheel, `--no-build-isolation`), installed with `--no-deps` into a fresh venv that
reuses the dev venv's site-packages for the dependencies (a plain .pth path entry, so the dev
venv's editable finder is NOT active there), and `fota-studio --self-test` runs from a folder
outside the source tree.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_S = 300


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False
    )
    assert out.returncode == 0, f"{args[:4]} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _copy_sources(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "fota_studio", dst / "fota_studio", ignore=ignore)
    shutil.copytree(ROOT / "resources", dst / "resources", ignore=ignore)
    (dst / "docs").mkdir()
    shutil.copy2(ROOT / "docs" / "USER_MANUAL.md", dst / "docs" / "USER_MANUAL.md")
    shutil.copytree(ROOT / "docs" / "images", dst / "docs" / "images")


@pytest.mark.slow
def test_non_editable_install_carries_resources_and_passes_self_test(tmp_path: Path) -> None:
    src, wheels, venv, elsewhere = (tmp_path / n for n in ("src", "wheels", "venv", "run"))
    src.mkdir()
    elsewhere.mkdir()
    _copy_sources(src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], tmp_path
    )
    (wheel,) = wheels.glob("fota_studio-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    target_site = Path(
        _run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], elsewhere).strip()
    )
    # The dependencies come from the dev venv (a path entry: its own .pth files stay inactive).
    (target_site / "dev-deps.pth").write_text(site.getsitepackages()[0] + "\n")
    _run([*pip, "--python", str(py), "install", "--no-deps", "--no-index", str(wheel)], tmp_path)

    installed = target_site / "fota_studio" / "resources"
    for name in ("fota_tcu.eds", "ea.schema.json", "icons/app.svg", "manual/USER_MANUAL.md"):
        assert (installed / name).is_file(), name
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    where = _run(
        [
            str(py),
            "-c",
            "import fota_studio.core.resources as r; print(r.__file__); print(r.resources_dir());"
            " print(r.manual_path())",
        ],
        elsewhere,
        env,
    ).split()
    assert all(p.startswith(str(target_site)) for p in where), where
    out = _run(
        [str(venv / "bin" / "fota-studio"), "--log-level", "WARNING", "--self-test"], elsewhere, env
    )
    assert out.strip().splitlines()[-1].startswith("SELF-TEST PASS:"), out
