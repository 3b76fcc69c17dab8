"""The reference ECU that the simulator models and the demo machine is built from.

Facts a simulated ECU needs without knowing about any demo: the memory layout of its flash
(a protected bootloader below the application region), the *application header* a firmware
image carries at the first address of its region so the ECU can report the running software
version (DID F195) from what was actually flashed, and the DIDs of the two sensors it answers
for flash preconditions (SAE J1979 PIDs 0x0D vehicle speed and 0x42 control module voltage,
read as DIDs 0xF40D / 0xF442, ISO 14229-1 Annex C.1). The demo catalog (`fota_studio/demo/`)
and the simulator (`fota_studio/sim/`) both read them from here.

Pure data and functions; safe from any thread.
"""

from __future__ import annotations

#: Application header at the first address of the application region:
#: magic (8 bytes) + version (ASCII, NUL padded to 24 bytes) = 32 bytes.
APP_HEADER_MAGIC = b"FSAPPHDR"
APP_HEADER_SIZE = 32

#: Bootloader (protected, never writable) and application region of the reference ECU.
BOOTLOADER_START = 0x0000_0000
BOOTLOADER_LENGTH = 0x0001_0000
APP_REGION_START = 0x0001_0000
APP_REGION_LENGTH = 0x0010_0000

#: DIDs the reference ECU answers for the preconditions.
DID_VEHICLE_SPEED = 0xF40D  # 1 byte, km/h
DID_SUPPLY_VOLTAGE = 0xF442  # 2 bytes, mV


def app_header(version: str) -> bytes:
    """The 32-byte application header that carries `version` in an image."""
    raw = version.encode("ascii")[: APP_HEADER_SIZE - len(APP_HEADER_MAGIC)]
    return APP_HEADER_MAGIC + raw.ljust(APP_HEADER_SIZE - len(APP_HEADER_MAGIC), b"\x00")


def parse_app_header(data: bytes) -> str | None:
    """Return the version in an application header, or None when `data` has none."""
    if len(data) < APP_HEADER_SIZE or not data.startswith(APP_HEADER_MAGIC):
        return None
    raw = data[len(APP_HEADER_MAGIC) : APP_HEADER_SIZE].rstrip(b"\x00")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None
