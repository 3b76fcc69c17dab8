"""Does a firmware image carry the version it is imported as? Checked before it is stored.

An ECU reports its running version (DID F195, the EA's read_version step) from the image it
was flashed with; an image imported as "3.3.0" that says "3.2.1" inside (or nothing) flashes
fine and then fails the verification after erase and write. `check_image_version` looks where
the Electronic Architecture says the version lives: the application header at the first
address of the ECU's application region (`core/reference_ecu`: magic + ASCII version, the
layout the ECUs of this workspace and the simulator use), for every ECU of any EA of the
workspace with that Brand/Model. A header with another version is an ImageError (nothing is
stored); an image without a header is searched for the version string; when that finds
nothing, or no EA has an ECU of that Brand/Model, a warning says the version cannot be
checked. Reads the workspace and walks the image: call it on a worker thread.
"""

from __future__ import annotations

from typing import Any

from fota_studio.core.errors import ImageError
from fota_studio.core.firmware import FirmwareImage
from fota_studio.core.reference_ecu import APP_HEADER_SIZE, parse_app_header
from fota_studio.infra.ea_store import EaStore


def _read(image: FirmwareImage, address: int, length: int) -> bytes:
    for seg in image.segments:
        if seg.address <= address and address + length <= seg.address + len(seg.data):
            start = address - seg.address
            return bytes(seg.data[start : start + length])
    return b""


def _contains(image: FirmwareImage, needle: bytes) -> int | None:
    for seg in image.segments:
        at = bytes(seg.data).find(needle)
        if at >= 0:
            return seg.address + at
    return None


def header_addresses(ws: Any, brand: str, model: str) -> dict[int, list[str]]:
    """Where the version header of Brand/Model lives: region start → "EA/ECU" names."""
    out: dict[int, list[str]] = {}
    store = EaStore(ws)
    for name in store.names():
        ea = store.get(name)
        for ecu in ea.ecus:
            if (ecu.brand, ecu.model) == (brand, model) and ecu.uds.memory_regions:
                start = ecu.uds.memory_regions[0].start
                out.setdefault(start, []).append(f"{ea.name}/{ecu.name}")
    return out


def check_image_version(
    ws: Any, brand: str, model: str, version: str, image: FirmwareImage, *, source: str = ""
) -> list[str]:
    """Warnings about the version inside `image` ([] when it is found where the EA says).

    Raises ImageError when the image's application header names another version."""
    places = header_addresses(ws, brand, model)
    if not places:
        return [
            f"the version string of {version} cannot be checked: no Electronic Architecture "
            f"of this workspace has an ECU of {brand} / {model} (the EA says where it lives)"
        ]
    for address, ecus in sorted(places.items()):
        found = parse_app_header(_read(image, address, APP_HEADER_SIZE))
        if found is None:
            continue
        if found != version:
            raise ImageError(
                f"the image says it is version {found!r} (application header at 0x{address:X}, "
                f"where {', '.join(ecus)} report it from), not {version!r}",
                source=source,
                hint=f"import it as {found}, or choose the file of {version}; flashed as "
                f"{version} it would fail the version check after erase and write",
            )
        return []
    at = _contains(image, version.encode("ascii", "replace"))
    first = min(places)
    if at is None:
        return [
            f"the image has no application header at 0x{first:X} and does not contain the "
            f"text {version!r}: its version cannot be checked, and the ECU may report another "
            "one after the flash (the flash is then NOT verified)"
        ]
    return [
        f"the image has no application header at 0x{first:X}; the text {version!r} was found "
        f"at 0x{at:X} (not where the ECU reads its version)"
    ]
