"""ODX-F / PDX flash containers (ISO 22901-1) as our domain sees them, without any ODX library.

`infra/pdx_import.py` reads a container with odxtools and fills a `PdxContainer`: its data blocks
(name, target address, bytes), the checksums its flash session states, the version and ECU
identification, and the flash parameters it states (`FlashParams`). Here, pure and testable:

- `container_image`: the blocks become one `FirmwareImage` (a segment per block, overlaps
  refused naming both blocks);
- `verify_checksums`: every stated checksum is recomputed over the image (gaps filled with the
  checksum's FILLBYTE, default 0xFF); a mismatch is an `ImageError` naming the block and both
  values; an algorithm we cannot compute is refused, or only reported when the import is lenient;
- `profile_changes` / `apply_profile_changes`: the container's flash parameters as changes to an
  ECU's EA profile, each with the current and the offered value and where the container says it.
  They are offered (the Repository panel's diff dialog, the CLI's listing), never applied
  silently: `apply_profile_changes` takes only the changes the engineer accepted and returns a
  changed copy.

Checksum ranges are read as ECU memory (target) addresses, inclusive of SOURCE-END-ADDRESS, the
way the shipped example and the suppliers' containers we know state them. Pure data and
functions; any thread.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fota_studio.core.checksums import checksum
from fota_studio.core.ea import CHECKSUM_KINDS, EcuDefinition, StepKind
from fota_studio.core.errors import ImageError
from fota_studio.core.firmware import FirmwareImage, Segment

PDX_EXTENSIONS = (".pdx",)
ODX_F_EXTENSIONS = (".odx-f", ".odx")

#: CHECKSUM-ALG spellings (upper case, '-', '_' and ' ' removed) -> our checksum kinds.
_ALGORITHMS = {
    "CRC32": "crc32",
    "CRC32IEEE": "crc32",
    "CRC16CCITT": "crc16_ccitt",
    "CRCCCITT": "crc16_ccitt",
    "SHA256": "sha256",
}


def is_container_name(name: str) -> bool:
    """True when a file name looks like a PDX archive or an ODX-F file."""
    low = name.lower()
    return low.endswith(PDX_EXTENSIONS) or low.endswith(ODX_F_EXTENSIONS)


def checksum_kind(algorithm: str | None) -> str | None:
    """Our checksum kind for a CHECKSUM-ALG text, or None when we cannot compute it."""
    if not algorithm:
        return None
    key = "".join(ch for ch in algorithm.upper() if ch not in "-_ ")
    return _ALGORITHMS.get(key)


@dataclass(frozen=True)
class PdxBlock:
    """One data block's bytes at their ECU memory address (a block with several segments
    gives one `PdxBlock` per segment, named `block/segment`)."""

    name: str
    address: int
    data: bytes
    data_type: str = ""

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.address + len(self.data)

    def describe(self) -> str:
        """'DB_App (0x00010000..0x00012C1F, 11296 bytes)'."""
        return f"{self.name} (0x{self.address:08X}..0x{self.end - 1:08X}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class PdxChecksum:
    """A checksum the flash session states: algorithm, inclusive address range, value."""

    name: str
    algorithm: str
    start: int
    end: int
    expected: bytes
    fillbyte: int | None = None


@dataclass(frozen=True)
class FlashParams:
    """Flash parameters a container states (None = not stated); `sources` says where each
    one came from in the container (key -> 'FLASHDATA FD_App ADDRESS-LENGTH')."""

    address_length: int | None = None
    size_length: int | None = None
    data_format: int | None = None
    checksum_kind: str | None = None
    security_level: int | None = None
    programming_session: int | None = None
    max_block_length: int | None = None
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PdxContainer:
    """What a PDX / ODX-F container says, in our terms; `problems` lists what a lenient read
    ignored (one line per problem, naming the element)."""

    source_name: str
    flash_name: str
    ecu_name: str
    session_name: str
    brand: str
    model: str
    version: str
    blocks: tuple[PdxBlock, ...]
    checksums: tuple[PdxChecksum, ...] = ()
    hardware_ids: tuple[str, ...] = ()
    params: FlashParams = field(default_factory=FlashParams)
    problems: tuple[str, ...] = ()


def container_image(container: PdxContainer) -> FirmwareImage:
    """The container's blocks as one image; ImageError names two blocks that overlap."""
    if not container.blocks:
        raise ImageError(
            f"session {container.session_name or '?'} has no data block with flash data",
            source=container.source_name,
            hint="check that the container is a flash container (ODX-F) with FLASHDATAS",
        )
    ordered = sorted(container.blocks, key=lambda b: b.address)
    for prev, cur in itertools.pairwise(ordered):
        if cur.address < prev.end:
            raise ImageError(
                f"data blocks {prev.describe()} and {cur.describe()} overlap",
                source=container.source_name,
                hint="the container is inconsistent; ask its supplier for a corrected one",
            )
    return FirmwareImage.from_segments(Segment(b.address, b.data) for b in ordered)


