"""Simulated ECU flash memory and persistent ECU state, kept in files that survive power loss.

`FlashMemory` models the ECU's address space as a memory-mapped file: erased bytes are 0xFF,
erasing works on whole sectors of the EA's memory regions, programming is only allowed into
erased bytes of a writable region, and a protected bootloader region can neither be erased nor
written. Because every write goes straight into the mmap (the page cache), a SIGKILL or a
simulated "power loss" keeps exactly the bytes written so far. The file is pre-allocated (not
sparse) so a full disk is an error at start, never a SIGBUS in the middle of a flash.
`EcuState` is the small JSON beside it (mode, app_valid, fingerprint, DTCs). Not thread-safe:
only the owning simulated ECU's thread calls it (tests may read after the ECU stopped).
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fota_studio.core.ea import MemoryRegion
from fota_studio.core.errors import FotaError

ERASED = 0xFF
#: Fill of a fresh protected (bootloader) region, so tests can prove it was never touched.
BOOTLOADER_FILL = b"BOOTLDR\x00"


class FlashAccessError(Exception):
    """An erase/program request the flash refuses; `kind` says why for the NRC mapping."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind  # "out_of_range" | "protected" | "not_erased"
        super().__init__(message)


def _preallocate(fd: int, size: int, path: Path) -> None:
    """Give the flash file real disk blocks before it is mapped.

    A sparse file's pages get their blocks only when first written through the mmap; on a full
    disk that write is a SIGBUS that kills the process (issue 14). Allocating up front turns a
    full disk into one clear error here instead.
    """
    try:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, size)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
        # No fallocate (Windows, some file systems): write the missing bytes for real.
        have = os.fstat(fd).st_size
        os.lseek(fd, have, os.SEEK_SET)
        chunk = bytes([ERASED]) * (1 << 16)
        while have < size:
            have += os.write(fd, chunk[: min(len(chunk), size - have)])
    except OSError as exc:
        raise FotaError(
            f"{path}: cannot allocate the simulated ECU flash ({size} bytes): "
            f"{exc.strerror or exc}",
            hint="free some disk space (or choose another simulator state folder with "
            "--state-dir) and start the simulator again",
        ) from exc


