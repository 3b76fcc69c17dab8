"""Generate the user manual's EA reference (every field of `fota_studio/core/ea.py`, its default
and its meaning) and keep docs/USER_MANUAL.md in step with the code.

Field names and defaults are read from the dataclasses themselves, so the tables cannot drift
from the code; the meanings are written here, next to the list of fields they describe. The
manual holds the generated text between the `<!-- ea-reference:start -->` and
`<!-- ea-reference:end -->` markers; `tests/unit/test_manual.py` fails when the two differ or a
field has no meaning. Pure functions, no Qt; any thread.

    .venv/bin/python docs/tools/ea_reference.py --write   # refresh the block in the manual
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fota_studio.core import ea  # noqa: E402

MANUAL = ROOT / "docs" / "USER_MANUAL.md"
START = "<!-- ea-reference:start -->"
END = "<!-- ea-reference:end -->"

#: (class, where it sits in an EA file, one-line summary), in reading order.
CLASSES: list[tuple[type[Any], str, str]] = [
    (ea.ElectronicArchitecture, "top level", "One machine type."),
    (ea.EcuDefinition, "`ecus[]`", "One ECU of the machine type."),
    (
        ea.Connection,
        "`ecus[].connection`",
        "How to reach the ECU on CAN, in application and in bootloader mode.",
    ),
    (
        ea.IsoTpAddress,
        "`connection.application`, `connection.bootloader`",
        "A physical request/response CAN ID pair (ISO 15765-2).",
    ),
    (
        ea.BootloaderEntryFrame,
        "`connection.bootloader_entry`",
        "Optional raw frame that makes the application jump to its bootloader.",
    ),
    (ea.UdsProfile, "`ecus[].uds`", "Tester-side UDS parameters (ISO 14229)."),
    (ea.SecurityLevel, "`uds.security_levels[]`", "One SecurityAccess (0x27) level."),
    (ea.SequenceStep, "`uds.sequence[]`", "One step of the reprogramming sequence."),
    (ea.MemoryRegion, "`uds.memory_regions[]`", "A writable flash region."),
    (ea.DidDefinition, "`uds.dids[]`", "A data identifier the tester reads and shows."),
    (
        ea.Precondition,
        "`uds.preconditions[]`",
        "A check before anything is erased: read a DID, scale, compare to limits.",
    ),
    (
        ea.RoutinePrecondition,
        "`uds.routine_preconditions[]`",
        'A "check programming preconditions" routine run before anything is erased.',
    ),
    (ea.ProtectedRange, "`uds.protected_ranges[]`", "An address range the erase never touches."),
    (
        ea.EcuTiming,
        "`uds.timing`",
        "Timing facts of the ECU from its supplier's bootloader specification.",
    ),
    (
        ea.CompressionSettings,
        "`uds.compression`",
        "Optional compressed download: the method ID the ECU understands and its codec.",
    ),
    (
        ea.SectorChecksum,
        "`uds.sector_checksum`",
        "Optional checksum-per-sector routine: delta flashing and resume after an interruption.",
    ),
    (ea.HealthChecks, "`uds.health`", "Checkpoint 2 health checks after the reset."),
    (ea.Machine, "machines (workspace)", "A physical or simulated machine assigned to an EA."),
    (ea.VersionChange, "`machine.history[]`", "One entry of a machine ECU's version history."),
]

MEANINGS: dict[str, dict[str, str]] = {
    "ElectronicArchitecture": {
        "name": "Unique name of the machine type (e.g. `Excavator-X200`).",
        "description": "Free text shown in the editor.",
        "machine_model": "The OEM's model designation.",
        "ecus": "The ECUs of the machine type.",
        "schema_version": "EA file format version written with the EA.",
    },
    "EcuDefinition": {
        "name": "Unique ECU name within the EA (`VCU`, `HCU`…); used by requests and records.",
        "brand": "Brand of the Software Repository that fits this ECU.",
        "model": "Model of that Software Repository; Brand/Model pick the firmware.",
        "connection": "CAN addressing and timing (below).",
        "role": "What the ECU does (free text).",
        "hardware_version": "Hardware revision (free text, shown in requests and records).",
        "notes": "Free text.",
        "uds": "UDS profile and reprogramming sequence (below).",
        "after": "ECUs a machine-level flash (`flash --machine M --all`) finishes before this "
        "one starts (e.g. `[gateway]`); a failed one means this ECU is not flashed.",
    },
    "Connection": {
        "application": "Request/response IDs while the application runs.",
        "bootloader": "Request/response IDs in the bootloader (often the same as application).",
        "channel": "Logical CAN channel; CAN ▸ Adapter settings maps it to a real adapter.",
        "bitrate_bps": "Nominal (arbitration) bitrate in bit/s.",
        "fd": "Use CAN FD frames.",
        "data_bitrate_bps": "CAN FD data-phase bitrate in bit/s (only with `fd`).",
        "id_bits": "11 (standard) or 29 (extended) CAN identifiers.",
        "addressing": "ISO-TP addressing: `normal`, `normal_fixed` (29-bit 0x18DA…), "
        "`extended` or `mixed`.",
        "functional_id": "Functional (broadcast) request ID, used by CommunicationControl.",
        "padding_byte": "Byte that fills the unused bytes of ISO-TP frames; none = no padding.",
        "block_size": "ISO-TP flow-control block size the tester asks for (0 = no limit).",
        "stmin_ms": "ISO-TP minimum separation time between consecutive frames, ms.",
        "fd_frame_length": "Largest CAN FD frame ISO-TP uses (TX_DL: 8…64 bytes).",
        "bootloader_entry": "Optional raw frame sent to enter the bootloader; none = use the "
        "programming session only.",
        "bootloader_entry_delay_ms": "Wait after the bootloader entry frame before talking "
        "to the bootloader, ms.",
        "heartbeat_id": "CAN ID of the ECU's heartbeat, watched by the health check; none = "
        "no heartbeat check.",
        "functional_target_address": "`extended`/`mixed` addressing: the address byte of "
        "functional requests (e.g. 0xDF); none = the physical one (`ea validate` warns). A "
        "functional ID may equal the request ID when the address bytes differ.",
    },
    "IsoTpAddress": {
        "request_id": "CAN ID the tester sends requests on.",
        "response_id": "CAN ID the ECU answers on.",
        "target_address": "ECU address: `normal_fixed` ID byte, or the first data byte of "
        "each request in `extended` addressing.",
        "source_address": "Tester address (`normal_fixed`), or the first byte of each response "
        "in `extended` addressing.",
        "address_extension": "First data byte in both directions in `mixed` addressing.",
    },
    "BootloaderEntryFrame": {
        "can_id": "CAN ID of the entry frame.",
        "data": "Payload bytes.",
        "extended_id": "Send it with a 29-bit identifier.",
    },
    "UdsProfile": {
        "p2_timeout_ms": "P2: how long the tester waits for a first response, ms.",
        "p2_star_timeout_ms": "P2*: how long it waits after NRC 0x78 (response pending), ms.",
        "s3_ms": "S3: session timeout of the ECU; TesterPresent keeps the session alive, ms.",
        "tester_present_period_ms": "Period of TesterPresent (3E 80) during a job, ms.",
        "default_session": "DiagnosticSessionControl value of the default session.",
        "extended_session": "DiagnosticSessionControl value of the extended session.",
        "programming_session": "DiagnosticSessionControl value of the programming session.",
        "security_levels": "SecurityAccess levels the sequence unlocks.",
        "sequence": "The reprogramming steps in order (see *Sequence steps*); disable a step "
        "the bootloader does not support.",
        "address_and_length_format": "addressAndLengthFormatIdentifier of RequestDownload "
        "and the erase record (0x44 = 4-byte address, 4-byte length).",
        "data_format": "dataFormatIdentifier of RequestDownload (0x00 = no compression or "
        "encryption).",
        "memory_regions": "Writable flash regions; every image segment must lie in one.",
        "dids": "DIDs read and shown (VIN, software version, serial number…).",
        "preconditions": "Checks before erasing (supply voltage, machine stationary…).",
        "routine_preconditions": "RoutineControl checks before erasing (e.g. 0x0203).",
        "health": "Checkpoint 2 health checks.",
        "timing": "Reset/boot times and erase/programming speeds (estimates, waits).",
        "erase_policy": "How the erase covers the image: `per_region` (one erase of the "
        "sector-aligned image span in each region), `per_segment` (each segment's sectors not "
        "erased yet), `whole_region` (every touched region whole). Never a sector twice, "
        "never a protected range.",
        "protected_ranges": "Address ranges never erased or written (e.g. the bootloader).",
        "active_session_did": "DID of the active session (0xF186) read first to start from a "
        "known session; none = send 10 01 first.",
        "compression": "Compressed download (below); none = data sent as is.",
        "sector_checksum": "Checksum-per-sector routine (below); with it only changed sectors "
        "are erased and written, and an interrupted flash resumes; none = whole image.",
    },
    "CompressionSettings": {
        "method_id": "compressionMethod (1..15), the high nibble of RequestDownload's "
        "dataFormatIdentifier; OEM-defined, from the bootloader specification.",
        "codec": "What that method means: `zlib` (deflate), `lzma` (.xz) or `lz4` (LZ4 frame).",
    },
    "SectorChecksum": {
        "routine_id": "RoutineControl ID: 31 01 <id> <ALFID address size> answers a status "
        "byte and one checksum per sector.",
        "record": "Request/answer layout: `address_length`.",
        "sector_bytes": "Bytes one checksum covers (the bootloader's sector).",
        "checksum": "Checksum per sector: `crc32`, `crc16_ccitt`, `sha256`.",
    },
    "SecurityLevel": {
        "name": "Label of the level (shown in the steps and records).",
        "seed_subfunction": "requestSeed sub-function (odd); sendKey is this + 1.",
        "algorithm": "Seed/key algorithm: `xor32`, `table_xor`, or a registered provider "
        "(e.g. a Vector seed/key DLL).",
        "params": "Parameters of the algorithm (`constant`, `table`…).",
        "secret_ref": "Name of a secret in the OS keyring; the secret itself is never stored "
        "in the EA.",
    },
    "SequenceStep": {
        "kind": "The step (see *Sequence steps*).",
        "enabled": "Run this step; disabled steps are skipped.",
        "params": "Step parameters; missing keys take the defaults in *Sequence steps*.",
    },
    "MemoryRegion": {
        "name": "Label of the region.",
        "start": "First address.",
        "length": "Size in bytes.",
        "erase_sector_bytes": "Erase granularity; erase ranges are rounded out to sectors.",
    },
    "DidDefinition": {
        "did": "The data identifier (ReadDataByIdentifier 0x22).",
        "name": "Label shown in the trace and the records.",
        "codec": "How to show the value: `ascii`, `hex` or `uint`.",
        "length": "Expected length in bytes; none = whatever the ECU sends.",
    },
    "Precondition": {
        "name": "Label shown to the operator (e.g. `Supply voltage`).",
        "did": "DID to read.",
        "length": "Bytes of the DID used (big-endian unsigned).",
        "scale": "Physical value = raw × scale + offset.",
        "offset": "Added after scaling.",
        "unit": "Unit shown with the value.",
        "minimum": "Lowest acceptable value; none = no lower limit.",
        "maximum": "Highest acceptable value; none = no upper limit.",
        "skippable": "When the application cannot be asked, skip the check instead of failing "
        "the flash (needs `skip_reason`).",
        "skip_reason": "Why skipping is safe; shown in the record and the Flash panel.",
    },
    "RoutinePrecondition": {
        "name": "Label shown to the operator.",
        "routine_id": "RoutineControl identifier (31 01 <id>).",
        "record": "Option record bytes sent with the routine; empty = none.",
        "expected_status": "First status byte of a passing answer; none = any positive answer.",
        "skippable": "When the application cannot be asked, skip instead of failing the flash "
        "(needs `skip_reason`).",
        "skip_reason": "Why skipping is safe; shown in the record and the Flash panel.",
    },
    "ProtectedRange": {
        "name": "Label (e.g. `bootloader`).",
        "start": "First address.",
        "length": "Size in bytes; inside a region it must sit on erase-sector boundaries.",
    },
    "EcuTiming": {
        "reset_time_ms": "Silence after the ECUReset answer before the tester probes the "
        "application, ms.",
        "application_start_timeout_s": "How long the application may take to answer after "
        "that silence, s.",
        "bootloader_ready_timeout_ms": "How long the bootloader may take to answer after the "
        "entry frame and `bootloader_entry_delay_ms`, ms.",
        "erase_ms_per_kib": "Erase time per KiB (estimate), ms.",
        "erase_ms_per_sector": "Erase time per erase sector (estimate), ms; added to the "
        "per-KiB time.",
        "programming_ms_per_kib": "Programming time per KiB of TransferData (estimate), ms.",
        "ecu_max_block_length": "The ECU's maxNumberOfBlockLength when known; none = a common "
        "value for the estimate.",
        "ecu_stmin_ms": "The STmin the ECU asks for in its flow controls, when known, ms.",
        "ecu_block_size": "The block size the ECU offers in its flow controls, when known.",
    },
    "HealthChecks": {
        "check_version": "After the reset, read the software version and compare it with the "
        "flashed version.",
        "version_did": "DID that holds the software version.",
        "check_no_active_dtcs": "Fail when the ECU reports DTCs matching the status mask.",
        "dtc_status_mask": "ReadDTCInformation status mask (0x09 = testFailed + confirmedDTC).",
        "check_heartbeat": "Require the heartbeat (`connection.heartbeat_id`) after the reset.",
        "heartbeat_within_s": "How long to wait for the heartbeat, s.",
    },
    "Machine": {
        "serial": "Serial number that identifies the machine.",
        "ea_name": "The EA (machine type) the machine is assigned to; none = unassigned.",
        "name": "Display name.",
        "installed": "Installed software version per ECU name (none = unknown).",
        "history": "Every version change, newest last.",
    },
    "VersionChange": {
        "ecu": "ECU name.",
        "version": "Version installed from then on (none = unknown).",
        "at": "When (ISO 8601 UTC).",
        "source": "What changed it (e.g. `update request 12`, `manual`).",
    },
}

#: Integer fields shown in hex (CAN IDs, DIDs, UDS parameter bytes).
HEX_FIELDS = {
    "functional_id",
    "padding_byte",
    "default_session",
    "extended_session",
    "programming_session",
    "address_and_length_format",
    "data_format",
    "version_did",
    "dtc_status_mask",
    "seed_subfunction",
    "erase_sector_bytes",
    "expected_status",
    "functional_target_address",
    # sequence step parameters
    "session",
    "setting_type",
    "control_type",
    "communication_type",
    "level",
    "reset_type",
}

STEP_MEANINGS: dict[str, str] = {
    "extended_session": "10 03: DiagnosticSessionControl to the extended session.",
    "dtc_off": "85 02: ControlDTCSetting off, so the update does not store DTCs.",
    "comm_control_off": "28 03 01: CommunicationControl, disable normal messages "
    "(functional by default).",
    "security_level_1": "27 01 / 27 02: SecurityAccess, first level.",
    "programming_session": "10 02: DiagnosticSessionControl to the programming session.",
    "security_level_2": "27 03 / 27 04: SecurityAccess, programming level.",
    "fingerprint": "2E F1 5A: write the repair-shop fingerprint (date + tester name, text or "
    "raw bytes), padded/truncated to `length`.",
    "erase": "31 01 FF 00: erase routine, as the ECU's `erase_policy` says (default: once per "
    "memory region).",
    "request_download": "34: RequestDownload per segment.",
    "transfer_data": "36: TransferData blocks; a block is retried up to `max_retries` times.",
    "transfer_exit": "37: RequestTransferExit per segment.",
    "check": "31 01 FF 01: check routine (checksum over the written data).",
    "reset": "11 01: ECUReset (hard reset).",
    "read_version": "22 F1 95: read the new software version once the application answers "
    "(within `timing.application_start_timeout_s` after the reset).",
}


def step_param_text(param: ea.StepParam) -> str:
    """One step parameter from `ea.STEP_PARAMS`: key = default (type/range): meaning."""
    if param.choices:
        allowed = ", ".join(f"`{c}`" for c in param.choices)
    elif param.type in ("byte", "word"):
        allowed = "0x00…0xFF" if param.type == "byte" else "0x0000…0xFFFF"
    elif param.low is not None and param.high is not None:
        allowed = f"{param.low:g}…{param.high:g}"
    else:
        allowed = {"bool": "true/false", "text": "text"}.get(param.type, param.type)
    default = format_default(param.key, param.default)
    return f"`{param.key}` = {default} ({allowed}): {param.meaning}"


def format_default(name: str, value: Any) -> str:
    """A default value as the manual shows it (hex for IDs and UDS bytes)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, int) and (name in HEX_FIELDS or name.endswith("_id") or name == "did"):
        return f"0x{value:02X}"
    if isinstance(value, int):
        return f"{value:_}".replace("_", " ")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bytes):
        return "empty" if not value else value.hex(" ").upper()
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    if isinstance(value, dict):
        return "empty" if not value else ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return _describe_list(value)
    if dataclasses.is_dataclass(value):
        return "all defaults"
    return repr(value)


