"""The UDS flash job: `flash_ecu(session, image, report, cancel) -> FlashResult`.

Runs the EA's reprogramming sequence (UdsProfile.sequence; steps per core/ea.py) against one
ECU on a shared bus + notifier: preconditions on the application IDs (before anything is
erased), the optional bootloader entry frame + delay, sessions, DTC off, communication control
(functional), security access per level through the seed/key registry, fingerprint, then per
image segment erase → RequestDownload → TransferData (counter from 1, wrapping 0xFF → 0x00,
timed-out blocks re-sent with the same counter) → RequestTransferExit, the check routine with
the EA's checksum, reset, and the software version read on the application IDs. TesterPresent
runs on its own thread for the whole job (also during 0x78). Every request/response, step and
the bus log go to the job's `FlashRecord`.

Tx frames reach the notifier's listeners (the live trace, the job's BLF bus log) exactly once:
by the bus's echo when `FlashSession.tx_echo` (receive_own_messages), else through
`FlashSession.tx_fanout` (the engine's fan-out to the listeners); without either (a bare bus in
a test or script) the bus log takes them from the links' Tx tap.

A plain function, unit-testable without Qt; it runs on the engine worker thread of the bus.
Failures never raise out of `flash_ecu`: they end in a `FlashResult` with `ok=False` and the
error, so a record is always produced; a failed or cancelled job leaves the ECU in its bootloader
(nothing in the sequence can touch the bootloader region) and can be re-run from the start.
"""

from __future__ import annotations

import datetime as _dt
import functools
import getpass
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import can

from fota_studio.core.ea import (
    ERASE_RECORD_FORMATS,
    DidDefinition,
    EcuDefinition,
    IsoTpAddress,
    SequenceStep,
    StepKind,
)
from fota_studio.core.errors import (
    CancelledError,
    ConfigurationError,
    FotaError,
    PreconditionError,
    SecurityAccessError,
    TransferError,
    UdsNegativeResponseError,
    VerificationError,
)
from fota_studio.core.events import (
    EcuBusy,
    EngineEvent,
    LogLevel,
    LogLine,
    StepFinished,
    StepStarted,
)
from fota_studio.core.flash_record import (
    RESULT_CANCELLED,
    RESULT_FAILED,
    RESULT_SUCCESS,
    ExchangeRecord,
    FlashRecord,
    SegmentRecord,
    StepRecord,
)
from fota_studio.core.nrc import nrc_name
from fota_studio.engine.cancel import CancelToken
from fota_studio.engine.progress import ProgressReporter
from fota_studio.engine.seedkey import SeedKeyRegistry
from fota_studio.protocols.isotp_link import ADAPTER_ERROR_HINT, AdapterSendError, IsoTpLink
from fota_studio.protocols.uds_link import (
    Exchange,
    TesterPresentKeeper,
    UdsLink,
    decode_did,
)

log = logging.getLogger(__name__)

#: Steps that repeat per image segment (domain file: steps 8-11).
SEGMENT_STEPS = (
    StepKind.ERASE,
    StepKind.REQUEST_DOWNLOAD,
    StepKind.TRANSFER_DATA,
    StepKind.TRANSFER_EXIT,
)
PRECONDITIONS_STEP = "preconditions"
BOOTLOADER_ENTRY_STEP = "bootloader_entry"
#: How often the application is polled after the reset while waiting boot_wait_s.
APP_POLL_INTERVAL_S = 0.05
#: ISO-TP message limit on classic CAN (ISO 15765-2 FF_DL ≤ 4095 without escape).
CLASSIC_MAX_ISOTP_BYTES = 4095
#: TransferData header: SID 0x36 + block sequence counter.
TRANSFER_HEADER_BYTES = 2
#: The channel number frames carry in the job's BLF bus log.
BUSLOG_CHANNEL = 1


class SegmentLike(Protocol):
    """One contiguous block of an image (core/firmware.py Segment)."""

    @property
    def address(self) -> int:
        """Start address."""
        ...

    @property
    def data(self) -> bytes:
        """The bytes."""
        ...


class ImageLike(Protocol):
    """What the job needs of a firmware image (core/firmware.py FirmwareImage)."""

    @property
    def segments(self) -> Sequence[SegmentLike]:
        """Segments in address order."""
        ...

    def sha256(self) -> str:
        """SHA-256 hex of the image data."""
        ...

    def crc32(self) -> int:
        """CRC32 of the segments' data concatenated in address order."""
        ...


@dataclass(frozen=True)
class SimpleSegment:
    """A plain segment (tests, raw binaries)."""

    address: int
    data: bytes