class FlashMemory:
    """Sector-erasable flash of one simulated ECU, backed by an mmap'ed file."""

    def __init__(
        self,
        path: Path,
        regions: Sequence[MemoryRegion],
        protected: Sequence[tuple[int, int]] = (),
    ) -> None:
        """Open (or create, all erased) the flash file for these regions and protected ranges."""
        if not regions:
            raise ValueError("a simulated flash needs at least one memory region")
        self.path = Path(path)
        self.regions = list(regions)
        self.protected = [(start, start + length) for start, length in protected]
        starts = [r.start for r in self.regions] + [p[0] for p in self.protected]
        ends = [r.end for r in self.regions] + [p[1] for p in self.protected]
        self.base = min(starts)
        self.size = max(ends) - self.base
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fresh = not self.path.exists() or self.path.stat().st_size != self.size
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if self.fresh:
                os.ftruncate(fd, 0)
            _preallocate(fd, self.size, self.path)
            self._map = mmap.mmap(fd, self.size)
        finally:
            os.close(fd)
        if self.fresh:
            self._map[:] = bytes([ERASED]) * self.size
            for start, end in self.protected:
                fill = (BOOTLOADER_FILL * ((end - start) // len(BOOTLOADER_FILL) + 1))[
                    : end - start
                ]
                self._map[start - self.base : end - self.base] = fill

    # -- queries ---------------------------------------------------------------------------
    def read(self, address: int, length: int) -> bytes:
        """Return `length` bytes from `address` (must lie in the address space)."""
        self._check_space(address, length)
        return bytes(self._map[address - self.base : address - self.base + length])

    def region_of(self, address: int, length: int) -> MemoryRegion | None:
        """The memory region that holds the whole range, or None."""
        for region in self.regions:
            if region.start <= address and address + length <= region.end:
                return region
        return None

    def is_protected(self, address: int, length: int) -> bool:
        """True when the range overlaps a protected (bootloader) range."""
        end = address + length
        return any(address < p_end and p_start < end for p_start, p_end in self.protected)

    def check_writable(self, address: int, length: int) -> MemoryRegion:
        """Return the region of a writable range; FlashAccessError when outside or protected."""
        if length <= 0:
            raise FlashAccessError("out_of_range", f"empty range at 0x{address:08X}")
        if self.is_protected(address, length):
            raise FlashAccessError(
                "protected", f"0x{address:08X}+0x{length:X} overlaps the protected bootloader"
            )
        region = self.region_of(address, length)
        if region is None:
            raise FlashAccessError(
                "out_of_range", f"0x{address:08X}+0x{length:X} is not inside one memory region"
            )
        return region

    def sectors_for(self, address: int, length: int) -> list[tuple[int, int]]:
        """The (start, size) of every whole sector covering the range (checked writable)."""
        region = self.check_writable(address, length)
        size = region.erase_sector_bytes
        first = region.start + (address - region.start) // size * size
        sectors = []
        start = first
        while start < address + length:
            sectors.append((start, min(size, region.end - start)))
            start += size
        for start, length_ in sectors:
            if self.is_protected(start, length_):
                raise FlashAccessError("protected", f"sector 0x{start:08X} is protected")
        return sectors

    def is_erased(self, address: int, length: int) -> bool:
        """True when every byte of the range is 0xFF."""
        return self.read(address, length) == bytes([ERASED]) * length

    # -- changes ---------------------------------------------------------------------------
    def erase_sector(self, start: int, length: int) -> None:
        """Erase one sector (as returned by `sectors_for`)."""
        self.check_writable(start, length)
        self._map[start - self.base : start - self.base + length] = bytes([ERASED]) * length

    def erase(self, address: int, length: int) -> list[tuple[int, int]]:
        """Erase every sector covering the range at once; return the sectors."""
        sectors = self.sectors_for(address, length)
        for start, size in sectors:
            self.erase_sector(start, size)
        return sectors

    def program(self, address: int, data: bytes) -> None:
        """Program erased bytes; FlashAccessError("not_erased") when any target is not 0xFF."""
        self.check_writable(address, len(data))
        if not self.is_erased(address, len(data)):
            raise FlashAccessError(
                "not_erased",
                f"0x{address:08X}+0x{len(data):X} is not erased (programming only "
                "turns 1 bits into 0)",
            )
        self._map[address - self.base : address - self.base + len(data)] = data

    def load_image(self, segments: Sequence[tuple[int, bytes]]) -> None:
        """Erase the covered sectors and program an image (initial state of a fresh ECU)."""
        for address, data in segments:
            if data:
                self.erase(address, len(data))
        for address, data in segments:
            if data:
                self.program(address, data)

    def flush(self) -> None:
        """Write dirty pages to the file (not needed for power-loss safety of the process)."""
        self._map.flush()

    def close(self) -> None:
        """Flush and unmap (idempotent)."""
        if not self._map.closed:
            self._map.flush()
            self._map.close()

    def _check_space(self, address: int, length: int) -> None:
        if address < self.base or address + length > self.base + self.size or length < 0:
            raise FlashAccessError(
                "out_of_range", f"0x{address:08X}+0x{length:X} is outside the simulated flash"
            )


@dataclass
class EcuState:
    """What a simulated ECU remembers across restarts besides its flash contents."""

    mode: str = "application"  # "application" | "bootloader"
    app_valid: bool = False
    fingerprint_hex: str = ""
    dtcs: list[tuple[int, int]] = field(default_factory=list)  # (3-byte DTC, status)

    @classmethod
    def load(cls, path: Path) -> EcuState | None:
        """Read the state file, or None when it does not exist or cannot be parsed."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls(
            mode=str(raw.get("mode", "application")),
            app_valid=bool(raw.get("app_valid", False)),
            fingerprint_hex=str(raw.get("fingerprint_hex", "")),
            dtcs=[(int(d), int(s)) for d, s in raw.get("dtcs", [])],
        )

    def save(self, path: Path) -> None:
        """Write the state atomically (temp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        with contextlib.suppress(OSError):
            os.replace(tmp, path)


def open_ecu_storage(
    flash_path: Path,
    state_path: Path,
    regions: Sequence[MemoryRegion],
    protected: Sequence[tuple[int, int]],
    *,
    initial_image: Sequence[tuple[int, bytes]] | None = None,
    dtcs: Sequence[tuple[int, int]] = (),
) -> tuple[FlashMemory, EcuState]:
    """Open one simulated ECU's flash file and state; a fresh flash gets `initial_image` (then
    the ECU starts in its application) and `dtcs`, an existing one keeps what it holds."""
    memory = FlashMemory(flash_path, regions, protected)
    saved = None if memory.fresh else EcuState.load(state_path)
    if saved is None:
        saved = EcuState(dtcs=list(dtcs))
        if initial_image:
            memory.load_image(initial_image)
            saved.app_valid = True
        saved.mode = "application" if saved.app_valid else "bootloader"
        saved.save(state_path)
    return memory, saved
