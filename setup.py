"""Build step that puts the shipped resources inside the package (see core/resources.py).

Everything else is declared in pyproject.toml. A built wheel (a normal `pip install .`) gets
`fota_studio/resources/` = the top-level `resources/` folder plus the user manual with its
images under `resources/manual/`, so an installed FOTA Studio finds its EDS, EA schema, icons,
examples and manual through importlib.resources. Editable installs read the source folders and
need no copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithResources(build_py):
    """build_py, then copy resources/ and the user manual into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "fota_studio" / "resources"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / "resources", target)
        manual = target / "manual"
        manual.mkdir()
        shutil.copy2(ROOT / "docs" / "USER_MANUAL.md", manual / "USER_MANUAL.md")
        images = ROOT / "docs" / "images"
        if images.is_dir():
            shutil.copytree(images, manual / "images")


setup(cmdclass={"build_py": BuildWithResources})
