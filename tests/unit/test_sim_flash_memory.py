"""The simulated flash: sectors, protection, programming rules and persistence across processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fota_studio.core.ea import MemoryRegion
from fota_studio.sim.flash_memory import (
    BOOTLOADER_FILL,
    EcuState,
    FlashAccessError,
    FlashMemory,
)

REGION = MemoryRegion(name="app", start=0x10000, length=0x10000, erase_sector_bytes=0x1000)
PROTECTED = [(0x0, 0x10000)]


def _flash(path: Path) -> FlashMemory:
    return FlashMemory(path, [REGION], PROTECTED)


def test_fresh_flash_is_erased_with_a_bootloader(tmp_path: Path) -> None:
    mem = _flash(tmp_path / "f.flash")
    try:
        assert mem.fresh and mem.base == 0 and mem.size == 0x20000
        assert mem.is_erased(REGION.start, REGION.length)
        assert mem.read(0, 8) == BOOTLOADER_FILL
    finally:
        mem.close()


def test_sectors_protection_and_programming(tmp_path: Path) -> None:
    mem = _flash(tmp_path / "f.flash")
    try:
        assert mem.sectors_for(0x10FFF, 2) == [(0x10000, 0x1000), (0x11000, 0x1000)]
        with pytest.raises(FlashAccessError) as info:
            mem.sectors_for(0xF000, 0x2000)
        assert info.value.kind == "protected"
        with pytest.raises(FlashAccessError) as info:
            mem.program(0x1F000, b"\x00" * 0x2000)
        assert info.value.kind == "out_of_range"
        mem.program(0x10010, b"\x12\x34")
        with pytest.raises(FlashAccessError) as info:
            mem.program(0x10011, b"\x00")
        assert info.value.kind == "not_erased"
        assert mem.erase(0x10011, 1) == [(0x10000, 0x1000)]
        assert mem.is_erased(0x10000, 0x1000)
        mem.load_image([(0x12000, b"abc")])
        assert mem.read(0x12000, 3) == b"abc"
    finally:
        mem.close()


def test_sigkill_keeps_exactly_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "f.flash"
    _flash(path).close()
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from fota_studio.core.ea import MemoryRegion\n"
        "from fota_studio.sim.flash_memory import FlashMemory\n"
        f"m = FlashMemory(Path({str(path)!r}), [MemoryRegion('app', 0x10000, 0x10000)], "
        "[(0, 0x10000)])\n"
        "m.program(0x10000, b'written before power loss')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=os.getcwd())
    assert proc.returncode == -signal.SIGKILL
    mem = _flash(path)
    try:
        assert not mem.fresh
        assert mem.read(0x10000, 25) == b"written before power loss"
    finally:
        mem.close()


def test_ecu_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    assert EcuState.load(path) is None
    EcuState(mode="bootloader", app_valid=False, fingerprint_hex="0102", dtcs=[(1, 9)]).save(path)
    assert EcuState.load(path) == EcuState("bootloader", False, "0102", [(1, 9)])
