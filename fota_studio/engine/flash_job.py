"""The UDS flash job: `flash_ecu(session, image, report, cancel) -> FlashResult`.

Runs the EA's reprogramming sequence (UdsProfile.sequence; steps per core/ea.py) against one
ECU on a shared bus + notifier:

1. `preconditions` on the application IDs, before anything is sent to the bootloader: the
   installed version, the DID preconditions and the "check programming preconditions" routines
   (31 01 <id>). When the application is silent but the bootloader answers on its own IDs (a
   re-run after a failed flash), they are asked there. A precondition nobody can be asked fails
   the flash (`PreconditionError`) unless the EA marks it skippable with a reason.
2. `bootloader_entry`: the entry frame, then silence for `bootloader_entry_delay_ms` (the
   documented time the ECU needs to reboot into its bootloader); `bootloader_ready`: `3E 00`
   probes, one at a time and no faster than P2, until the bootloader answers (within
   `timing.bootloader_ready_timeout_ms`). Skipped when the ECU already runs its bootloader.
3. `clean_start`: `10 01` is sent unless the active-session DID (`UdsProfile.active_session_did`,
   when the EA names one) says the ECU is already in its default session, so a re-run inside S3
   starts from the default session (no 0x22 to the next 10 03).
4. The sequence: sessions, DTC off, communication control (functional), security access per
   level through the seed/key registry, fingerprint (`length`/`format`/`data`), then per image
   segment erase (the `erase_policy` plan: never a sector twice, never outside the regions or
   into a protected range) → RequestDownload → TransferData (counter from 1, wrapping 0xFF →
   0x00, timed-out blocks re-sent with the same counter) → RequestTransferExit, the check
   routine with the EA's checksum, `11 01`, then `application_start` (silence for
   `timing.reset_time_ms`, probes within `timing.application_start_timeout_s`) and one version
   read. RequestDownload / RoutineControl / addressAndLengthFormat are encoded by udsoncan.

Beyond the plain sequence (issue 18): with `UdsProfile.compression` each download stream is
compressed (RequestDownload's dataFormatIdentifier carries the method ID, memorySize stays the
uncompressed size); with `UdsProfile.sector_checksum` the `sector_checksums` step asks the ECU's
checksum per sector after the unlock and only the differing sectors are erased and written (a
delta, or the rest of an interrupted flash); the check routine always covers the whole image.
A link loss mid-transfer (no flow control comes back) shorter than the ECU's S3 repeats the same
block counter until the link is back instead of failing. `FunctionalGate` sends a functional
request once per bus when several ECUs are flashed on it (engine/flash_plan_run.py).

The outcome is explicit (`FlashResult.outcome`): verified (version read and equal to the
expected one), not_verified (completed, but the version was not read or nothing was expected),
failed or cancelled. Every step (also each erase and each boot wait) is a `StepRecord` with its
start and end time; every request/response and the bus log go to the job's `FlashRecord`.
TesterPresent runs on its own thread for the whole job (also during 0x78) except while the ECU
reboots, when the tester stays silent.

Tx frames reach the notifier's listeners (the live trace, the job's BLF bus log) exactly once:
by the bus's echo when `FlashSession.tx_echo` (receive_own_messages), else through
`FlashSession.tx_fanout` (the engine's fan-out to the listeners); without either (a bare bus in
a test or script) the bus log takes them from the links' Tx tap.

A plain function, unit-testable without Qt; it runs on the engine worker thread of the bus.
Why one module over 600 lines: the sequence is one state machine over one job's links, record
and cancel token; its pure pieces (erase plan, fingerprint, encodings) are in flash_encoding.py.
Failures never raise out of `flash_ecu`: they end in a `FlashResult` with `ok=False` and the
error, so a record is always produced; a failed or cancelled job leaves the ECU in its bootloader
(nothing in the sequence can touch the bootloader region) and can be re-run from the start.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import can
import isotp
from udsoncan.common.DataFormatIdentifier import DataFormatIdentifier
from udsoncan.exceptions import InvalidResponseException
from udsoncan.Response import Response
from udsoncan.services.RequestDownload import RequestDownload
from udsoncan.services.RoutineControl import RoutineControl

from fota_studio.core.checksums import checksum, checksum_length
from fota_studio.core.compression import compress
from fota_studio.core.ea import (
    DidDefinition,
    EcuDefinition,
    IsoTpAddress,
    Precondition,
    RoutinePrecondition,
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
from fota_studio.core.flash_outcome import FlashOutcome, flash_outcome, not_verified_reason
from fota_studio.core.flash_record import (
    RESULT_CANCELLED,
    RESULT_FAILED,
    RESULT_SUCCESS,
    VERIFICATION_NOT_VERIFIED,
    VERIFICATION_VERIFIED,
    ExchangeRecord,
    FlashRecord,
    SegmentRecord,
    StepRecord,
)
from fota_studio.core.image_fit import require_image_fits
from fota_studio.core.nrc import nrc_name
from fota_studio.engine.cancel import CancelToken
from fota_studio.engine.flash_encoding import (
    DeltaSegment,
    delta_segments,
    memory_location,
    region_for,
    sector_pieces,
)
from fota_studio.engine.flash_encoding import (  # re-exported: the job's public helpers
    EraseRange as EraseRange,
)
from fota_studio.engine.flash_encoding import SegmentLike as SegmentLike
from fota_studio.engine.flash_encoding import address_length_record as address_length_record
from fota_studio.engine.flash_encoding import fingerprint_record as fingerprint_record
from fota_studio.engine.flash_encoding import plan_erases as plan_erases
from fota_studio.engine.progress import ProgressReporter
from fota_studio.engine.seedkey import SeedKeyRegistry
from fota_studio.infra.flash_journal import elision_journal_path
from fota_studio.infra.user import current_user
from fota_studio.protocols.bus import FaultKind, fault_kind
from fota_studio.protocols.buslog_elision import ImageView, Tester, TransferElider
from fota_studio.protocols.decode.frames import copy_message
from fota_studio.protocols.isotp_link import (
    ADAPTER_ECU_STATE,
    ADAPTER_ERROR_HINT,
    AdapterSendError,
    IsoTpLink,
    LinkSilentError,
)
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
BOOTLOADER_READY_STEP = "bootloader_ready"
CLEAN_START_STEP = "clean_start"
APPLICATION_START_STEP = "application_start"
#: Reading the ECU's checksum per sector before the erase (UdsProfile.sector_checksum).
SECTOR_CHECKSUM_STEP = "sector_checksums"
#: Outcomes of a flash (FlashResult.outcome; core/flash_outcome.py decides and words them).
OUTCOME_VERIFIED = FlashOutcome.VERIFIED
OUTCOME_NOT_VERIFIED = FlashOutcome.NOT_VERIFIED
OUTCOME_FAILED = FlashOutcome.FAILED
OUTCOME_CANCELLED = FlashOutcome.CANCELLED
#: TesterPresent with a positive response (3E 00): the readiness probe after a reboot. Every
#: server supports it in every session (ISO 14229-1 §9.6) and it changes no state.
PROBE_SID = 0x3E
PROBE_SUBFUNCTION = 0x00
#: NRCs saying "this request is not served in the active session" (ISO 14229-1 §7.5).
WRONG_SESSION_NRCS = frozenset({0x7E, 0x7F})
#: NRC conditionsNotCorrect: a precondition routine's way of saying "not now".
NRC_CONDITIONS_NOT_CORRECT = 0x22
#: ISO-TP message limit on classic CAN (ISO 15765-2 FF_DL ≤ 4095 without escape).
CLASSIC_MAX_ISOTP_BYTES = 4095
#: TransferData header: SID 0x36 + block sequence counter.
TRANSFER_HEADER_BYTES = 2
#: The channel number frames carry in the job's BLF bus log.
BUSLOG_CHANNEL = 1


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


class FunctionalGate:
    """One functional request per bus for the ECUs of a machine-level flash sharing it.

    A functional request (e.g. 28 03 01, CommunicationControl) reaches every ECU on the bus,
    so with several ECUs flashed interleaved it must go once, when every one of them is ready
    for it (none rebooting into its bootloader, where a strict ECU logs it as a violation):
    each running job (`join` at its start, `leave` at its end) `arrive`s at its functional
    step and waits — its TesterPresent keeps its S3 alive — until every running member that
    this request has not covered yet arrived; the first sends it, the others skip. An ECU that
    starts later (it must follow another) gets its own. After `wait_s` it is sent anyway
    (logged). Any thread.
    """

    def __init__(self, wait_s: float = 60.0) -> None:
        """An empty gate; members join as their jobs start."""
        import threading

        self._cond = threading.Condition()
        self._members: set[str] = set()
        self._waiting: dict[bytes, set[str]] = {}
        self._covered: dict[bytes, dict[str, str]] = {}
        self.wait_s = wait_s

    def join(self, ecu: str) -> None:
        """`ecu`'s job starts on this bus."""
        with self._cond:
            self._members.add(ecu)

    def leave(self, ecu: str) -> None:
        """`ecu`'s job ended: nobody waits for it any more."""
        with self._cond:
            self._members.discard(ecu)
            self._cond.notify_all()

    def arrive(self, ecu: str, payload: bytes, send: Callable[[], object]) -> str:
        """Wait for the other running ECUs, then send once; who sent it (`ecu` when we did)."""
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            waiting = self._waiting.setdefault(payload, set())
            covered = self._covered.setdefault(payload, {})
            waiting.add(ecu)
            self._cond.notify_all()
            while ecu not in covered and not (self._members - set(covered)) <= waiting:
                rest = deadline - time.monotonic()
                if rest <= 0:
                    log.warning("%s: not every ECU on the bus reached it; sending", ecu)
                    break
                self._cond.wait(min(rest, 0.1))
            if ecu in covered:
                return covered[ecu]
            for member in waiting:
                covered[member] = ecu
            waiting.clear()
        try:
            send()
        finally:
            with self._cond:
                self._cond.notify_all()
        return ecu


