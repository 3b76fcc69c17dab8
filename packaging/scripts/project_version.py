"""Print the project version from pyproject.toml (the one place it is written).

Used by the packaging scripts (.deb, Inno Setup command line) on any build machine; needs only
the Python standard library.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The `[project] version` of pyproject.toml."""
    with pyproject.open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


if __name__ == "__main__":
    sys.stdout.write(project_version() + "\n")
