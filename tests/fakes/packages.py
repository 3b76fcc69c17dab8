"""Firmware for the demo VCU's repository and the CLI words that flash it, as the package and
trust tests use them."""

from __future__ import annotations

from typing import Any

from fota_studio.core.firmware import FirmwareImage, Segment, to_hex
from fota_studio.core.package import build_package, load_signing_key
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


def vcu_flash_args(version: str) -> tuple[str, ...]:
    """CLI arguments that flash `version` from the VCU's repository into Unit #1001, simulated."""
    machine = ("--machine", "Unit #1001", "--version", version)
    return ("flash", "--ecu", "VCU", *machine, "--simulate", "--no-progress")


def vcu_package(
    version: str, private_pem: bytes | None, signer: str = "release", **policy: Any
) -> bytes:
    """A firmware package of `vcu_image_hex(version)` for the VCU's repository, signed with
    `private_pem` by `signer` (unsigned when None); `policy`: hardware IDs, bootloader versions,
    release counter as `build_package` takes them."""
    brand, model = vcu_repository()
    key = load_signing_key(private_pem) if private_pem else None
    return build_package(
        vcu_image_hex(version),
        "vcu.hex",
        brand=brand,
        model=model,
        version=version,
        signing_key=key,
        signer=signer if key else "",
        **policy,
    )