@dataclass
class FlashSession:
    """Everything a flash job needs besides the image: the ECU, the bus and who flashes."""

    ecu: EcuDefinition
    bus: can.BusABC
    notifier: can.Notifier
    job_id: int = 0
    machine: str = ""
    version: str = ""
    #: The version the ECU must report after the reset; None/"" = the flash cannot be verified.
    expected_version: str | None = None
    tester: str = field(default_factory=current_user)
    interface: str = ""
    channel: str = ""
    seedkey: SeedKeyRegistry | None = None
    buslog_path: Path | None = None
    #: Override how long the application may take to answer after the reset (tests, demo);
    #: None = the EA's `timing.application_start_timeout_s`.
    boot_wait_s: float | None = None
    #: The bus echoes every frame we send to the notifier's listeners with is_rx=False
    #: (opened with receive_own_messages=True on an interface that supports it).
    tx_echo: bool = False
    #: Called with every frame the job sends; must hand it to the notifier's listeners (the
    #: engine's `notifier_fanout`) — for buses that do not echo. None: nobody else needs Tx.
    tx_fanout: Callable[[can.Message], None] | None = None
    #: Shared by the ECUs of a machine-level flash on this bus: functional requests go once
    #: per bus (`FunctionalGate`); None = this job sends its own.
    functional_gate: FunctionalGate | None = None
    #: The stored image file this flash's image comes from ({"file_sha256", "format",
    #: "base_address", "image_sha256"}, `infra/buslog_store.image_reference`): with it, the
    #: bus log keeps the TransferData payload by reference instead of repeating it.
    buslog_image: dict[str, Any] | None = None


@dataclass
class FlashResult:
    """The outcome of a flash job.

    `ok`: the whole sequence completed (the image is in the ECU and its check routine passed).
    `verified`: additionally, the version read after the reset equals the expected one. A
    completed flash that read no version, or had none to compare with, is `ok` but NOT
    verified; `outcome` names the three cases (+ cancelled) for the CLI, panel and reports.
    """

    ok: bool
    record: FlashRecord
    error: FotaError | None = None
    version_after: str = ""
    buslog_path: Path | None = None

    @property
    def cancelled(self) -> bool:
        """True when the job stopped because it was cancelled."""
        return isinstance(self.error, CancelledError)

    @property
    def verified(self) -> bool:
        """True only when flashed AND the version read equals the expected one."""
        return self.ok and self.record.verified

    @property
    def outcome(self) -> FlashOutcome:
        """Verified, not verified, failed or cancelled (`core.flash_outcome.flash_outcome`)."""
        return flash_outcome(self.record)


Report = Callable[[EngineEvent], None]


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