def _describe_list(items: list[Any]) -> str:
    if not items:
        return "empty"
    first = items[0]
    if isinstance(first, ea.SecurityLevel):
        return ", ".join(f"{s.name} (0x{s.seed_subfunction:02X})" for s in items)
    if isinstance(first, ea.SequenceStep):
        return f"the {len(items)} default steps, all enabled"
    if isinstance(first, ea.MemoryRegion):
        return ", ".join(f"{r.name} 0x{r.start:X} + 0x{r.length:X}" for r in items)
    if isinstance(first, ea.DidDefinition):
        return ", ".join(f"0x{d.did:X} {d.name}" for d in items)
    if isinstance(first, str):
        return ", ".join(f"`{x}`" for x in items)
    return f"{len(items)} entries"


def _field_default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return format_default(f.name, f.default)
    if f.default_factory is not dataclasses.MISSING:
        return format_default(f.name, f.default_factory())
    return "required"


def generate() -> str:
    """The EA reference block (Markdown, without the markers)."""
    out: list[str] = []
    for cls, where, summary in CLASSES:
        meanings = MEANINGS[cls.__name__]
        out.append(f"#### {cls.__name__} — {where}")
        out.append("")
        out.append(summary)
        out.append("")
        out.append("| field | default | meaning |")
        out.append("|---|---|---|")
        for f in dataclasses.fields(cls):
            meaning = meanings.get(f.name)
            if meaning is None:
                raise KeyError(
                    f"docs/tools/ea_reference.py: no meaning for {cls.__name__}.{f.name}"
                )
            out.append(f"| `{f.name}` | {_field_default(f)} | {meaning} |")
        out.append("")
    out.append("#### Sequence steps — `uds.sequence[].kind` and their `params`")
    out.append("")
    out.append("The default sequence runs every step below in this order.")
    out.append("")
    out.append("| step | what it sends | parameters (default) |")
    out.append("|---|---|---|")
    for kind in ea.StepKind:
        # the one parameter schema of the step (engine defaults, validator, JSON schema, panel)
        shown = "<br>".join(step_param_text(p) for p in ea.STEP_PARAMS[kind]) or "—"
        out.append(f"| `{kind.value}` | {STEP_MEANINGS[kind.value]} | {shown} |")
    out.append("")
    return "\n".join(out)


def embedded(text: str) -> str:
    """The block between the markers of a manual's text ("" when the markers are missing)."""
    if START not in text or END not in text:
        return ""
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def write(path: Path = MANUAL) -> bool:
    """Replace the block in the manual; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    new = f"{head}{START}\n{generate()}\n{END}{tail}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: print the block, or `--write` it into the manual."""
    parser = argparse.ArgumentParser(description="EA reference for docs/USER_MANUAL.md")
    parser.add_argument("--write", action="store_true", help="update docs/USER_MANUAL.md")
    args = parser.parse_args(argv)
    if args.write:
        changed = write()
        sys.stderr.write(f"{MANUAL}: {'updated' if changed else 'already up to date'}\n")
    else:
        sys.stdout.write(generate() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
