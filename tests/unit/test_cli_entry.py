"""The three entry points start the same CLI; --version and --help work without Qt."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fota_studio import __version__
from fota_studio.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def test_version_comes_from_pyproject(capsys: pytest.CaptureFixture[str]) -> None:
    assert __version__ == _pyproject_version()
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"fota-studio {_pyproject_version()}"


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "gui" in out
    assert "--workspace" in out


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "fota_studio", "--version"],
        [sys.executable, str(ROOT / "main.py"), "--version"],
    ],
)
def test_entry_points_agree(argv: list[str]) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == f"fota-studio {_pyproject_version()}"


def test_installed_console_script() -> None:
    script = Path(sys.executable).with_name("fota-studio")
    if not script.exists():
        pytest.skip("fota-studio console script not installed in this environment")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"fota-studio {_pyproject_version()}"