# -- the job --------------------------------------------------------------------------------


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
        self.timing = session.ecu.uds.timing
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
        #: The ECU answered on its bootloader IDs before the entry frame (a re-run).
        self.in_bootloader = False
        self.erase_plan: list[list[EraseRange]] = []
        #: monotonic deadline for the application to answer after the reset.
        self._app_deadline: float | None = None
        #: The exchange record that plain TransferData blocks are being summarised into.
        self._plain_run: ExchangeRecord | None = None

    # -- plumbing -------------------------------------------------------------------------

    def log(self, level: LogLevel, text: str) -> None:
        getattr(log, level)("%s: %s", self.ecu.name, text)
        self.report(LogLine(self.s.job_id, level, text))

    def _on_busy(self, step: str) -> None:
        self.busy_count += 1
        self.record.pending_responses += 1
        self.report(EcuBusy(self.s.job_id, step, self.busy_count))

    def _on_exchange(self, ex: Exchange) -> None:
        # A plain TransferData block (answered at once, nothing skipped) extends the previous
        # plain one of the same step: the bus log holds every frame, the record the summary.
        last = self.record.exchanges[-1] if self.record.exchanges else None
        plain = (
            ex.request[:1] == b"\x36"
            and ex.response is not None
            and ex.response[:1] == b"\x76"
            and ex.nrc is None
            and ex.pending_count == 0
            and not ex.skipped
        )
        if plain and last is not None and last is self._plain_run and last.step == ex.step:
            last.blocks += 1
            last.request_len += len(ex.request)
            last.t_response = ex.t_response
            return
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
        self._plain_run = self.record.exchanges[-1] if plain else None

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
            if self.buslog is not None:
                self.buslog.watch(iso.address)
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
        rec.frame_first = self._frames_logged()
        self.record.steps.append(rec)
        self.report(StepStarted(self.s.job_id, step, detail))
        return rec

    def _frames_logged(self) -> int | None:
        """Frames in the bus log so far (the index the next frame gets); None without one."""
        return None if self.buslog is None else self.buslog.frames

    def _end_frames(self, rec: StepRecord) -> None:
        # The response that ended the step is in the bus log already: the log's listener
        # was added to the notifier before any ISO-TP stack, so it sees each frame first.
        end = self._frames_logged()
        if end is None or rec.frame_first is None:
            return
        if end <= rec.frame_first:  # nothing sent or received (a wait, a skipped check)
            rec.frame_first = None
            return
        rec.frame_last = end - 1

    def step_ok(self, rec: StepRecord, detail: str = "") -> None:
        self._end_frames(rec)
        rec.finished_at = time.time()
        rec.ok = True
        if detail:
            rec.detail = detail
        self.report(StepFinished(self.s.job_id, rec.step, True, rec.detail))

    def step_failed(self, rec: StepRecord, exc: BaseException) -> None:
        self._end_frames(rec)
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

    def _uds(self) -> UdsLink:
        assert self.current is not None
        return self.current

    def _silence(self, seconds: float, where: str) -> None:
        """Send nothing (not even TesterPresent) for `seconds`: the ECU is rebooting."""
        self.keeper.set_link(None)
        if seconds > 0 and self.cancel.wait(seconds):
            self.cancel.check(where)

    def _await_ready(self, step: str, ids: IsoTpAddress, timeout_s: float) -> tuple[bool, int]:
        """Probe `ids` with 3E 00 until an answer, up to `timeout_s`; (answered, probes).

        One probe at a time (each waits its P2), the next no sooner than P2 after the previous
        one started, so a rebooting ECU is never flooded; the first answer (positive or any
        NRC: something is listening) ends the wait. TesterPresent keeping is paused meanwhile.
        """
        uds = self.use(ids)
        self.keeper.set_link(None)
        deadline = time.monotonic() + timeout_s
        probes = 0
        while True:
            started = time.monotonic()
            probes += 1
            try:
                uds.request(step, PROBE_SID, subfunction=PROBE_SUBFUNCTION, busy_retries=0)
                answered = True
            except UdsNegativeResponseError:
                answered = True
            except AdapterSendError:
                raise
            except TransferError:
                answered = False
            if answered:
                self.keeper.set_link(uds)
                return True, probes
            now = time.monotonic()
            if now >= deadline:
                return False, probes
            rest = min(started + uds.p2_s, deadline) - now
            if rest > 0 and self.cancel.wait(rest):
                self.cancel.check(step)

    # -- the sequence ---------------------------------------------------------------------

    def run(self) -> str:
        seq = [s for s in self.profile.sequence if s.enabled]
        kinds = [s.kind for s in seq]
        if not self.image.segments:
            raise ConfigurationError("the image has no data to flash")
        erase = next((s for s in seq if s.kind == StepKind.ERASE), None)
        record_fmt = str(erase.param("record")) if erase is not None else "address_length"
        # Refused here, before anything is sent: outside the regions, into a protected range
        # (the one image-fits rule, core/image_fit.py, as `ea validate` and the resolver).
        require_image_fits(
            self.profile,
            [(s.address, len(s.data)) for s in self.image.segments],
            ecu_name=self.ecu.name,
        )
        self.erase_plan = plan_erases(self.profile, self.image.segments, record_fmt)
        app, boot = self.conn.application, self.conn.bootloader
        entry = self.conn.bootloader_entry
        self.keeper.start()
        self.use(app)
        self.run_step(PRECONDITIONS_STEP, self._preconditions)
        if entry is not None and not self.in_bootloader:
            self.run_step(BOOTLOADER_ENTRY_STEP, self._bootloader_entry)
            self.run_step(BOOTLOADER_READY_STEP, self._bootloader_ready)
        elif entry is not None:
            self.run_step(
                BOOTLOADER_ENTRY_STEP,
                lambda: "the ECU already runs its bootloader: entry frame not sent",
            )
        elif self.in_bootloader or StepKind.PROGRAMMING_SESSION not in kinds:
            self.use(boot)
        self.run_step(CLEAN_START_STEP, self._clean_start)
        segments_done = False
        version_read = False
        for i, step in enumerate(seq):
            kind = step.kind
            if kind in SEGMENT_STEPS:
                if not segments_done:
                    segments_done = True
                    self._segments([s for s in seq if s.kind in SEGMENT_STEPS])
                continue
            if kind == StepKind.RESET:
                self.run_step(kind.value, functools.partial(self._reset, step))
                probe = StepKind.READ_VERSION in kinds[i + 1 :]
                self.run_step(
                    APPLICATION_START_STEP, functools.partial(self._application_start, probe)
                )
                continue
            if kind == StepKind.READ_VERSION:
                self.run_step(kind.value, functools.partial(self._read_version, step))
                version_read = True
                continue
            self.run_step(kind.value, functools.partial(self._handler(kind), step))
        if not version_read:
            self.record.verification = VERIFICATION_NOT_VERIFIED
            if self.s.expected_version:
                self.log(
                    "warning",
                    f"expected version {self.s.expected_version} NOT verified: the EA sequence "
                    "does not read the version (read_version disabled)",
                )
        self.record.result = RESULT_SUCCESS
        return self.record.version_after

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
        }[kind]

    # -- preconditions --------------------------------------------------------------------

    def _preconditions(self) -> str:
        app = self._uds()
        parts: list[str] = []
        did = self.profile.health.version_did

        def read_version() -> UdsLink | None:
            """Ask the application for its version; None when it is silent."""
            try:
                raw = app.request(PRECONDITIONS_STEP, 0x22, did.to_bytes(2, "big"))
                assert raw is not None
                self.record.version_before = decode_did(self._did_def(did), raw[3:])
                parts.append(f"installed {self.record.version_before}")
            except AdapterSendError:
                raise
            except TransferError:
                return None  # the application is silent
            except UdsNegativeResponseError as exc:
                # Something answers on the application IDs; the preconditions are asked there.
                self.log("warning", f"cannot read the installed version: {exc}")
            return app

        target = read_version()
        boot = self.conn.bootloader
        if target is None and (boot.request_id, boot.response_id) != (
            self.conn.application.request_id,
            self.conn.application.response_id,
        ):
            # Already in the bootloader (a re-run after a failed flash)? One probe tells.
            answered, _ = self._await_ready(PRECONDITIONS_STEP, boot, 0.0)
            if answered:
                self.in_bootloader = True
                target = self._uds()
                parts.append("ECU in its bootloader")
                self.log("info", "the application is silent but the bootloader answers")
            else:
                self.use(self.conn.application)
        if target is None and not self.in_bootloader:
            # Neither answers: the ECU may still be starting (e.g. a re-run right after a
            # reset). Probe the application up to its documented start time, then ask again.
            wait_s = self.profile.timing.application_start_timeout_s
            answered, _ = self._await_ready(PRECONDITIONS_STEP, self.conn.application, wait_s)
            app = self._uds()
            if answered:
                self.log("info", "the application answered after it finished starting")
                target = read_version()
        unasked: list[tuple[Precondition | RoutinePrecondition, str]] = []
        silent = "the application does not answer"
        checks: tuple[Precondition | RoutinePrecondition, ...] = (
            *self.profile.preconditions,
            *self.profile.routine_preconditions,
        )
        for pre in checks:
            if target is None:
                unasked.append((pre, silent))
                continue
            if isinstance(pre, RoutinePrecondition):
                text, why = self._routine_precondition(target, pre)
            else:
                text, why = self._did_precondition(target, pre)
            if text:
                parts.append(text)
            else:
                unasked.append((pre, why))
        blocking = [(p, why) for p, why in unasked if not p.skippable]
        if blocking:
            names = "; ".join(f'"{p.name}" ({why})' for p, why in blocking)
            raise PreconditionError(
                f"{PRECONDITIONS_STEP}: cannot check {names}",
                hint="nothing was sent to the bootloader; make sure the application runs and "
                "answers (power, ignition, IDs) and run the flash again — or, if the ECU's "
                "specification allows it, mark the precondition skippable with a reason in "
                "the EA",
            )
        for p, why in unasked:
            reason = p.skip_reason or "no reason given"
            parts.append(f"skipped {p.name} ({why}): {reason}")
            self.log("warning", f'precondition "{p.name}" skipped ({why}): {reason}')
        if target is None and not unasked:
            parts.append("application not answering (no preconditions to check)")
        return "; ".join(parts)

    def _did_precondition(self, uds: UdsLink, pre: Precondition) -> tuple[str, str]:
        """("name = value unit", "") when it passes, ("", why) when it cannot be read."""
        try:
            raw = uds.request(PRECONDITIONS_STEP, 0x22, pre.did.to_bytes(2, "big"))
        except AdapterSendError:
            raise
        except TransferError:
            return "", f"no answer to DID 0x{pre.did:04X}"
        except UdsNegativeResponseError as exc:
            return "", f"DID 0x{pre.did:04X}: NRC 0x{exc.nrc:02X} {exc.nrc_name}"
        assert raw is not None
        if len(raw) < 3 + pre.length:
            return "", f"DID 0x{pre.did:04X} answered {len(raw) - 3} bytes, {pre.length} expected"
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
        return text, ""

    def _routine_precondition(self, uds: UdsLink, pre: RoutinePrecondition) -> tuple[str, str]:
        """Run a "check programming preconditions" routine: (text, "") or ("", why not run)."""
        rid = f"routine 0x{pre.routine_id:04X}"
        answer = b""
        for attempt in range(2):
            try:
                answer = self._routine(PRECONDITIONS_STEP, uds, pre.routine_id, pre.record)
                break
            except AdapterSendError:
                raise
            except TransferError:
                return "", f"no answer to {rid}"
            except UdsNegativeResponseError as exc:
                if exc.nrc == NRC_CONDITIONS_NOT_CORRECT:
                    raise PreconditionError(
                        f'{PRECONDITIONS_STEP}: "{pre.name}" ({rid}) answered NRC 0x22 '
                        "conditionsNotCorrect: the ECU says it cannot be programmed now",
                        hint="make the machine safe (stationary, engine off, supply in range) "
                        "and run the flash again; nothing was erased",
                    ) from exc
                if exc.nrc not in WRONG_SESSION_NRCS or attempt:
                    return "", f"{rid}: NRC 0x{exc.nrc:02X} {exc.nrc_name}"
            # Bootloader specifications usually offer such routines in the extended session.
            try:
                uds.request(PRECONDITIONS_STEP, 0x10, subfunction=self.profile.extended_session)
            except AdapterSendError:
                raise
            except (TransferError, UdsNegativeResponseError) as exc:
                return "", f"{rid} needs another session and 10 03 failed ({exc})"
        expected = pre.expected_status
        status = answer[0] if answer else None
        shown = "no status" if status is None else f"status 0x{status:02X}"
        text = answer[1:].decode("ascii", "replace").strip("\x00 ")
        if text.isprintable() and text:
            shown += f" {text!r}"  # some ECUs say why after the status byte
        if expected is not None and status != expected:
            raise PreconditionError(
                f'{PRECONDITIONS_STEP}: "{pre.name}" ({rid}) reported {shown}, expected '
                f"0x{expected:02X}",
                hint="the ECU's preconditions for programming are not met (see its "
                "specification for the status codes); make the machine safe and run the flash "
                "again; nothing was erased",
            )
        return f"{pre.name} OK ({shown})", ""

    def _did_def(self, did: int) -> DidDefinition | None:
        for d in self.profile.dids:
            if d.did == did:
                return d
        return None

    # -- reboots --------------------------------------------------------------------------

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
        # The documented time the ECU needs to reboot into its bootloader; probes follow.
        delay_ms = self.conn.bootloader_entry_delay_ms
        self._silence(delay_ms / 1000.0, BOOTLOADER_ENTRY_STEP)
        return (
            f"0x{entry.can_id:X} {entry.data.hex(' ').upper()}, silent {delay_ms} ms "
            "(bootloader_entry_delay_ms)"
        )

    def _bootloader_ready(self) -> str:
        boot = self.conn.bootloader
        timeout_ms = self.timing.bootloader_ready_timeout_ms
        answered, probes = self._await_ready(BOOTLOADER_READY_STEP, boot, timeout_ms / 1000.0)
        if not answered:
            raise TransferError(
                f"the bootloader did not answer TesterPresent on 0x{boot.request_id:X}/"
                f"0x{boot.response_id:X} within timing.bootloader_ready_timeout_ms = "
                f"{timeout_ms} ms ({probes} probes) after the entry frame and "
                f"{self.conn.bootloader_entry_delay_ms} ms bootloader_entry_delay_ms of silence",
                step=BOOTLOADER_READY_STEP,
                hint="check bootloader_entry_delay_ms and timing.bootloader_ready_timeout_ms "
                "(and timing.reset_time_ms, the ECU's reboot time) against the ECU's bootloader "
                "specification, and the entry frame and bootloader IDs in the EA; nothing was "
                "erased — run the flash again",
            )
        return f"answered after {probes} probe(s)"

    def _application_start(self, probe: bool) -> str:
        reset_ms = self.timing.reset_time_ms
        self._silence(reset_ms / 1000.0, APPLICATION_START_STEP)
        if not probe:
            return f"silent {reset_ms} ms (timing.reset_time_ms); the version is not read"
        timeout_s = self._app_timeout_s()
        self._app_deadline = time.monotonic() + timeout_s
        app = self.conn.application
        answered, probes = self._await_ready(APPLICATION_START_STEP, app, timeout_s)
        if not answered:
            raise VerificationError(
                f"{APPLICATION_START_STEP}: the application did not answer TesterPresent on "
                f"0x{app.request_id:X}/0x{app.response_id:X} within "
                f"timing.application_start_timeout_s = {timeout_s:g} s ({probes} probes) after "
                f"the reset and {reset_ms} ms timing.reset_time_ms of silence",
                hint="the new application did not start, or starts slower than the EA says: "
                "check timing.application_start_timeout_s and timing.reset_time_ms and the "
                "application IDs; the ECU stays in its bootloader — run the flash again",
            )
        return f"silent {reset_ms} ms, then answered after {probes} probe(s)"

    def _app_timeout_s(self) -> float:
        if self.s.boot_wait_s is not None:
            return self.s.boot_wait_s
        return float(self.timing.application_start_timeout_s)

    # -- sessions, security, fingerprint ----------------------------------------------------

    def _clean_start(self) -> str:
        uds = self._uds()
        default = self.profile.default_session
        did = self.profile.active_session_did
        read = ""
        if did is not None:
            try:
                raw = uds.request(CLEAN_START_STEP, 0x22, did.to_bytes(2, "big"))
                assert raw is not None
                active = raw[3] if len(raw) > 3 else None
                if active == default:
                    return f"DID 0x{did:04X}: already in the default session 0x{default:02X}"
                read = f"DID 0x{did:04X}: session " + ("?" if active is None else f"0x{active:02X}")
            except UdsNegativeResponseError as exc:
                read = f"DID 0x{did:04X} not readable ({exc.nrc_name})"
        uds.request(CLEAN_START_STEP, 0x10, subfunction=default)
        return (f"{read}; " if read else "") + f"default session 0x{default:02X}"

    def _session(self, step: SequenceStep) -> str:
        session = int(step.param("session"))
        self._uds().request(step.kind.value, 0x10, subfunction=session)
        return f"session 0x{session:02X}"

    def _programming_session(self, step: SequenceStep) -> str:
        session = int(step.param("session"))
        self._uds().request(step.kind.value, 0x10, subfunction=session)
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
            payload = bytes([0x28, sub, comm])
            uds = self._uds()
            gate = self.s.functional_gate
            if gate is not None:
                # Once for the bus, with the suppress-positive-response bit: every ECU would
                # otherwise answer on its own response ID, where the other jobs' next request
                # could take that stray 68 xx for its own answer.
                quiet = bytes([0x28, ctrl | 0x80, comm])
                sender = gate.arrive(
                    self.ecu.name,
                    quiet,
                    lambda: uds.functional_request(name, quiet, suppress_response=True),
                )
                fid = f"functional 0x{self.conn.functional_id:X}"
                return f"{fid} sent once for the bus by {sender}"
            uds.functional_request(name, payload, suppress_response=suppress)
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
        data = fingerprint_record(step, self.s.tester)
        self._uds().request(step.kind.value, 0x2E, did.to_bytes(2, "big") + data)
        return f"DID 0x{did:04X} ({len(data)} bytes, {step.param('format')})"

    # -- per segment ----------------------------------------------------------------------

    def _segments(self, steps: list[SequenceStep]) -> None:
        by_kind = {s.kind: s for s in steps}
        segs: list[SegmentLike] = list(self.image.segments)
        erase_plan = self.erase_plan
        erase_step = by_kind.get(StepKind.ERASE)
        if self.profile.sector_checksum is not None and StepKind.TRANSFER_DATA in by_kind:
            if erase_step is not None and str(erase_step.param("record")) != "address_length":
                self.log(
                    "warning",
                    "sector checksums not used: the erase step's record is "
                    f"{erase_step.param('record')!r}, so only the ECU chooses what is erased "
                    "(a delta needs address_length); writing the whole image",
                )
            else:
                delta = self._delta_plan()
                if delta is not None:
                    segs = list(delta)
                    delta_profile = dataclasses.replace(self.profile, erase_policy="per_segment")
                    erase_plan = plan_erases(delta_profile, segs, "address_length")
        comp = self.profile.compression
        if comp is not None:
            self.record.compression = f"method 0x{comp.method_id:X} {comp.codec}"
        sent = self.record.bytes_skipped
        self.progress.update(sent, "starting transfer")
        for index, seg in enumerate(segs):
            data = bytes(seg.data)
            where = f"segment {index + 1}/{len(segs)} 0x{seg.address:08X} +0x{len(data):X}"
            srec = SegmentRecord(address=seg.address, length=len(data))
            self.record.segments.append(srec)
            wire = data if comp is None else compress(comp.codec, data)
            srec.wire_length = len(wire)
            erase = erase_step
            if erase is not None:
                for rng in erase_plan[index]:
                    self.run_step(
                        StepKind.ERASE.value,
                        functools.partial(self._erase, erase, rng),
                        rng.describe(),
                    )
            max_len = 0
            if StepKind.REQUEST_DOWNLOAD in by_kind:
                rec = self.step_start(StepKind.REQUEST_DOWNLOAD.value, where)
                try:
                    max_len = self._request_download(seg.address, len(data))
                    if comp is not None:
                        where += f" ({comp.codec} 0x{len(wire):X})"
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
                    srec.blocks = self._transfer(td, wire, max_len, sent, len(data))
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

    def _delta_plan(self) -> list[DeltaSegment] | None:
        """Ask the ECU's sector checksums; the parts of the image to write (None: all of it).

        Runs as the `sector_checksums` step after the unlock. A sector whose checksum equals
        the image's is already programmed and correct (an unchanged sector of a re-flash, or
        one written before an interruption) and is neither erased nor written; the final
        check routine still covers the whole image, so a wrong decision ends in a failed
        check, never a false success. An ECU that does not run the routine gets the whole
        image (logged).
        """
        sc = self.profile.sector_checksum
        assert sc is not None
        rec = self.step_start(SECTOR_CHECKSUM_STEP, f"routine 0x{sc.routine_id:04X}")
        try:
            changed, compared, same = self._compare_sectors()
        except UdsNegativeResponseError as exc:
            self.step_failed(rec, exc)
            self.log(
                "warning",
                f"the ECU did not run the sector-checksum routine 0x{sc.routine_id:04X} "
                f"({exc.nrc_name}); writing the whole image",
            )
            return None
        except BaseException as exc:
            self.step_failed(rec, exc)
            raise
        delta = delta_segments(self.profile, self.image.segments, changed)
        to_write = sum(len(d.data) for d in delta)
        self.record.sectors_compared = compared
        self.record.sectors_skipped = same
        self.record.bytes_skipped = self.record.bytes_total - to_write
        self.step_ok(
            rec,
            f"{same} of {compared} sectors already correct; writing "
            f"{to_write} of {self.record.bytes_total} bytes in {len(delta)} range(s)",
        )
        return delta

    def _compare_sectors(self) -> tuple[list[tuple[int, int]], int, int]:
        """(changed address ranges, sectors compared, sectors equal) over the whole image."""
        sc = self.profile.sector_checksum
        assert sc is not None
        width = checksum_length(sc.checksum)
        # One answer must fit one ISO-TP message: 71 01 <rid> <status> + the checksums.
        per_request = max(1, (CLASSIC_MAX_ISOTP_BYTES - 5) // max(1, width))
        changed: list[tuple[int, int]] = []
        compared = same = 0
        for seg in self.image.segments:
            end = seg.address + len(seg.data)
            region = region_for(self.profile, seg.address, len(seg.data))
            starts = sector_pieces(region, sc.sector_bytes, seg.address, end)
            for first in range(0, len(starts), per_request):
                group = starts[first : first + per_request]
                g_end = starts[first + per_request] if first + per_request < len(starts) else end
                record = address_length_record(
                    self.profile.address_and_length_format, group[0], g_end - group[0]
                )
                answer = self._routine(SECTOR_CHECKSUM_STEP, self._uds(), sc.routine_id, record)
                if not answer or answer[0] != 0x00 or len(answer) != 1 + width * len(group):
                    raise TransferError(
                        f"{SECTOR_CHECKSUM_STEP}: routine 0x{sc.routine_id:04X} answered "
                        f"{len(answer)} bytes for {len(group)} sectors of {sc.checksum} "
                        f"(status {answer[:1].hex() or 'none'})",
                        step=SECTOR_CHECKSUM_STEP,
                        hint="check uds.sector_checksum (sector_bytes, checksum) against the "
                        "bootloader specification; nothing was erased — run the flash again",
                    )
                bounds = [*group[1:], g_end]
                for k, (lo, hi) in enumerate(zip(group, bounds, strict=True)):
                    compared += 1
                    mine = checksum(sc.checksum, seg.data[lo - seg.address : hi - seg.address])
                    if answer[1 + k * width : 1 + (k + 1) * width] == mine:
                        same += 1
                    else:
                        changed.append((lo, hi))
        return changed, compared, same

    def _simple(self, step: str, sid: int) -> str:
        self._uds().request(step, sid)
        return ""

    def _routine(self, step: str, uds: UdsLink, routine_id: int, record: bytes) -> bytes:
        """RoutineControl startRoutine (31 01) through udsoncan; the routine status record.

        A response that echoes another routine or control type is a TransferError.
        """
        req = RoutineControl.make_request(
            routine_id, RoutineControl.ControlType.startRoutine, bytes(record) or None
        )
        payload = req.get_payload()
        raw = uds.request(step, payload[0], payload[2:], subfunction=payload[1])
        assert raw is not None
        try:
            answer = RoutineControl.interpret_response(Response.from_payload(raw)).service_data
        except InvalidResponseException as exc:
            raise TransferError(
                f"invalid RoutineControl response {raw.hex(' ')}: {exc}", step=step
            ) from exc
        if (
            answer.routine_id_echo != routine_id
            or answer.control_type_echo != RoutineControl.ControlType.startRoutine
        ):
            raise TransferError(
                f"the ECU answered routine 0x{answer.routine_id_echo:04X} "
                f"(control 0x{answer.control_type_echo:02X}) to 31 01 {routine_id:04X}",
                step=step,
                hint="frames were mixed up on the bus; run the flash again",
            )
        return bytes(answer.routine_status_record)

    def _routine_status(self, step: str, record: bytes, what: str) -> None:
        # 71 01 <rid> [status]: status 00 = done/OK (our ECUs' convention).
        status = record[0] if record else 0x00
        if status != 0x00:
            raise VerificationError(
                f"{step}: the ECU's {what} routine reported status 0x{status:02X} (failed)",
                hint="the ECU stays in its bootloader; run the flash again; if it persists "
                "check the image and the ECU",
            )

    def _erase(self, step: SequenceStep, rng: EraseRange) -> str:
        routine = int(step.param("routine_id"))
        fmt = str(step.param("record"))
        record = b""
        if fmt == "address_length":
            record = address_length_record(
                self.profile.address_and_length_format, rng.start, rng.length
            )
        elif fmt == "segment_index":
            record = bytes([rng.index & 0xFF])
        status = self._routine(step.kind.value, self._uds(), routine, record)
        self._routine_status(step.kind.value, status, "erase")
        if fmt == "none":
            return "the ECU's own erase (no record)"
        return f"{rng.describe()}, {rng.length} bytes"

    def _request_download(self, address: int, length: int) -> int:
        """RequestDownload of `length` uncompressed bytes; the ECU's maxNumberOfBlockLength.

        With `compression` the high nibble of dataFormatIdentifier is its method ID (ISO
        14229-1 §14.2.2.2); memorySize stays the uncompressed size.
        """
        name = StepKind.REQUEST_DOWNLOAD.value
        loc = memory_location(self.profile.address_and_length_format, address, length)
        dfi = self.profile.data_format
        comp = self.profile.compression
        if comp is not None:
            dfi = (comp.method_id & 0x0F) << 4 | (dfi & 0x0F)
        req = RequestDownload.make_request(loc, DataFormatIdentifier(dfi >> 4, dfi & 0x0F))
        payload = req.get_payload()
        try:
            raw = self._uds().request(name, payload[0], payload[1:])
        except UdsNegativeResponseError as exc:
            if comp is not None and exc.nrc == 0x31:
                exc.hint = (
                    f"the ECU refused dataFormatIdentifier 0x{dfi:02X}: compression method "
                    f"{comp.method_id} ({comp.codec}) is not one it knows — check "
                    "uds.compression.method_id against the bootloader specification, or "
                    "remove uds.compression from the EA to send the data uncompressed; "
                    "the memory range was erased, run the flash again"
                )
                exc.args = (f"{exc.message} ({exc.hint})",)
            raise
        assert raw is not None
        try:
            answer = RequestDownload.interpret_response(Response.from_payload(raw))
        except (InvalidResponseException, NotImplementedError) as exc:
            raise TransferError(
                f"RequestDownload response {raw.hex(' ')} is malformed: {exc}",
                step=name,
                hint="the ECU's answer has a bad lengthFormatIdentifier; check the ECU",
            ) from exc
        return int(answer.service_data.max_length)

    def _transfer(
        self, step: SequenceStep, data: bytes, max_len: int, base: int, plain_len: int = -1
    ) -> int:
        """Send `data` (the wire stream) in TransferData blocks; progress in image bytes.

        `plain_len`: the uncompressed size the stream stands for (progress scales to it).
        """
        name = step.kind.value
        plain = len(data) if plain_len < 0 else plain_len
        max_retries = int(step.param("max_retries"))
        chunk = block_payload_size(max_len, self.conn.fd)
        uds = self._uds()
        counter = 1
        blocks = 0
        view = memoryview(data)
        step_rec = self.record.steps[-1]  # the TransferData step `_segments` just started
        # The ECU drops its session S3 after its last request; keep a margin of one P2.
        s3_budget_s = self.profile.s3_ms / 1000.0
        last_answer = time.monotonic()
        for offset in range(0, len(data), chunk):
            # Safe point: between blocks (never inside one).
            if self.cancel.cancelled:
                self.cancel.check(f"{name} before block {blocks + 1} (offset 0x{offset:X})")
            if self.buslog is not None:
                step_rec.block_frames.append(self.buslog.frames)
            block = bytes(view[offset : offset + chunk])
            attempt = 0
            outage = False
            while True:
                try:
                    resp = uds.transfer_data(name, counter, block)
                    break
                except AdapterSendError as exc:
                    # A refused frame (bus-off) fails at once, so the retries cost nothing and
                    # ride out a transient adapter error; a bus-off stays and ends the job here.
                    # A vanished device does not come back within a retry: end at once.
                    if attempt >= max_retries or fault_kind(exc) is FaultKind.VANISHED:
                        raise AdapterSendError(
                            f"adapter error while sending TransferData block {blocks + 1} "
                            f"(counter 0x{counter:02X}, offset 0x{offset:X}, {attempt + 1} "
                            f"attempts): {exc.adapter_error}",
                            adapter_error=exc.adapter_error,
                            step=name,
                            hint=exc.hint or ADAPTER_ERROR_HINT,
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
                    silent_s = time.monotonic() - last_answer
                    # UdsLink names the step on the transport's error (kept as the cause).
                    link_down = isinstance(exc, LinkSilentError) or isinstance(
                        exc.__cause__, LinkSilentError
                    )
                    within_s3 = link_down and silent_s + uds.p2_s < s3_budget_s
                    if attempt >= max_retries and not within_s3:
                        raise TransferError(
                            f"block {blocks + 1} (counter 0x{counter:02X}, offset 0x{offset:X}) "
                            f"failed after {attempt + 1} attempts and {silent_s:.1f} s without "
                            f"an answer: {exc.message}",
                            step=name,
                            hint="the bus lost frames repeatedly or for longer than the ECU's "
                            "S3 (uds.s3_ms); check wiring/termination and bus load, then run "
                            "the flash again (with uds.sector_checksum it resumes)",
                        ) from exc
                    attempt += 1
                    outage = True
                    self.record.block_retries += 1
                    # Beyond max_retries, when no flow control came back (the link is down,
                    # not an answer lost — an ECU that hears us but stays silent is bounded
                    # by max_retries): while the ECU keeps its session (S3 not expired) the
                    # same counter is still valid (ISO 14229-1 §14.4.2.3), so the block is
                    # repeated until the link is back.
                    bound = (
                        f"{max_retries + 1}"
                        if attempt <= max_retries
                        else f"link down {silent_s:.1f} s, within S3"
                    )
                    self.log(
                        "warning",
                        f"block counter 0x{counter:02X} timed out; re-sending "
                        f"(attempt {attempt + 1}/{bound})",
                    )
            if resp is None or len(resp) < 2 or resp[1] != counter:
                echo = resp[1] if resp is not None and len(resp) > 1 else None
                raise TransferError(
                    f"the ECU acknowledged block counter {echo!r} instead of 0x{counter:02X}",
                    step=name,
                    hint="run the flash again from the start",
                )
            last_answer = time.monotonic()
            if outage:
                self.record.link_outages += 1
                self.log(
                    "info",
                    f"block counter 0x{counter:02X} acknowledged after {attempt} re-send(s): "
                    "transfer resumed in the session",
                )
            blocks += 1
            counter = (counter + 1) & 0xFF  # ISO 14229-1 §14.4: wraps 0xFF -> 0x00
            sent_now = min(offset + chunk, len(data))
            self.record.bytes_on_wire += len(block)
            done = base + (sent_now * plain // len(data) if data else 0)
            self.record.bytes_sent = done
            self.progress.update(done)
        return blocks

    def _check(self, step: SequenceStep) -> str:
        routine = int(step.param("routine_id"))
        kind = str(step.param("checksum"))
        csum = checksum(kind, (seg.data for seg in self.image.segments))
        status = self._routine(step.kind.value, self._uds(), routine, csum)
        self._routine_status(step.kind.value, status, "check")
        return f"{kind} {csum.hex().upper()}" if csum else "no checksum"

    def _reset(self, step: SequenceStep) -> str:
        reset_type = int(step.param("reset_type"))
        self._uds().request(step.kind.value, 0x11, subfunction=reset_type)
        return f"reset 0x{reset_type:02X}"

    def _read_version(self, step: SequenceStep) -> str:
        """Read the running version once the application answers, and compare it.

        The application already answered the readiness probe; a DID that is not available yet
        (no answer, or an NRC) is asked again no faster than P2 until the start timeout ends.
        """
        did = int(step.param("did"))
        name = step.kind.value
        app = self.use(self.conn.application)
        deadline = self._app_deadline or time.monotonic() + self._app_timeout_s()
        raw: bytes | None = None
        last: FotaError | None = None
        while raw is None:
            started = time.monotonic()
            try:
                raw = app.request(name, 0x22, did.to_bytes(2, "big"))
            except AdapterSendError:
                raise
            except (TransferError, UdsNegativeResponseError) as exc:
                last = exc
                now = time.monotonic()
                if now >= deadline:
                    break
                rest = min(started + app.p2_s, deadline) - now
                if rest > 0 and self.cancel.wait(rest):
                    self.cancel.check(name)
        if raw is None:
            raise VerificationError(
                f"{name}: the application did not give its version (DID 0x{did:04X}) before "
                f"timing.application_start_timeout_s ended: {last}",
                hint="the new application does not answer the version DID; check the DID in "
                "the EA and the image — the flash is NOT verified; run the flash again",
            )
        version = decode_did(self._did_def(did), raw[3:])
        self.record.version_after = version
        expected = self.s.expected_version
        if expected and version != expected:
            raise VerificationError(
                f"{name}: the ECU runs version {version!r}, expected {expected!r}",
                hint="the flashed image carries another version; check the repository entry",
            )
        if expected:
            self.record.verification = VERIFICATION_VERIFIED
            return f"version {version} (verified)"
        self.record.verification = VERIFICATION_NOT_VERIFIED
        return f"version {version} (no expected version: NOT verified)"


class _BusLog:
    """BLF bus log of the job: a listener on the shared notifier (+ the links' Tx tap when the
    bus neither echoes nor fans out Tx frames, see the module docstring).

    With an `elider` the TransferData payload that equals the image is kept by reference
    (`protocols/buslog_elision.py`): its runs go to the record, and to the journal file next
    to the log as they happen, so a killed job's partial log can still be restored."""

    def __init__(
        self,
        path: Path,
        notifier: can.Notifier,
        elider: TransferElider | None = None,
        image_ref: dict[str, Any] | None = None,
    ) -> None:
        import threading

        self.path = path
        self._notifier = notifier
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = can.BLFWriter(str(path))
        self.frames = 0
        self._closed = False
        self.elider = elider
        self.image_ref = image_ref
        self._journal: Any = None
        if elider is not None:
            self._journal = elision_journal_path(path).open("w", encoding="utf-8")
            self._journal_write("image", image_ref)
            elider.set_journal(self._journal_write)
        notifier.add_listener(self.on_rx)

    def _journal_write(self, kind: str, value: Any) -> None:
        # Before the frame it concerns reaches the BLF writer (which buffers further), so the
        # journal on disk is never behind the log.
        self._journal.write(json.dumps({kind: value}) + "\n")
        self._journal.flush()

    def watch(self, address: isotp.Address | isotp.AsymmetricAddress) -> None:
        """Follow the TransferData requests sent to `address` (a link of the job)."""
        if self.elider is None:
            return
        tester = Tester(
            can_id=address.get_tx_arbitration_id(isotp.TargetAddressType.Physical),
            extended=address.is_tx_29bits(),
            prefix=len(address.get_tx_payload_prefix()),
        )
        with self._lock:
            self.elider.watch(tester)

    def on_rx(self, msg: can.Message) -> None:
        # BLF stores numeric channels; interface channel names ("CAN1", "PCAN_USBBUS1", a
        # virtual bus name) would not fit, and the log holds one channel anyway.
        frame = copy_message(msg, channel=BUSLOG_CHANNEL)
        with self._lock:
            if not self._closed:
                if self.elider is not None:
                    # The copy shares the frame's bytearray with every other listener (and,
                    # through the Tx tap, with the stack's own frame): zero a private one.
                    frame.data = bytearray(frame.data)
                    self.elider.feed(frame, self.frames)
                self._writer.on_message_received(frame)
                self.frames += 1

    def on_tx(self, msg: can.Message) -> None:
        msg.is_rx = False
        self.on_rx(msg)

    def close(self, record: FlashRecord | None = None) -> None:
        """Stop logging; with `record`, name the runs kept by reference in it."""
        import contextlib

        with contextlib.suppress(ValueError):
            self._notifier.remove_listener(self.on_rx)
        with self._lock:
            if not self._closed:
                self._closed = True
                if self.elider is not None:
                    self.elider.close()
                self._writer.stop()
                if self._journal is not None:
                    self._journal.close()
        if record is not None and self.elider is not None and self.elider.runs:
            record.buslog_image = dict(self.image_ref or {})
            record.buslog_elided = [list(r) for r in self.elider.runs]


def _ecu_state_after(rec: FlashRecord, ecu: str) -> str:
    """Where the ECU is after a flash that failed once it had answered (from the exchanges)."""

    def answered(step: str, positive: str) -> bool:
        return any(
            x.step == step and (x.response_hex or "").startswith(positive) for x in rec.exchanges
        )

    if answered("reset", "51"):
        return f"{ecu} was programmed and reset; only the check of its new version is missing"
    if answered("erase", "71"):
        return (
            f"{ecu}'s memory was erased: it stays in its bootloader until a flash completes — "
            "re-run the flash through a working adapter"
        )
    if answered("programming_session", "50"):
        return (
            f"{ecu} is in its bootloader and nothing was erased — re-run the flash through a "
            "working adapter"
        )
    return f"{ecu} answered but was not changed — re-run the flash through a working adapter"


def _say_if_never_answered(error: FotaError, rec: FlashRecord, ecu: str) -> FotaError:
    """A transport failure before the ECU ever answered: say the ECU was never changed and
    point at the adapter first (an adapter that is not on the bus looks exactly like a silent
    ECU), instead of "the ECU stays in its bootloader" it never entered. An adapter that
    vanished or failed later: say where the flash left the ECU."""
    if not isinstance(error, TransferError | PreconditionError):
        return error
    if any(x.response_hex is not None for x in rec.exchanges):
        if isinstance(error, AdapterSendError) and (error.hint or "").endswith(ADAPTER_ECU_STATE):
            advice = (error.hint or "").removesuffix(f"; {ADAPTER_ECU_STATE}")
            hint = f"{advice}; {_ecu_state_after(rec, ecu)}"
            error.hint = hint
            error.args = (f"{error.message} ({hint})",)
        return error
    hint = (
        f"{ecu} never answered, so the ECU was never touched (nothing was erased or written): "
        "check the adapter first (`fota-studio doctor`: is it open and on the bus at the "
        "machine's bitrate?), then that the ECU is powered and on these IDs"
    )
    if isinstance(error, AdapterSendError) and error.hint:
        # The adapter's own advice, without the "ECU stays in its bootloader" it never entered.
        advice = error.hint.removesuffix(f"; {ADAPTER_ECU_STATE}")
        if advice == ADAPTER_ERROR_HINT:
            advice = advice.split(";")[0]
        hint = f"{advice}; {ecu} never answered, so the ECU was never touched, re-run the flash"
    error.hint = hint
    error.args = (f"{error.message} ({hint})",)
    return error


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
        elider = None
        if session.buslog_image is not None:
            elider = TransferElider(ImageView(image.segments))
        job.buslog = _BusLog(session.buslog_path, session.notifier, elider, session.buslog_image)
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
            job.buslog.close(job.record)
            job.record.buslog_frames = job.buslog.frames
    rec = job.record
    rec.finished_at = time.time()
    if error is not None:
        error = _say_if_never_answered(error, rec, session.ecu.name)
        rec.result = RESULT_CANCELLED if isinstance(error, CancelledError) else RESULT_FAILED
        rec.verification = ""
        rec.error = str(error)
        rec.failed_step = job.step_name
        if isinstance(error, UdsNegativeResponseError):
            rec.nrc, rec.nrc_name = error.nrc, error.nrc_name
        job.log("error" if rec.result == RESULT_FAILED else "warning", str(error))
    else:
        job.progress.update(rec.bytes_total, "done", force=True)
        if not rec.verified:
            job.log("warning", f"{job.ecu.name} flashed, NOT verified: {not_verified_reason(rec)}")
    return FlashResult(
        ok=error is None and rec.result == RESULT_SUCCESS,
        record=rec,
        error=error,
        version_after=version_after,
        buslog_path=session.buslog_path,
    )
