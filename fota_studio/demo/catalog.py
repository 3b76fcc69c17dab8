"""The demo machine type: what the demo workspace, the demo bench, `sim --demo` and tests use.

One place says what the demo "Excavator-X200" is: its three ECUs (classic CAN 11-bit,
29-bit normal-fixed, CAN FD), their Brand/Model (= the demo Software Repositories), IDs, memory
layout, security constants, the demo firmware versions, the version each demo ECU runs on a
fresh machine and the version a demo run offers (`DemoRepository.installed_version` →
`demo_version`, pinned: importing another version never changes what the demo shows). The
memory layout and the application header that carries an image's version are the simulator's
reference ECU (`core/reference_ecu.py`), re-exported here for the demo's users.

Pure data; safe from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fota_studio.core.ea import (
    AddressingMode,
    BootloaderEntryFrame,
    Connection,
    EcuDefinition,
    ElectronicArchitecture,
    IsoTpAddress,
    MemoryRegion,
    Precondition,
    SecurityLevel,
    UdsProfile,
    normal_fixed_ids,
)
from fota_studio.core.reference_ecu import (
    APP_HEADER_MAGIC,
    APP_HEADER_SIZE,
    APP_REGION_LENGTH,
    APP_REGION_START,
    BOOTLOADER_LENGTH,
    BOOTLOADER_START,
    DID_SUPPLY_VOLTAGE,
    DID_VEHICLE_SPEED,
    app_header,
    parse_app_header,
)
from fota_studio.core.seedkey import DEMO_SECRET_PREFIX

__all__ = [
    "APP_HEADER_MAGIC",
    "APP_HEADER_SIZE",
    "APP_REGION_LENGTH",
    "APP_REGION_START",
    "BOOTLOADER_LENGTH",
    "BOOTLOADER_START",
    "DEMO_CHANNEL",
    "DEMO_EA_NAME",
    "DEMO_ECU",
    "DEMO_MACHINES",
    "DEMO_REPOSITORIES",
    "DID_SUPPLY_VOLTAGE",
    "DID_VEHICLE_SPEED",
    "SECURITY_CONSTANTS",
    "TCU_NODE_ID",
    "DemoRepository",
    "app_header",
    "demo_architecture",
    "demo_ecus",
    "demo_repository",
    "parse_app_header",
]

DEMO_EA_NAME = "Excavator-X200"
DEMO_MACHINES = ("Unit #1001", "Unit #1002")
DEMO_CHANNEL = "CAN1"
TCU_NODE_ID = 0x7A
#: The ECU a demo run updates.
DEMO_ECU = "VCU"


@dataclass(frozen=True)
class DemoRepository:
    """A demo Software Repository and the versions generated for it."""

    brand: str
    model: str
    description: str
    versions: tuple[str, ...]
    image_kib: tuple[int, ...]  # total image size per version, KiB
    installed_version: str  # what the simulated machine runs at first (and after a reset)
    demo_version: str  # what a demo run offers: always an upgrade from installed_version


DEMO_REPOSITORIES: tuple[DemoRepository, ...] = (
    DemoRepository(
        brand="TTControl",
        model="TTC 2390",
        description="Safety controller, vehicle control unit (VCU)",
        versions=("3.1.0", "3.2.0", "3.2.1"),
        image_kib=(96, 112, 128),
        installed_version="3.1.0",
        demo_version="3.2.1",
    ),
    DemoRepository(
        brand="Bosch Rexroth",
        model="BODAS RC5-6/40",
        description="Mobile hydraulics controller (HCU), 29-bit J1939-style addressing",
        versions=("1.4.2", "1.5.0"),
        image_kib=(80, 96),
        installed_version="1.4.2",
        demo_version="1.5.0",
    ),
    DemoRepository(
        brand="Danfoss",
        model="PLUS+1 MC050-112",
        description="Machine controller on the CAN FD body bus (BCU)",
        versions=("2.0.0", "2.1.0", "2.2.0-rc.1"),
        image_kib=(128, 160, 192),
        installed_version="2.0.0",
        demo_version="2.1.0",
    ),
)

SECURITY_CONSTANTS = {0x01: 0x5A3C_9E11, 0x03: 0xC3A5_0F69}


def demo_repository(brand: str, model: str) -> DemoRepository | None:
    """The demo repository of that Brand/Model, or None when it is not a demo one."""
    for repo in DEMO_REPOSITORIES:
        if (repo.brand, repo.model) == (brand, model):
            return repo
    return None


def _profile() -> UdsProfile:
    """The demo UDS profile: default sequence, two xor32 levels, preconditions, one region."""
    return UdsProfile(
        security_levels=[
            SecurityLevel(
                name="extended",
                seed_subfunction=0x01,
                algorithm="xor32",
                # published demo secret (core.seedkey.DEMO_SECRETS), never in the EA itself
                secret_ref=DEMO_SECRET_PREFIX + "extended",
            ),
            SecurityLevel(
                name="programming",
                seed_subfunction=0x03,
                algorithm="xor32",
                secret_ref=DEMO_SECRET_PREFIX + "programming",
            ),
        ],
        memory_regions=[
            MemoryRegion(name="application", start=APP_REGION_START, length=APP_REGION_LENGTH)
        ],
        preconditions=[
            Precondition(
                name="Machine stationary",
                did=DID_VEHICLE_SPEED,
                length=1,
                unit="km/h",
                minimum=0,
                maximum=0,
            ),
            Precondition(
                name="Supply voltage",
                did=DID_SUPPLY_VOLTAGE,
                length=2,
                scale=0.001,
                unit="V",
                minimum=11.5,
                maximum=14.5,
            ),
        ],
    )


#: The payload of the raw frame that makes a demo ECU's application jump to its bootloader.
_BOOT_ENTRY_DATA = bytes.fromhex("B007000000000000")


def _demo_ecu(
    repo: DemoRepository,
    name: str,
    role: str,
    hardware_version: str,
    *,
    entry_id: int,
    extended_id: bool = False,
    **connection: Any,
) -> EcuDefinition:
    """A demo ECU of `repo`'s brand/model on the demo channel with the demo UDS profile; its
    application jumps to the bootloader on frame `entry_id`, which is up 300 ms later.
    `connection`: the rest of its `Connection` (addresses, IDs, CAN FD)."""
    return EcuDefinition(
        name=name,
        role=role,
        brand=repo.brand,
        model=repo.model,
        hardware_version=hardware_version,
        connection=Connection(
            channel=DEMO_CHANNEL,
            bootloader_entry=BootloaderEntryFrame(
                can_id=entry_id, data=_BOOT_ENTRY_DATA, extended_id=extended_id
            ),
            bootloader_entry_delay_ms=300,
            **connection,
        ),
        uds=_profile(),
    )


def demo_ecus() -> list[EcuDefinition]:
    """The three demo ECUs: VCU (11-bit), HCU (29-bit normal-fixed), BCU (CAN FD)."""
    vcu_repo, hcu_repo, bcu_repo = DEMO_REPOSITORIES
    hcu_app = normal_fixed_ids(0x11, 0xF1)
    hcu_boot = normal_fixed_ids(0x91, 0xF1)
    return [
        _demo_ecu(
            vcu_repo,
            "VCU",
            "Vehicle control unit",
            "HW 2.1",
            entry_id=0x5F0,
            application=IsoTpAddress(0x7E0, 0x7E8),
            bootloader=IsoTpAddress(0x7E1, 0x7E9),
            functional_id=0x7DF,
            heartbeat_id=0x7C0,  # outside the CANopen predefined connection set
        ),
        _demo_ecu(
            hcu_repo,
            "HCU",
            "Hydraulics control unit",
            "RC5-6/40 rev C",
            entry_id=0x18FF0011,
            extended_id=True,
            application=IsoTpAddress(*hcu_app, target_address=0x11, source_address=0xF1),
            bootloader=IsoTpAddress(*hcu_boot, target_address=0x91, source_address=0xF1),
            id_bits=29,
            addressing=AddressingMode.NORMAL_FIXED,
            functional_id=0x18DB33F1,
            heartbeat_id=0x0CFF0011,
        ),
        _demo_ecu(
            bcu_repo,
            "BCU",
            "Body control unit (CAN FD)",
            "MC050-112 FD",
            entry_id=0x5F2,
            application=IsoTpAddress(0x7E2, 0x7EA),
            bootloader=IsoTpAddress(0x7E3, 0x7EB),
            fd=True,
            data_bitrate_bps=2_000_000,
            fd_frame_length=64,
            functional_id=0x7DF,
            heartbeat_id=0x7C2,
        ),
    ]


def demo_architecture() -> ElectronicArchitecture:
    """The demo EA "Excavator-X200" with its three ECUs."""
    return ElectronicArchitecture(
        name=DEMO_EA_NAME,
        description="Demo 20-tonne crawler excavator: VCU on classic CAN, HCU with 29-bit "
        "normal-fixed addressing, BCU on CAN FD",
        machine_model="X200",
        ecus=demo_ecus(),
    )
