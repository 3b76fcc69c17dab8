"""engine/image_version: an image is checked for its version where the EA says it lives (the
application header at the ECU's region start); another version there refuses the import, no
header or no EA gives a warning that it cannot be checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.errors import ImageError
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.core.reference_ecu import APP_REGION_START, app_header
from fota_studio.demo.catalog import DEMO_REPOSITORIES
from fota_studio.demo.seed import ensure_demo
from fota_studio.engine.image_version import check_image_version
from fota_studio.infra.workspace import Workspace

BRAND, MODEL = DEMO_REPOSITORIES[0].brand, DEMO_REPOSITORIES[0].model


def _image(head: bytes) -> FirmwareImage:
    return FirmwareImage((Segment(APP_REGION_START, head + b"\xa5" * 256),))


def test_header_version_is_compared(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    try:
        ensure_demo(ws)
        assert check_image_version(ws, BRAND, MODEL, "3.3.0", _image(app_header("3.3.0"))) == []
        with pytest.raises(ImageError, match=r"says it is version '3\.2\.1'.*not '3\.3\.0'"):
            check_image_version(ws, BRAND, MODEL, "3.3.0", _image(app_header("3.2.1")))
        (warning,) = check_image_version(ws, BRAND, MODEL, "3.3.0", _image(b"\x00" * 32))
        assert "cannot be checked" in warning
        (found,) = check_image_version(ws, BRAND, MODEL, "3.3.0", _image(b"v=3.3.0;" + b"\0" * 24))
        assert f"found at 0x{APP_REGION_START + 2:X}" in found
        (no_ea,) = check_image_version(ws, "Acme", "X1", "1.0.0", _image(app_header("1.0.0")))
        assert "no Electronic Architecture" in no_ea
    finally:
        ws.close()
