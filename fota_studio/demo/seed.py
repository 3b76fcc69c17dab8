"""The demo workspace: seeds a brand-new workspace with the demo machine's repositories and EA.

`ensure_demo` fills an empty workspace once with one Software Repository per
`catalog.DEMO_REPOSITORIES` entry and its versions, whose firmware images
`generate_demo_image` makes deterministically (seeded PRNG): code-like bytes, a string table, a
calibration curve and 0xFF padding, 2–4 segments with gaps inside the demo ECUs' application
region, with the application header (the version) at the first address so a simulated ECU
reports what was flashed. Every version row and the repositories are stored in one transaction;
the `demo_seeded` setting makes it idempotent, and a user's workspace is never touched.
`seed_demo_architecture` stores the demo EA "Excavator-X200" and its machines (idempotent: a
machine the user has since updated keeps its versions).

Thread use: call from the thread that opens the workspace (start-up, CLI, tests); it writes a
few hundred KiB of blobs and takes well under a second.
"""

from __future__ import annotations

import random
import re
import struct
import zlib

from fota_studio.core import firmware
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.core.reference_ecu import (
    APP_HEADER_SIZE,
    APP_REGION_LENGTH,
    APP_REGION_START,
    app_header,
)
from fota_studio.demo.catalog import (
    DEMO_EA_NAME,
    DEMO_MACHINES,
    DEMO_REPOSITORIES,
    demo_architecture,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import PreparedImport, RepositoryStore
from fota_studio.infra.workspace import Workspace

#: The `source` of the installed versions the demo seeding and a demo reset write.
DEMO_SOURCE = "demo"
#: Workspace setting recording that the demo data was seeded (never re-seeded after).
DEMO_SEEDED_SETTING = "demo_seeded"
#: Set while seeding, so a crash half-way lets the next start finish the job.
_DEMO_PENDING_SETTING = "demo_seed_pending"

#: Segment sizes are multiples of this (a typical flash page) and gaps are aligned to it.
_PAGE_BYTES = 0x100
#: Candidate gaps between segments.
_GAP_CHOICES_BYTES = (0x800, 0x1000, 0x2000, 0x4000, 0x8000)

#: High bytes of common Thumb-2 instructions (push/pop, ldr/str, mov, cmp, branches, bl), so
#: the generated code has the byte statistics of real firmware rather than white noise.
_OPCODE_HIGH_BYTES = bytes(
    [0xB5, 0xBD, 0x68, 0x60, 0x46, 0x28, 0x20, 0x30, 0xD0, 0xD1, 0xE0, 0xF0, 0xF7, 0x47, 0x4B]
)
_OPCODE_TABLE = bytes(_OPCODE_HIGH_BYTES[i % len(_OPCODE_HIGH_BYTES)] for i in range(256))

_RELEASE_NOTES = {
    "3.1.0": "Initial field release.\n- Travel drive torque limiter\n- J1939 engine interface",
    "3.2.0": "Smoother boom-down damping.\n- New diagnostic DIDs for the operator display\n"
    "- Fixed a rare watchdog reset on cold start below -25 °C",
    "3.2.1": "Hotfix: CAN timeout on the HCU link was reported as a sensor fault.",
    "1.4.2": "Pump pressure control tuning for the X200 hydraulics.",
    "1.5.0": "Load-sensing valve curves per work mode.\n- Faster pressure build-up in ECO mode\n"
    "- Supply voltage monitoring with hysteresis",
    "2.0.0": "First CAN FD release of the body controller.",
    "2.1.0": "Cab climate and work-light scenes.\n- Reduced bus load at 2 Mbit/s data phase",
    "2.2.0-rc.1": "Release candidate: new wiper control and rear-camera switching. "
    "Not for production machines.",
}


def _demo_seed(brand: str, model: str, version: str) -> int:
    """The PRNG seed of a demo version (stable across runs and machines)."""
    return zlib.crc32(f"{brand}|{model}|{version}".encode())


def _segment_sizes(rng: random.Random, total: int, count: int) -> list[int]:
    """Split `total` bytes into `count` page-aligned sizes of at least 4 pages each."""
    pages = total // _PAGE_BYTES
    weights = [rng.uniform(0.6, 1.8) for _ in range(count)]
    weights[0] *= 1.5  # the first segment holds most of the code, as in real images
    sizes = [max(4, int(pages * w / sum(weights))) for w in weights[:-1]]
    last = pages - sum(sizes)
    if last < 4:
        sizes = [pages // count] * (count - 1)
        last = pages - sum(sizes)
    return [p * _PAGE_BYTES for p in [*sizes, last]]


def _code_bytes(rng: random.Random, length: int) -> bytearray:
    """Pseudo Thumb-2 code: random operands, high bytes from common opcodes."""
    code = bytearray(rng.randbytes(length))
    code[1::2] = bytes(code[1::2]).translate(_OPCODE_TABLE)
    return code


def _string_table(version: str, length: int) -> bytes:
    """NUL-terminated ASCII strings like the .rodata of real firmware, cut to `length`."""
    strings = (
        f"FOTA Studio demo application {version}",
        "E%03d: CAN timeout on node %u",
        "sensor out of range",
        "bootloader entry requested",
        "watchdog reset",
        "calibration checksum ok",
    )
    table = b"\x00".join(s.encode("ascii") for s in strings) + b"\x00"
    return (table * (length // len(table) + 1))[:length]


def _calibration_curve(rng: random.Random, count: int) -> bytes:
    """A monotonic little-endian uint16 curve (a lookup table, like a calibration map)."""
    values = []
    value = rng.randint(0, 500)
    for _ in range(count):
        value = min(0xFFFF, value + rng.randint(0, 40))
        values.append(value)
    return struct.pack(f"<{count}H", *values)


def generate_demo_image(version: str, size_kib: int, seed: int) -> FirmwareImage:
    """A deterministic firmware-like image of `size_kib` KiB in the demo application region.

    2–4 segments with gaps; the first starts at APP_REGION_START with `app_header(version)`,
    followed by a vector table and code; later segments carry strings, a calibration curve and
    code; every segment ends in 0xFF padding (erased flash).
    """
    total = size_kib * 1024
    if size_kib < 4:
        raise ValueError(f"demo image of {size_kib} KiB is too small (minimum 4 KiB)")
    rng = random.Random(seed)
    count = rng.randint(2, 4)
    sizes = _segment_sizes(rng, total, count)
    gaps = [rng.choice(_GAP_CHOICES_BYTES) for _ in range(count - 1)]
    if total + sum(gaps) > APP_REGION_LENGTH:
        gaps = [_PAGE_BYTES] * (count - 1)
    if total + sum(gaps) > APP_REGION_LENGTH:
        raise ValueError(f"demo image of {size_kib} KiB does not fit the application region")

    segments: list[Segment] = []
    address = APP_REGION_START
    for index, size in enumerate(sizes):
        data = _code_bytes(rng, size)
        pos = 0
        if index == 0:
            data[0:APP_HEADER_SIZE] = app_header(version)
            pos = APP_HEADER_SIZE
            # Vector table: initial stack pointer, then Thumb (odd) handler addresses in code.
            vectors = [0x2000_8000] + [
                (address + rng.randrange(0x200, size - 0x10, 2)) | 1 for _ in range(31)
            ]
            table = struct.pack("<32I", *vectors)
            data[pos : pos + len(table)] = table
        else:
            strings = _string_table(version, min(2048, size // 8))
            data[0 : len(strings)] = strings
            pos = len(strings)
            curve = _calibration_curve(rng, min(256, size // 16))
            data[pos : pos + len(curve)] = curve
        # Erased flash at the end of each segment: a real linker pads to the sector.
        pad = int(size * rng.uniform(0.04, 0.15))
        if pad:
            data[size - pad :] = b"\xff" * pad
        segments.append(Segment(address=address, data=bytes(data)))
        address += size + (gaps[index] if index < len(gaps) else 0)
    return FirmwareImage(segments=tuple(segments), start_address=None)


def _is_empty(ws: Workspace) -> bool:
    """True when the workspace holds no user data (repositories, EAs, machines, records)."""
    for table in ("repositories", "versions", "eas", "machines", "flash_records"):
        if ws.read(f"SELECT 1 FROM {table} LIMIT 1"):
            return False
    return True


def _source_name(model: str, version: str, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{model}_{version}").strip("_")
    return stem + (".hex" if fmt == "hex" else ".s19")


def _demo_imports(store: RepositoryStore) -> list[PreparedImport]:
    """The demo versions not yet in the workspace, as prepared imports."""
    existing = {(r.brand, r.model) for r in store.list_repositories()}
    items: list[PreparedImport] = []
    index = 0
    for repo in DEMO_REPOSITORIES:
        have = (
            {v.version for v in store.list_versions(repo.brand, repo.model)}
            if (repo.brand, repo.model) in existing
            else set()
        )
        for version, kib in zip(repo.versions, repo.image_kib, strict=True):
            fmt = "hex" if index % 2 == 0 else "srec"  # the demo shows both text formats
            index += 1
            if version in have:
                continue
            image = generate_demo_image(version, kib, _demo_seed(repo.brand, repo.model, version))
            file_bytes = firmware.to_hex(image) if fmt == "hex" else firmware.to_srec(image)
            items.append(
                PreparedImport(
                    brand=repo.brand,
                    model=repo.model,
                    version=version,
                    file_bytes=file_bytes,
                    image=image,
                    source_name=_source_name(repo.model, version, fmt),
                    source_format=fmt,
                    notes=_RELEASE_NOTES.get(version, f"Demo firmware {version}."),
                    imported_by="demo",
                    create_repository=True,
                    repository_description=repo.description,
                )
            )
    return items


#: How long a process opening a new workspace waits for another one that is seeding it.
DEMO_SEED_WAIT_S = 120.0


def ensure_demo(ws: Workspace) -> bool:
    """Seed the demo repositories, versions and EA into a brand-new workspace; True if it did.

    Idempotent: a workspace seeded before (setting `demo_seeded`) or holding any user data is
    left alone (a read-only one too). Demo repositories and versions go in in one transaction.
    Race-free: processes opening a new workspace at once take turns on a workspace file lock;
    the first seeds, the others then find it seeded (before: "version 3.1.0 already exists").
    """
    if ws.read_only or ws.get_setting(DEMO_SEEDED_SETTING):
        return False
    from fota_studio.infra.locks import LOCK_DIR, FileLock

    with FileLock(ws.root / LOCK_DIR / "demo-seed.lock", label="demo seeding") as lock:
        lock.acquire("demo seeding", wait_s=DEMO_SEED_WAIT_S)
        return _seed_locked(ws)


def _seed_locked(ws: Workspace) -> bool:
    """`ensure_demo` while holding the seeding lock."""
    if ws.get_setting(DEMO_SEEDED_SETTING):
        return False
    if not ws.get_setting(_DEMO_PENDING_SETTING):
        if not _is_empty(ws):
            return False
        ws.set_setting(_DEMO_PENDING_SETTING, True)
    store = RepositoryStore(ws)
    items = _demo_imports(store)
    if items:
        store.commit_imports(items)
    seed_demo_architecture(ws)
    with ws.transaction() as cur:
        cur.execute(
            "INSERT INTO settings(key, value) VALUES(?, 'true') "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (DEMO_SEEDED_SETTING,),
        )
        cur.execute("DELETE FROM settings WHERE key = ?", (_DEMO_PENDING_SETTING,))
    return True


def seed_demo_architecture(ws: Workspace) -> None:
    """Store the demo EA and assign the demo machines "Unit #1001", "Unit #1002" to it.

    Idempotent: the EA is stored only when missing, and each demo machine is created (with the
    installed versions of `DEMO_REPOSITORIES`) only when it does not exist.
    """
    store = EaStore(ws)
    ea = demo_architecture()
    if not store.exists(DEMO_EA_NAME):
        store.save(ea)
    for serial in DEMO_MACHINES:
        if store.find_machine(serial) is not None:
            continue
        store.assign(serial, DEMO_EA_NAME, name=f"Demo excavator {serial.split('#')[-1]}")
        # ECUs are VCU, HCU, BCU in the order of DEMO_REPOSITORIES
        for ecu, repo in zip(ea.ecus, DEMO_REPOSITORIES, strict=True):
            store.set_installed(serial, ecu.name, repo.installed_version, DEMO_SOURCE)
