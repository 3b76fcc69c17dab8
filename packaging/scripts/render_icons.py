"""Render resources/icons/app.svg to the PNG sizes (and the Windows .ico) the installers need.

Run by `make deb` (PNG for the hicolor theme) and by the Windows build (fota-studio.ico for the
exe and the installer) with the project's Python: it uses Qt's SVG renderer offscreen, so no
ImageMagick or Inkscape is needed. Usage: render_icons.py OUT_DIR [--ico FILE].
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZES_PX = (16, 32, 48, 64, 128, 256)


def render(svg: Path, out_dir: Path, ico: Path | None) -> list[Path]:
    """Write app-<size>.png for every size (and the .ico) and return the PNG paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for size in SIZES_PX:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        path = out_dir / f"app-{size}.png"
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"cannot write {path}")
        written.append(path)
        if ico is not None and size == 256:
            ico.parent.mkdir(parents=True, exist_ok=True)
            if not image.save(str(ico), "ICO"):
                raise SystemExit(f"cannot write {ico} (Qt's ico image plugin missing?)")
    return written


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--svg", type=Path, default=ROOT / "resources" / "icons" / "app.svg")
    parser.add_argument("--ico", type=Path, help="also write a Windows .ico (256 px)")
    args = parser.parse_args()
    for path in render(args.svg, args.out_dir, args.ico):
        sys.stdout.write(f"{path}\n")


if __name__ == "__main__":
    main()
