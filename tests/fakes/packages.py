"""Firmware for the demo VCU's repository, as the package and trust tests import it."""

from __future__ import annotations

from fota_studio.core.firmware import FirmwareImage, Segment, to_hex
from fota_studio.demo import catalog as demo_catalog


def vcu_repository() -> tuple[str, str]:
    """Brand and model of the demo VCU (its Software Repository)."""
    ecu = next(e for e in demo_catalog.demo_ecus() if e.name == "VCU")
    return ecu.brand, ecu.model


def vcu_image_hex(version: str) -> bytes:
    """An Intel HEX image for the demo VCU: one segment that starts with the app header."""
    head = demo_catalog.app_header(version)
    body = head + bytes((i * 13) & 0xFF for i in range(0x600 - len(head)))
    return to_hex(FirmwareImage((Segment(demo_catalog.APP_REGION_START, body),)))