def _range_bytes(image: FirmwareImage, start: int, end: int, fill: int) -> bytes:
    out = bytearray([fill]) * (end - start + 1)
    for seg in image.segments:
        lo, hi = max(seg.address, start), min(seg.end, end + 1)
        if lo < hi:
            out[lo - start : hi - start] = seg.data[lo - seg.address : hi - seg.address]
    return bytes(out)


def _covering_block(container: PdxContainer, cs: PdxChecksum) -> str:
    names = [b.name for b in container.blocks if b.address <= cs.end and b.end > cs.start]
    return ", ".join(names) if names else "no data block"


@dataclass(frozen=True)
class ChecksumReport:
    """What `verify_checksums` checked (one line each) and what it could not check."""

    verified: tuple[str, ...]
    unchecked: tuple[str, ...]


def verify_checksums(
    container: PdxContainer, image: FirmwareImage, *, lenient: bool = False
) -> ChecksumReport:
    """Recompute every stated checksum over `image`; ImageError names the block on a mismatch.

    An algorithm we cannot compute is refused, unless `lenient` (then it is reported as
    unchecked). A mismatch is refused in both modes: a wrong checksum means wrong bytes.
    """
    verified: list[str] = []
    unchecked: list[str] = []
    for cs in container.checksums:
        block = _covering_block(container, cs)
        where = f"checksum {cs.name} over 0x{cs.start:08X}..0x{cs.end:08X} (data block {block})"
        kind = checksum_kind(cs.algorithm)
        if kind is None or kind == "none":
            text = f"{where}: algorithm {cs.algorithm!r} is not one we can compute"
            if not lenient:
                raise ImageError(
                    text,
                    source=container.source_name,
                    hint=f"we compute {', '.join(k for k in CHECKSUM_KINDS if k != 'none')}; "
                    "import with --lenient to skip this check (it is then reported)",
                )
            unchecked.append(text)
            continue
        if block == "no data block":
            text = f"{where}: covers no imported data block"
            if not lenient:
                raise ImageError(
                    text,
                    source=container.source_name,
                    hint="the container is inconsistent; import with --lenient to skip it",
                )
            unchecked.append(text)
            continue
        if cs.end < cs.start:
            raise ImageError(
                f"{where}: the range ends before it starts", source=container.source_name
            )
        fill = 0xFF if cs.fillbyte is None else cs.fillbyte
        actual = checksum(kind, _range_bytes(image, cs.start, cs.end, fill))
        expected = (
            cs.expected.rjust(len(actual), b"\x00")
            if len(cs.expected) < len(actual)
            else cs.expected
        )
        if actual != expected:
            raise ImageError(
                f"{where}: the container states {cs.algorithm} {cs.expected.hex().upper()}, "
                f"the data gives {actual.hex().upper()}",
                source=container.source_name,
                hint=f"data block {block} is corrupt or was changed after the container was "
                "made; do not flash it, ask its supplier for the container again",
            )
        verified.append(f"{cs.name}: {cs.algorithm} {actual.hex().upper()} over {block}")
    return ChecksumReport(tuple(verified), tuple(unchecked))