@dataclass
class FlashSession:
    """Everything a flash job needs besides the image: the ECU, the bus and who flashes."""

    ecu: EcuDefinition
    bus: can.BusABC
    notifier: can.Notifier
    job_id: int = 0
    machine: str = ""
    version: str = ""
    expected_version: str | None = None
    tester: str = field(default_factory=lambda: _user_name())
    interface: str = ""
    channel: str = ""
    seedkey: SeedKeyRegistry | None = None
    buslog_path: Path | None = None
    #: Override the EA's boot wait (tests); None = READ_VERSION step param boot_wait_s.
    boot_wait_s: float | None = None
    #: The bus echoes every frame we send to the notifier's listeners with is_rx=False
    #: (opened with receive_own_messages=True on an interface that supports it).
    tx_echo: bool = False
    #: Called with every frame the job sends; must hand it to the notifier's listeners (the
    #: engine's `notifier_fanout`) — for buses that do not echo. None: nobody else needs Tx.
    tx_fanout: Callable[[can.Message], None] | None = None


@dataclass
class FlashResult:
    """The outcome of a flash job: `ok` only when flashed AND verified."""

    ok: bool
    record: FlashRecord
    error: FotaError | None = None
    version_after: str = ""
    buslog_path: Path | None = None

    @property
    def cancelled(self) -> bool:
        """True when the job stopped because it was cancelled."""
        return isinstance(self.error, CancelledError)


Report = Callable[[EngineEvent], None]


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "unknown"


def segment_blocks(data_len: int, max_block_length: int, fd: bool) -> int:
    """Number of TransferData blocks for `data_len` bytes with this maxNumberOfBlockLength."""
    payload = block_payload_size(max_block_length, fd)
    return (data_len + payload - 1) // payload if data_len else 0


def block_payload_size(max_block_length: int, fd: bool) -> int:
    """Data bytes per TransferData block: the ECU's maxNumberOfBlockLength minus SID+counter.

    maxNumberOfBlockLength includes the 0x36 SID and the counter (ISO 14229-1 §14.2.5.2); on
    classic CAN an ISO-TP message is also limited to 4095 bytes.
    """
    limit = max_block_length
    if not fd:
        limit = min(limit, CLASSIC_MAX_ISOTP_BYTES)
    payload = limit - TRANSFER_HEADER_BYTES
    if payload < 1:
        raise TransferError(
            f"ECU's maxNumberOfBlockLength {max_block_length} leaves no room for data",
            step=StepKind.REQUEST_DOWNLOAD.value,
            hint="the ECU's RequestDownload response is malformed",
        )
    return payload


def _crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    import binascii

    return binascii.crc_hqx(data, crc)


def checksum_bytes(kind: str, image: ImageLike) -> bytes:
    """The check routine's checksum record for `kind` (see core/ea.py CHECKSUM_KINDS)."""
    if kind == "crc32":
        return (image.crc32() & 0xFFFFFFFF).to_bytes(4, "big")
    if kind == "crc16_ccitt":
        crc = 0xFFFF
        for seg in image.segments:
            crc = _crc16_ccitt(bytes(seg.data), crc)
        return crc.to_bytes(2, "big")
    if kind == "sha256":
        return bytes.fromhex(image.sha256())
    if kind == "none":
        return b""
    raise ConfigurationError(f'unknown checksum kind "{kind}" in the check step')


def _encode_address_length(alfid: int, address: int, length: int) -> bytes:
    """addressAndLengthFormatIdentifier + memoryAddress + memorySize (ISO 14229-1 §14.2.2)."""
    addr_len = alfid & 0x0F
    size_len = (alfid >> 4) & 0x0F
    if addr_len == 0 or size_len == 0:
        raise ConfigurationError(f"addressAndLengthFormatIdentifier 0x{alfid:02X} is invalid")
    if address >= 1 << (8 * addr_len) or length >= 1 << (8 * size_len):
        raise ConfigurationError(
            f"address 0x{address:X}/length {length} do not fit ALFID 0x{alfid:02X}",
            hint="raise address_and_length_format in the EA UDS profile",
        )
    return address.to_bytes(addr_len, "big") + length.to_bytes(size_len, "big")


