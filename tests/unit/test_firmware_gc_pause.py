"""The bulk HEX loader pauses cyclic GC while it builds a sparse image's segments and gives the
caller back the GC state it had (enabled or not), also when the parse fails."""

from __future__ import annotations

import gc

import pytest

from fota_studio.core import firmware
from fota_studio.core.errors import ImageError


def _sparse_hex(n: int) -> bytes:
    parts = [(0x1000_0000 + 32 * i, bytes([i & 0xFF]) * 16) for i in range(n)]
    return firmware.to_hex(firmware.FirmwareImage.from_segments(parts), record_bytes=16)


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_state_is_restored(enabled: bool) -> None:
    text = _sparse_hex(2000)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        image = firmware.load_hex(text, source="sparse.hex")
        assert gc.isenabled() is enabled
        assert len(image.segments) == 2000
        assert [(s.address, s.data) for s in image.segments[:2]] == [
            (0x1000_0000, bytes([0]) * 16),
            (0x1000_0020, bytes([1]) * 16),
        ]
        with pytest.raises(ImageError):
            firmware.load_hex(text.replace(b":00000001FF", b":00000001FE"), source="bad.hex")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
