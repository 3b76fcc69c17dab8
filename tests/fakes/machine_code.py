"""Firmware-like test content: bytes of a real compiled shared library on this machine
(libpython, else the Python executable), which compresses like ECU firmware does and random
data does not. Any thread."""

from __future__ import annotations

import functools
import sys
import sysconfig
from pathlib import Path


@functools.cache
def _library() -> bytes:
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("LDLIBRARY") or ""
    for path in (Path(libdir) / name, Path(sys.executable).resolve()):
        if name and path.is_file() and path.stat().st_size > 1 << 20:
            return path.read_bytes()
    return Path(sys.executable).resolve().read_bytes()


def machine_code(size: int, offset: int = 0x10000) -> bytes:
    """`size` bytes of compiled code starting near `offset` (wrapping around the library)."""
    raw = _library()
    start = offset % max(1, len(raw) - 1)
    out = raw[start : start + size]
    while len(out) < size:
        out += raw[: size - len(out)]
    return out