class _Job:
    """State of one running flash (links, record, progress); private to `flash_ecu`."""

    def __init__(
        self, session: FlashSession, image: ImageLike, report: Report, cancel: CancelToken
    ) -> None:
        self.s = session
        self.image = image
        self.report = report
        self.cancel = cancel
        self.ecu = session.ecu
        self.conn = session.ecu.connection
        self.profile = session.ecu.uds
        self.seedkey = session.seedkey or SeedKeyRegistry()
        total = sum(len(seg.data) for seg in image.segments)
        self.record = FlashRecord(
            ecu=self.ecu.name,
            machine=session.machine,
            version=session.version,
            expected_version=session.expected_version or "",
            image_sha256=image.sha256(),
            image_crc32=image.crc32() & 0xFFFFFFFF,
            bytes_total=total,
            started_at=time.time(),
            tester=session.tester,
            interface=session.interface,
            channel=session.channel or self.conn.channel,
        )
        self.progress = ProgressReporter(session.job_id, total, report)
        self._links: dict[tuple[int, int], UdsLink] = {}
        self.keeper = TesterPresentKeeper(
            self.ecu.name, self.profile.tester_present_period_ms / 1000.0
        )
        self.current: UdsLink | None = None
        self.busy_count = 0
        self.step_name = ""
        self.buslog: _BusLog | None = None
        self.app_reachable = True
        self._erased_until = 0

    # -- plumbing -------------------------------------------------------------------------

    def log(self, level: LogLevel, text: str) -> None:
        getattr(log, level if level != "warning" else "warning")("%s: %s", self.ecu.name, text)
        self.report(LogLine(self.s.job_id, level, text))

    def _on_busy(self, step: str) -> None:
        self.busy_count += 1
        self.record.pending_responses += 1
        self.report(EcuBusy(self.s.job_id, step, self.busy_count))

    def _on_exchange(self, ex: Exchange) -> None:
        self.record.exchanges.append(
            ExchangeRecord(
                step=ex.step,
                request_hex=ex.request[:16].hex(),
                request_len=len(ex.request),
                response_hex=None if ex.response is None else ex.response[:64].hex(),
                t_request=ex.t_request,
                t_response=ex.t_response,
                pending_count=ex.pending_count,
                nrc=ex.nrc,
                nrc_name=nrc_name(ex.nrc) if ex.nrc is not None else "",
            )
        )

    def link(self, ids: IsoTpAddress) -> UdsLink:
        key = (ids.request_id, ids.response_id)
        uds = self._links.get(key)
        if uds is None:
            tap = self.s.tx_fanout
            if tap is None and not self.s.tx_echo and self.buslog is not None:
                tap = self.buslog.on_tx  # nobody else delivers our frames to the bus log
            iso = IsoTpLink(
                self.s.bus,
                self.s.notifier,
                self.conn,
                ids,
                tx_tap=tap,
                name=f"{self.ecu.name}@0x{ids.request_id:X}",
            )
            uds = UdsLink(iso, self.profile, on_busy=self._on_busy, on_exchange=self._on_exchange)
            uds.open()
            self._links[key] = uds
        return uds

    def use(self, ids: IsoTpAddress) -> UdsLink:
        uds = self.link(ids)
        # Only the link in use keeps its ISO-TP threads running: an idle stack still wakes up
        # for every frame on the shared notifier and competes for the GIL during a transfer.
        for other in self._links.values():
            if other is not uds:
                other.close()
        uds.open()
        self.current = uds
        self.keeper.set_link(uds)
        return uds

    def close(self) -> None:
        self.keeper.stop()
        for uds in self._links.values():
            uds.close()
        self._links.clear()

    def step_start(self, step: str, detail: str = "") -> StepRecord:
        self.cancel.check(f"before {step}")
        self.step_name = step
        rec = StepRecord(step=step, started_at=time.time(), detail=detail)
        self.record.steps.append(rec)
        self.report(StepStarted(self.s.job_id, step, detail))
        return rec

    def step_ok(self, rec: StepRecord, detail: str = "") -> None:
        rec.finished_at = time.time()
        rec.ok = True
        if detail:
            rec.detail = detail
        self.report(StepFinished(self.s.job_id, rec.step, True, rec.detail))

    def step_failed(self, rec: StepRecord, exc: BaseException) -> None:
        rec.finished_at = time.time()
        rec.ok = False
        rec.detail = str(exc)
        if isinstance(exc, UdsNegativeResponseError):
            rec.nrc, rec.nrc_name = exc.nrc, exc.nrc_name
        self.report(StepFinished(self.s.job_id, rec.step, False, str(exc), rec.nrc, rec.nrc_name))

    def run_step(self, step: str, fn: Callable[[], str | None], detail: str = "") -> None:
        rec = self.step_start(step, detail)
        try:
            out = fn()
        except BaseException as exc:
            self.step_failed(rec, exc)
            raise
        self.step_ok(rec, out or "")

    # -- the sequence ---------------------------------------------------------------------

    def run(self) -> str:
        seq = [s for s in self.profile.sequence if s.enabled]
        kinds = [s.kind for s in seq]
        if not self.image.segments:
            raise ConfigurationError("the image has no data to flash")
        self._check_regions()
        app, boot = self.conn.application, self.conn.bootloader
        entry = self.conn.bootloader_entry
        self.keeper.start()
        # Preconditions are read on the application IDs, before anything is erased.
        self.use(app)
        self.run_step(PRECONDITIONS_STEP, self._preconditions)
        if entry is not None:
            self.run_step(BOOTLOADER_ENTRY_STEP, self._bootloader_entry)
            self.use(boot)
        elif StepKind.PROGRAMMING_SESSION not in kinds:
            self.use(boot)
        segments_done = False
        version_after = ""
        for step in seq:
            kind = step.kind
            if kind in SEGMENT_STEPS:
                if not segments_done:
                    segments_done = True
                    self._segments([s for s in seq if s.kind in SEGMENT_STEPS])
                continue
            if kind == StepKind.READ_VERSION:
                self.run_step(kind.value, functools.partial(self._read_version, step))
                version_after = self.record.version_after
                continue
            self.run_step(kind.value, functools.partial(self._handler(kind), step))
        self.record.result = RESULT_SUCCESS
        return version_after

    def _handler(self, kind: StepKind) -> Callable[[SequenceStep], str | None]:
        return {
            StepKind.EXTENDED_SESSION: self._session,
            StepKind.PROGRAMMING_SESSION: self._programming_session,
            StepKind.DTC_OFF: self._dtc_off,
            StepKind.COMM_CONTROL_OFF: self._comm_control,
            StepKind.SECURITY_LEVEL_1: self._security,
            StepKind.SECURITY_LEVEL_2: self._security,
            StepKind.FINGERPRINT: self._fingerprint,
            StepKind.CHECK: self._check,
            StepKind.RESET: self._reset,
        }[kind]

    def _check_regions(self) -> None:
        regions = self.profile.memory_regions
        for seg in self.image.segments:
            end = seg.address + len(seg.data)
            if regions and not any(r.start <= seg.address and end <= r.end for r in regions):
                raise ConfigurationError(
                    f"image segment 0x{seg.address:08X}..0x{end:08X} lies outside the writable "
                    f"memory regions of {self.ecu.name}",
                    hint="check the image against the EA memory regions (wrong image for this "
                    "ECU?)",
                )

    def _uds(self) -> UdsLink:
        assert self.current is not None
        return self.current

    def _preconditions(self) -> str:
        uds = self._uds()
        parts: list[str] = []
        # Version before: also tells whether the application answers at all.
        did = self.profile.health.version_did
        try:
            raw = uds.request(PRECONDITIONS_STEP, 0x22, did.to_bytes(2, "big"))
            assert raw is not None
            self.record.version_before = decode_did(self._did_def(did), raw[3:])
            parts.append(f"installed {self.record.version_before}")
        except TransferError:
            self.app_reachable = False
        except UdsNegativeResponseError as exc:
            if exc.nrc in (0x11, 0x31, 0x7F):
                # Something answered but does not know the DID: a bootloader on shared IDs.
                self.app_reachable = False
            else:
                self.log("warning", f"cannot read the installed version: {exc}")
        if not self.app_reachable:
            if self.profile.preconditions:
                self.log(
                    "warning",
                    "the application does not answer (ECU already in its bootloader?): "
                    "preconditions cannot be read and are skipped",
                )
            return "application not answering; preconditions skipped"
        for pre in self.profile.preconditions:
            raw = uds.request(PRECONDITIONS_STEP, 0x22, pre.did.to_bytes(2, "big"))
            assert raw is not None
            ok, value = pre.evaluate(raw[3:])
            text = f"{pre.name} = {value:g} {pre.unit}".rstrip()
            if not ok:
                limits = f"[{pre.minimum if pre.minimum is not None else '-∞'} … "
                limits += f"{pre.maximum if pre.maximum is not None else '∞'}] {pre.unit}"
                raise PreconditionError(
                    f"{PRECONDITIONS_STEP}: {text} is outside {limits.rstrip()}",
                    hint="make the machine safe (stationary, engine off, supply in range) and "
                    "run the flash again; nothing was erased",
                )
            parts.append(text)
        return "; ".join(parts)

    def _did_def(self, did: int) -> DidDefinition | None:
        for d in self.profile.dids:
            if d.did == did:
                return d
        return None

    def _bootloader_entry(self) -> str:
        entry = self.conn.bootloader_entry
        assert entry is not None
        frame = can.Message(
            arbitration_id=entry.can_id,
            data=entry.data,
            is_extended_id=entry.extended_id or entry.can_id > 0x7FF,
            is_fd=self.conn.fd and len(entry.data) > 8,
            bitrate_switch=self.conn.fd and len(entry.data) > 8,
            is_rx=False,
        )
        self._uds().link.send_raw(frame)
        delay_s = self.conn.bootloader_entry_delay_ms / 1000.0
        if self.cancel.wait(delay_s):
            self.cancel.check(BOOTLOADER_ENTRY_STEP)
        return f"0x{entry.can_id:X} {entry.data.hex(' ').upper()}, waited {delay_s:g} s"

    def _session(self, step: SequenceStep) -> str:
        session = int(step.param("session"))
        try:
            self._request_with_boot_fallback(step.kind.value, 0x10, session)
        except UdsNegativeResponseError as exc:
            # A previous, interrupted job may have left the bootloader in its programming
            # session, from which strict bootloaders refuse 10 03 (0x22). Going through the
            # default session (still the bootloader) makes the re-run start from scratch.
            if exc.nrc not in (0x22, 0x7E) or self.current is self._app_link():
                raise
            self.log("info", f"{exc.nrc_name} to 10 {session:02X}: via the default session")
            self._uds().request(step.kind.value, 0x10, subfunction=self.profile.default_session)
            self._uds().request(step.kind.value, 0x10, subfunction=session)
            return f"session 0x{session:02X} (via default session)"
        return f"session 0x{session:02X}"

    def _app_link(self) -> UdsLink | None:
        app = self.conn.application
        if app.request_id == self.conn.bootloader.request_id:
            return None
        return self._links.get((app.request_id, app.response_id))

    def _request_with_boot_fallback(self, name: str, sid: int, sub: int) -> bytes | None:
        """First talk of the sequence: if the app IDs are silent, the ECU may be in boot."""
        uds = self._uds()
        boot = self.conn.bootloader
        on_app = uds is self._links.get(
            (self.conn.application.request_id, self.conn.application.response_id)
        )
        same = boot.request_id == self.conn.application.request_id
        try:
            return uds.request(name, sid, subfunction=sub)
        except TransferError:
            if not on_app or same or self.app_reachable:
                raise
            self.log("info", "application IDs silent; continuing on the bootloader IDs")
            return self.use(boot).request(name, sid, subfunction=sub)

    def _programming_session(self, step: SequenceStep) -> str:
        session = int(step.param("session"))
        self._request_with_boot_fallback(step.kind.value, 0x10, session)
        # Without an entry frame the ECU jumps to its bootloader on 10 02 (domain file).
        self.use(self.conn.bootloader)
        return f"session 0x{session:02X}"

    def _dtc_off(self, step: SequenceStep) -> str:
        setting = int(step.param("setting_type"))
        suppress = bool(step.param("suppress_response"))
        self._uds().request(step.kind.value, 0x85, subfunction=setting, suppress_response=suppress)
        return f"DTC setting 0x{setting:02X}"

    def _comm_control(self, step: SequenceStep) -> str:
        ctrl = int(step.param("control_type"))
        comm = int(step.param("communication_type"))
        suppress = bool(step.param("suppress_response"))
        name = step.kind.value
        if bool(step.param("functional")):
            sub = ctrl | (0x80 if suppress else 0)
            self._uds().functional_request(
                name, bytes([0x28, sub, comm]), suppress_response=suppress
            )
            return f"functional 0x{self.conn.functional_id:X}"
        self._uds().request(name, 0x28, bytes([comm]), subfunction=ctrl, suppress_response=suppress)
        return "physical"

    def _security(self, step: SequenceStep) -> str:
        seed_sub = int(step.param("level"))
        level = self.profile.security_level(seed_sub)
        if level is None:
            raise SecurityAccessError(
                f"{step.kind.value}: the EA defines no security level with requestSeed "
                f"0x{seed_sub:02X}",
                hint="add the level to the UDS profile or change the step's level",
            )
        uds = self._uds()
        resp = uds.request(step.kind.value, 0x27, subfunction=seed_sub)
        assert resp is not None
        seed = resp[2:]
        if not seed:
            raise TransferError("the ECU sent an empty seed", step=step.kind.value)
        if not any(seed):
            return f"level 0x{seed_sub:02X} already unlocked"
        key = self.seedkey.compute_key(seed, level, self.ecu.name)
        uds.request(step.kind.value, 0x27, key, subfunction=level.key_subfunction)
        return f"level 0x{seed_sub:02X} unlocked ({len(seed)}-byte seed)"

    def _fingerprint(self, step: SequenceStep) -> str:
        did = int(step.param("did"))
        fmt = str(step.param("format"))
        if fmt == "raw":
            data = bytes.fromhex(str(step.params.get("data", "")))
        else:
            today = _dt.date.today()
            bcd = bytes(int(f"{v:02d}", 16) for v in (today.year % 100, today.month, today.day))
            data = bcd + self.s.tester.encode("ascii", "replace")[:16].ljust(16, b" ")
        self._uds().request(step.kind.value, 0x2E, did.to_bytes(2, "big") + data)
        return f"DID 0x{did:04X} ({len(data)} bytes)"

    # -- per segment ----------------------------------------------------------------------

    def _segments(self, steps: list[SequenceStep]) -> None:
        by_kind = {s.kind: s for s in steps}
        segs = list(self.image.segments)
        sent = 0
        self.progress.update(0, "starting transfer")
        for index, seg in enumerate(segs):
            data = bytes(seg.data)
            where = f"segment {index + 1}/{len(segs)} 0x{seg.address:08X} +0x{len(data):X}"
            srec = SegmentRecord(address=seg.address, length=len(data))
            self.record.segments.append(srec)
            erase = by_kind.get(StepKind.ERASE)
            if erase is not None:
                erase_fn = functools.partial(self._erase, erase, seg, index)
                self.run_step(StepKind.ERASE.value, erase_fn, where)
            max_len = 0
            if StepKind.REQUEST_DOWNLOAD in by_kind:
                rec = self.step_start(StepKind.REQUEST_DOWNLOAD.value, where)
                try:
                    max_len = self._request_download(seg.address, len(data))
                except BaseException as exc:
                    self.step_failed(rec, exc)
                    raise
                self.step_ok(rec, f"{where}, maxNumberOfBlockLength {max_len}")
                srec.max_block_length = max_len
            td = by_kind.get(StepKind.TRANSFER_DATA)
            if td is not None:
                if max_len == 0:
                    raise ConfigurationError(
                        "transfer_data needs request_download enabled in the EA sequence"
                    )
                rec = self.step_start(StepKind.TRANSFER_DATA.value, where)
                try:
                    srec.blocks = self._transfer(td, data, max_len, sent)
                except BaseException as exc:
                    self.step_failed(rec, exc)
                    raise
                sent += len(data)
                self.step_ok(rec, f"{where}, {srec.blocks} blocks")
            if StepKind.TRANSFER_EXIT in by_kind:
                self.run_step(
                    StepKind.TRANSFER_EXIT.value,
                    lambda: self._simple(StepKind.TRANSFER_EXIT.value, 0x37),
                    where,
                )

    def _simple(self, step: str, sid: int) -> str:
        self._uds().request(step, sid)
        return ""

    def _erase_range(self, seg: SegmentLike) -> tuple[int, int]:
        """The part of `seg` to erase: sectors an earlier segment's erase did not cover.

        An erase wipes whole sectors (MemoryRegion.erase_sector_bytes); when two segments of a
        HEX file share a sector, erasing for the second would wipe data just written for the
        first, so the range starts after the sectors already erased in this job.
        """
        start, end = seg.address, seg.address + len(seg.data)
        start = max(start, self._erased_until)
        sector = 0
        for region in self.profile.memory_regions:
            if region.start <= seg.address < region.end:
                sector = region.erase_sector_bytes
        if sector > 0:
            self._erased_until = max(self._erased_until, -(-end // sector) * sector)
        else:
            self._erased_until = max(self._erased_until, end)
        return start, max(0, end - start)

    def _erase(self, step: SequenceStep, seg: SegmentLike, index: int) -> str:
        routine = int(step.param("routine_id"))
        fmt = str(step.param("record"))
        if fmt not in ERASE_RECORD_FORMATS:
            raise ConfigurationError(f'unknown erase record format "{fmt}"')
        record = b""
        alfid = self.profile.address_and_length_format
        if fmt == "address_length":
            address, length = self._erase_range(seg)
            if length == 0:
                return "sectors already erased with the previous segment"
            record = bytes([alfid]) + _encode_address_length(alfid, address, length)
        elif fmt == "segment_index":
            record = bytes([index])
        resp = self._uds().request(
            step.kind.value, 0x31, routine.to_bytes(2, "big") + record, subfunction=0x01
        )
        self._routine_status(step.kind.value, resp, "erase")
        return ""

    def _routine_status(self, step: str, resp: bytes | None, what: str) -> None:
        # 71 01 <rid hi> <rid lo> [status]: status 00 = done/OK (our ECUs' convention).
        if resp is not None and len(resp) > 4 and resp[4] != 0x00:
            raise VerificationError(
                f"{step}: the ECU's {what} routine reported status 0x{resp[4]:02X} (failed)",
                hint="the ECU stays in its bootloader; run the flash again; if it persists "
                "check the image and the ECU",
            )

    def _request_download(self, address: int, length: int) -> int:
        alfid = self.profile.address_and_length_format
        data = bytes([self.profile.data_format, alfid])
        data += _encode_address_length(alfid, address, length)
        resp = self._uds().request(StepKind.REQUEST_DOWNLOAD.value, 0x34, data)
        assert resp is not None
        if len(resp) < 3:
            raise TransferError(
                f"RequestDownload response {resp.hex(' ')} is too short",
                step=StepKind.REQUEST_DOWNLOAD.value,
            )
        n = (resp[1] >> 4) & 0x0F
        if n == 0 or len(resp) < 2 + n:
            raise TransferError(
                f"RequestDownload response {resp.hex(' ')} has a bad lengthFormatIdentifier",
                step=StepKind.REQUEST_DOWNLOAD.value,
            )
        return int.from_bytes(resp[2 : 2 + n], "big")

    def _transfer(self, step: SequenceStep, data: bytes, max_len: int, base: int) -> int:
        name = step.kind.value
        max_retries = int(step.param("max_retries"))
        chunk = block_payload_size(max_len, self.conn.fd)
        uds = self._uds()
        counter = 1
        blocks = 0
        view = memoryview(data)
        for offset in range(0, len(data), chunk):
            # Safe point: between blocks (never inside one).
            if self.cancel.cancelled:
                self.cancel.check(f"{name} before block {blocks + 1} (offset 0x{offset:X})")
            block = bytes(view[offset : offset + chunk])
            attempt = 0
            while True:
                try:
                    resp = uds.transfer_data(name, counter, block)
                    break
                except AdapterSendError as exc:
                    # A refused frame (bus-off) fails at once, so the retries cost nothing and
                    # ride out a transient adapter error; a bus-off stays and ends the job here.
                    if attempt >= max_retries:
                        raise AdapterSendError(
                            f"adapter error while sending TransferData block {blocks + 1} "
                            f"(counter 0x{counter:02X}, offset 0x{offset:X}, {attempt + 1} "
                            f"attempts): {exc.adapter_error}",
                            adapter_error=exc.adapter_error,
                            step=name,
                            hint=ADAPTER_ERROR_HINT,
                        ) from exc
                    attempt += 1
                    self.record.block_retries += 1
                    self.log(
                        "warning",
                        f"block counter 0x{counter:02X}: the adapter refused a frame "
                        f"({exc.adapter_error}); re-sending (attempt {attempt + 1}/"
                        f"{max_retries + 1})",
                    )
                except TransferError as exc:
                    if attempt >= max_retries:
                        raise TransferError(
                            f"block {blocks + 1} (counter 0x{counter:02X}, offset 0x{offset:X}) "
                            f"failed after {attempt + 1} attempts: {exc.message}",
                            step=name,
                            hint="the bus lost frames repeatedly; check wiring/termination and "
                            "bus load, then run the flash again",
                        ) from exc
                    attempt += 1
                    self.record.block_retries += 1
                    self.log(
                        "warning",
                        f"block counter 0x{counter:02X} timed out; re-sending "
                        f"(attempt {attempt + 1}/{max_retries + 1})",
                    )
            if resp is None or len(resp) < 2 or resp[1] != counter:
                echo = resp[1] if resp is not None and len(resp) > 1 else None
                raise TransferError(
                    f"the ECU acknowledged block counter {echo!r} instead of 0x{counter:02X}",
                    step=name,
                    hint="run the flash again from the start",
                )
            blocks += 1
            counter = (counter + 1) & 0xFF  # ISO 14229-1 §14.4: wraps 0xFF -> 0x00
            done = base + min(offset + chunk, len(data))
            self.record.bytes_sent = done
            self.progress.update(done)
        return blocks

    def _check(self, step: SequenceStep) -> str:
        routine = int(step.param("routine_id"))
        kind = str(step.param("checksum"))
        csum = checksum_bytes(kind, self.image)
        resp = self._uds().request(
            step.kind.value, 0x31, routine.to_bytes(2, "big") + csum, subfunction=0x01
        )
        self._routine_status(step.kind.value, resp, "check")
        return f"{kind} {csum.hex().upper()}" if csum else "no checksum"

    def _reset(self, step: SequenceStep) -> str:
        reset_type = int(step.param("reset_type"))
        self._uds().request(step.kind.value, 0x11, subfunction=reset_type)
        return f"reset 0x{reset_type:02X}"

    def _read_version(self, step: SequenceStep) -> str:
        did = int(step.param("did"))
        boot_wait_s = (
            float(step.param("boot_wait_s")) if self.s.boot_wait_s is None else self.s.boot_wait_s
        )
        app = self.use(self.conn.application)
        deadline = time.monotonic() + boot_wait_s
        last: FotaError | None = None
        raw: bytes | None = None
        while True:
            if self.cancel.wait(APP_POLL_INTERVAL_S):
                self.cancel.check(step.kind.value)
            try:
                raw = app.request(step.kind.value, 0x22, did.to_bytes(2, "big"))
                break
            except (TransferError, UdsNegativeResponseError) as exc:
                last = exc
                if time.monotonic() >= deadline:
                    break
        if raw is None:
            raise VerificationError(
                f"{step.kind.value}: the application did not answer DID 0x{did:04X} within "
                f"{boot_wait_s:g} s after the reset ({last})",
                hint="the new application did not start; the ECU stays in its bootloader — "
                "check the image and run the flash again",
            )
        version = decode_did(self._did_def(did), raw[3:])
        self.record.version_after = version
        expected = self.s.expected_version
        if expected and version != expected:
            raise VerificationError(
                f"{step.kind.value}: the ECU runs version {version!r}, expected {expected!r}",
                hint="the flashed image carries another version; check the repository entry",
            )
        return f"version {version}"


class _BusLog:
    """BLF bus log of the job: a listener on the shared notifier (+ the links' Tx tap when the
    bus neither echoes nor fans out Tx frames, see the module docstring)."""

    def __init__(self, path: Path, notifier: can.Notifier) -> None:
        import threading

        self.path = path
        self._notifier = notifier
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = can.BLFWriter(str(path))
        self.frames = 0
        self._closed = False
        notifier.add_listener(self.on_rx)

    def on_rx(self, msg: can.Message) -> None:
        # BLF stores numeric channels; interface channel names ("CAN1", "PCAN_USBBUS1", a
        # virtual bus name) would not fit, and the log holds one channel anyway.
        frame = can.Message(
            timestamp=msg.timestamp or time.time(),
            arbitration_id=msg.arbitration_id,
            is_extended_id=msg.is_extended_id,
            is_remote_frame=msg.is_remote_frame,
            is_error_frame=msg.is_error_frame,
            is_fd=msg.is_fd,
            bitrate_switch=msg.bitrate_switch,
            error_state_indicator=msg.error_state_indicator,
            dlc=msg.dlc,
            data=msg.data,
            is_rx=msg.is_rx,
            channel=BUSLOG_CHANNEL,
            check=False,
        )
        with self._lock:
            if not self._closed:
                self._writer.on_message_received(frame)
                self.frames += 1

    def on_tx(self, msg: can.Message) -> None:
        msg.is_rx = False
        self.on_rx(msg)

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(ValueError):
            self._notifier.remove_listener(self.on_rx)
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.stop()


def flash_ecu(
    session: FlashSession,
    image: ImageLike,
    report: Report | None = None,
    cancel: CancelToken | None = None,
) -> FlashResult:
    """Flash `image` into `session.ecu` and verify it; never raises for job failures."""
    sink: Report = report or (lambda _e: None)
    token = cancel or CancelToken()
    job = _Job(session, image, sink, token)
    error: FotaError | None = None
    version_after = ""
    if session.buslog_path is not None:
        job.buslog = _BusLog(session.buslog_path, session.notifier)
    try:
        version_after = job.run()
    except FotaError as exc:
        error = exc
    except Exception as exc:  # never a false success, never an unrecorded failure
        log.exception("flash job crashed")
        error = FotaError(
            f"{job.step_name or 'flash'}: internal error {type(exc).__name__}: {exc}",
            hint="this is a FOTA Studio bug; the ECU stays in its bootloader — run the flash "
            "again and report the log",
        )
    finally:
        job.close()
        if job.buslog is not None:
            job.buslog.close()
            job.record.buslog_frames = job.buslog.frames
    rec = job.record
    rec.finished_at = time.time()
    if error is not None:
        rec.result = RESULT_CANCELLED if isinstance(error, CancelledError) else RESULT_FAILED
        rec.error = str(error)
        rec.failed_step = job.step_name
        if isinstance(error, UdsNegativeResponseError):
            rec.nrc, rec.nrc_name = error.nrc, error.nrc_name
        job.log("error" if rec.result == RESULT_FAILED else "warning", str(error))
    else:
        job.progress.update(rec.bytes_total, "done", force=True)
    return FlashResult(
        ok=error is None and rec.result == RESULT_SUCCESS,
        record=rec,
        error=error,
        version_after=version_after,
        buslog_path=session.buslog_path,
    )


def image_crc32(segments: Sequence[SegmentLike]) -> int:
    """CRC32 of the segments' data concatenated in address order (helper for tests)."""
    crc = 0
    for seg in sorted(segments, key=lambda s: s.address):
        crc = zlib.crc32(bytes(seg.data), crc)
    return crc & 0xFFFFFFFF