# -- EA profile changes -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileChange:
    """One flash parameter the container states that differs from the ECU's EA profile."""

    key: str
    label: str
    current: str
    proposed: str
    source: str
    value: int | str


def _hex(value: int | None, width: int = 2) -> str:
    return "—" if value is None else f"0x{value:0{width}X}"


#: What each EA profile change is, as the review table names it.
_CHANGE_LABELS = {
    "address_and_length_format": "RequestDownload addressAndLengthFormatIdentifier",
    "data_format": "RequestDownload dataFormatIdentifier (compression/encryption)",
    "check.checksum": "check step: checksum the routine carries",
    "security.level": "programming security access level (27 xx requestSeed)",
    "programming_session": "programming session (10 xx)",
    "timing.ecu_max_block_length": "ECU's maxNumberOfBlockLength (estimates)",
}


def profile_changes(ecu: EcuDefinition, params: FlashParams) -> list[ProfileChange]:
    """The container's flash parameters that differ from `ecu`'s UDS profile (nothing changed)."""
    uds = ecu.uds
    out: list[ProfileChange] = []

    def offer(
        key: str, param: str, current: str, value: int | str, show: Callable[[Any], str] = _hex
    ) -> None:
        """Offer `key` when the container's `value` (its FlashParams field `param`) differs."""
        proposed = show(value)
        if current != proposed:
            src = params.sources.get(param, "")
            out.append(ProfileChange(key, _CHANGE_LABELS[key], current, proposed, src, value))

    if params.address_length is not None and params.size_length is not None:
        alfid = ((params.size_length & 0xF) << 4) | (params.address_length & 0xF)
        current = _hex(uds.address_and_length_format)
        offer("address_and_length_format", "address_length", current, alfid)
    if params.data_format is not None:
        offer("data_format", "data_format", _hex(uds.data_format), params.data_format)
    check = uds.step(StepKind.CHECK)
    if params.checksum_kind is not None and check is not None:
        current = str(check.param("checksum"))
        offer("check.checksum", "checksum_kind", current, params.checksum_kind, str)
    sec = uds.step(StepKind.SECURITY_LEVEL_2)
    if params.security_level is not None and sec is not None:
        current = _hex(int(sec.param("level")))
        offer("security.level", "security_level", current, params.security_level)
    if params.programming_session is not None:
        current = _hex(uds.programming_session)
        offer("programming_session", "programming_session", current, params.programming_session)
    if params.max_block_length is not None:
        cur = uds.timing.ecu_max_block_length
        current = "—" if cur is None else str(cur)
        offer(
            "timing.ecu_max_block_length", "max_block_length", current, params.max_block_length, str
        )
    return out


def apply_profile_changes(ecu: EcuDefinition, accepted: Sequence[ProfileChange]) -> EcuDefinition:
    """A copy of `ecu` with the accepted changes applied (the original is left alone)."""
    out = copy.deepcopy(ecu)
    uds = out.uds
    for ch in accepted:
        if ch.key == "address_and_length_format":
            uds.address_and_length_format = int(ch.value)
        elif ch.key == "data_format":
            uds.data_format = int(ch.value)
        elif ch.key == "check.checksum":
            step = uds.step(StepKind.CHECK)
            if step is not None:
                step.params["checksum"] = str(ch.value)
        elif ch.key == "security.level":
            step = uds.step(StepKind.SECURITY_LEVEL_2)
            if step is not None:
                step.params["level"] = int(ch.value)
        elif ch.key == "programming_session":
            uds.programming_session = int(ch.value)
            step = uds.step(StepKind.PROGRAMMING_SESSION)
            if step is not None:
                step.params["session"] = int(ch.value)
        elif ch.key == "timing.ecu_max_block_length":
            uds.timing.ecu_max_block_length = int(ch.value)
        else:
            raise ValueError(f"unknown EA profile change {ch.key!r}")
    return out
