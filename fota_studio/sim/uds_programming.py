"""The reprogramming services of the simulated bootloader: routines, erase, download, transfer.

RoutineControl (the erase and check routines, and the "check programming preconditions" routine
0x0203 plus the EA's routine preconditions, which the application offers too), RequestDownload,
TransferData and RequestTransferExit, after the general ISO 14229-1 §7.5 checks of
`uds_services.UdsServices.check`. What a strict bootloader refuses is refused here and recorded
as a violation: erasing into a protected range, erasing a sector twice in one programming
session (`SimEcuOptions.reerase`), TransferData/exit out of sequence. The erase runs in the
background of the worker loop (`SimEcu._progress_erase`); slow programming
(`programming_ms_per_kib`) answers 0x78 first. Runs on the ECU's worker thread with its lock
held, like every handler.
"""

from __future__ import annotations

import contextlib
import logging
import time

from fota_studio.core.checksums import checksum, checksum_length
from fota_studio.core.compression import CompressionError, Decompressor
from fota_studio.core.ea import StepKind
from fota_studio.sim.flash_memory import FlashAccessError
from fota_studio.sim.uds_model import (
    BOOTLOADER,
    ROUTINE_CHECK_PRECONDITIONS,
    SESSION_DEFAULT,
    V_PROTECTED,
    V_REERASE,
    V_SEQUENCE,
    V_TRANSFER_SEQUENCE,
    Download,
    Erase,
    Nrc,
    Stack,
)
from fota_studio.sim.uds_services import NON_DEFAULT, PROGRAMMING, UdsServices, routine_response

log = logging.getLogger(__name__)


class ProgrammingServices(UdsServices):
    """Routines, erase, download and transfer of `SimEcu` (mixin over `UdsServices`)."""

    def _routines(self) -> dict[int, frozenset[int]]:
        """Routine IDs of the current mode -> sessions they may be started in."""
        routines = dict.fromkeys(
            [ROUTINE_CHECK_PRECONDITIONS]
            + [r.routine_id for r in self.ecu.uds.routine_preconditions],
            NON_DEFAULT,
        )
        if self._mode == BOOTLOADER:
            routines[self._erase_routine] = PROGRAMMING
            routines[self._check_routine] = PROGRAMMING
            if self.ecu.uds.sector_checksum is not None:
                routines[self.ecu.uds.sector_checksum.routine_id] = PROGRAMMING
        return routines

    def _svc_routine(self, data: bytes, entry: Stack) -> bytes | None:
        rid = int.from_bytes(data[2:4], "big")
        where = self._routines().get(rid)
        if where is None:
            raise Nrc(0x31)
        if self._session not in where:
            raise Nrc(0x7E)
        sector = self.ecu.uds.sector_checksum
        own = {self._erase_routine, self._check_routine}
        if sector is not None:
            own.add(sector.routine_id)
        if rid not in own or self._mode != BOOTLOADER:
            return self._check_preconditions(rid)
        self._require_security()
        if self._download is not None:
            self._violation(V_SEQUENCE, f"routine 0x{rid:04X} while a download is active")
            raise Nrc(0x24)
        if rid == self._erase_routine:
            return self._start_erase(data[4:], entry)
        if sector is not None and rid == sector.routine_id:
            return self._sector_checksums(data[4:])
        return self._check(data[4:])

    def _sector_checksums(self, record: bytes) -> bytes:
        """31 01 <rid> <ALFID address size> -> status 00 + one checksum per sector piece.

        The range is cut on the region's grid of `sector_checksum.sector_bytes` (the first and
        last piece clipped to the range). The range becomes part of what the check routine
        covers in this programming run: the tester says "this is my image", and writes only
        what differs (delta, resume), yet the final check still spans the whole image.
        """
        sector = self.ecu.uds.sector_checksum
        assert sector is not None
        address, length = self._parse_address_length(record)
        region = self.memory.region_of(address, length)
        if region is None or length == 0 or self.memory.is_protected(address, length):
            raise Nrc(0x31)
        size = sector.sector_bytes
        out = bytearray([0x00])
        pos, end = address, address + length
        while pos < end:
            nxt = min(end, region.start + ((pos - region.start) // size + 1) * size)
            out += checksum(sector.checksum, self.memory.read(pos, nxt - pos))
            pos = nxt
        if (address, length) not in self._downloaded:
            self._downloaded.append((address, length))
        log.info("%s: sector checksums of 0x%08X +0x%X", self.name, address, length)
        return routine_response(sector.routine_id, bytes(out))

    def _check_preconditions(self, rid: int) -> bytes:
        status = self.options.precondition_status & 0xFF
        reason = self.options.precondition_reason.encode("ascii", "replace") if status else b""
        log.info("%s: programming preconditions 0x%04X: status 0x%02X", self.name, rid, status)
        return routine_response(rid, bytes([status]) + reason)

    def _parse_address_length(self, record: bytes) -> tuple[int, int]:
        if not record:
            raise Nrc(0x13)
        alfid = record[0]
        n_len, n_addr = alfid >> 4, alfid & 0x0F
        if n_len == 0 or n_addr == 0 or n_len > 4 or n_addr > 4:
            raise Nrc(0x31)
        if len(record) != 1 + n_addr + n_len:
            raise Nrc(0x13)
        address = int.from_bytes(record[1 : 1 + n_addr], "big")
        length = int.from_bytes(record[1 + n_addr :], "big")
        return address, length

    def _erase_ranges(self, record: bytes) -> list[tuple[int, int]]:
        regions = self.ecu.uds.memory_regions
        if self._erase_record == "none":
            if record:
                raise Nrc(0x13)
            return [(r.start, r.length) for r in regions]
        if self._erase_record == "segment_index":
            if len(record) != 1:
                raise Nrc(0x13)
            if record[0] >= len(regions):
                raise Nrc(0x31)
            return [(regions[record[0]].start, regions[record[0]].length)]
        return [self._parse_address_length(record)]

    def _start_erase(self, record: bytes, entry: Stack) -> bytes | None:
        sectors: list[tuple[int, int]] = []
        regions: list[str] = []
        try:
            for address, length in self._erase_ranges(record):
                sectors += self.memory.sectors_for(address, length)
                region = self.memory.region_of(address, length)
                if region is not None and region.name not in regions:
                    regions.append(region.name)
        except FlashAccessError as exc:
            log.info("%s: erase refused: %s", self.name, exc)
            if exc.kind == "protected":
                self._violation(V_PROTECTED, f"erase refused (NRC 0x31): {exc}")
            raise Nrc(0x31) from exc
        again = [start for start, _ in sectors if self._sector_erases.get(start)]
        if again and self.options.reerase != "allow":
            listed = ", ".join(f"0x{a:08X}" for a in again[:4]) + (" …" if len(again) > 4 else "")
            refuse = self.options.reerase == "refuse"
            self._violation(
                V_REERASE,
                f"{len(again)} sector(s) erased a second time in this programming session "
                f"({listed}){'; refused with NRC 0x22' if refuse else ''}",
            )
            if refuse:
                raise Nrc(0x22)
        for start, _ in sectors:
            self._sector_erases[start] = self._sector_erases.get(start, 0) + 1
        for name in regions:
            self._region_erases[name] = self._region_erases.get(name, 0) + 1
        fail = self._faults.take(StepKind.ERASE.value, "fail") is not None
        kib = sum(size for _, size in sectors) / 1024
        opts = self.options
        ms = kib * opts.erase_ms_per_kib + len(sectors) * opts.erase_ms_per_sector
        duration_s = max(opts.erase_min_ms, ms) / 1000
        now = time.monotonic()
        self._persist.app_valid = False
        self._save_state()
        self._erase = Erase(
            stack=entry.stack,
            sectors=sectors,
            started_at=now,
            done_at=now + duration_s,
            next_pending_at=now,
            fail=fail,
        )
        log.info(
            "%s: erasing %d sectors (%.0f KiB, %.0f ms)",
            self.name,
            len(sectors),
            kib,
            duration_s * 1000,
        )
        self._progress_erase(now)
        return None

    def _check(self, record: bytes) -> bytes:
        expected_len = checksum_length(self._checksum_kind)
        if len(record) != expected_len:
            raise Nrc(0x13)
        if not self._downloaded:
            self._violation(V_SEQUENCE, "check routine before anything was downloaded")
            raise Nrc(0x24)
        # The union of what was downloaded and what the tester declared its image through the
        # sector-checksum routine (a delta writes a part of it), each byte once.
        spans: list[list[int]] = []
        for a, n in sorted(self._downloaded):
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], a + n)
            else:
                spans.append([a, a + n])
        data = b"".join(self.memory.read(a, b - a) for a, b in spans)
        ok = checksum(self._checksum_kind, data) == bytes(record)
        self._persist.app_valid = ok
        self._save_state()
        log.info("%s: check routine: %s", self.name, "OK" if ok else "MISMATCH")
        return routine_response(self._check_routine, bytes([0 if ok else 1]))

    # -- download --------------------------------------------------------------------------
    def _svc_request_download(self, data: bytes, entry: Stack) -> bytes | None:
        # ISO 14229-1 RequestDownload NRC order: 0x13 length, 0x31 format/range, 0x33
        # security, 0x70 not accepted (a download active, a protected range).
        del entry
        decompressor = self._decompressor_for(data[1])
        address, size = self._parse_address_length(data[2:])
        try:
            self.memory.check_writable(address, size)
            refused = None
        except FlashAccessError as exc:
            if exc.kind == "out_of_range":
                log.info("%s: download refused: %s", self.name, exc)
                raise Nrc(0x31) from exc
            refused = exc
        self._require_security()
        if self._download is not None:
            raise Nrc(0x70)
        if refused is not None:
            log.info("%s: download refused: %s", self.name, refused)
            raise Nrc(0x70)
        self._download = Download(address=address, size=size, decompressor=decompressor)
        self._persist.app_valid = False
        self._save_state()
        n = max(2, (self._max_block.bit_length() + 7) // 8)
        return bytes([0x74, n << 4]) + self._max_block.to_bytes(n, "big")

    def _decompressor_for(self, dfi: int) -> Decompressor | None:
        """The decoder for RequestDownload's dataFormatIdentifier, or NRC 0x31.

        High nibble = compressionMethod (the EA's `compression.method_id`, 0 = none), low
        nibble = encryptingMethod (not supported: 0 only).
        """
        method, encryption = dfi >> 4, dfi & 0x0F
        if encryption:
            raise Nrc(0x31)
        if method == 0:
            return None
        comp = self.ecu.uds.compression
        if comp is None or comp.method_id != method:
            log.info("%s: download refused: unknown compression method %d", self.name, method)
            raise Nrc(0x31)
        return Decompressor(comp.codec)

    def _svc_transfer_data(self, data: bytes, entry: Stack) -> bytes | None:
        # No security check of its own (ISO 14229-1 §14.4): only a download that passed it
        # can be active, and a session change ends both.
        dl = self._download
        if dl is None:
            self._violation(V_TRANSFER_SEQUENCE, "TransferData without a RequestDownload")
            raise Nrc(0x24)
        counter = data[1]
        payload = bytes(data[2:])
        if len(payload) > self._max_block - 2:
            raise Nrc(0x13)
        expected = (dl.counter + 1) & 0xFF
        if counter != expected:
            if dl.blocks > 0 and counter == dl.counter:
                return bytes([0x76, counter])  # repeated previous block: already written
            self._violation(
                V_TRANSFER_SEQUENCE,
                f"TransferData block counter 0x{counter:02X}, expected 0x{expected:02X}",
            )
            raise Nrc(0x73)
        if not payload:
            raise Nrc(0x13)
        if dl.decompressor is not None:
            try:
                payload = dl.decompressor.feed(payload)
            except CompressionError as exc:
                log.info("%s: block 0x%02X does not decode: %s", self.name, counter, exc)
                raise Nrc(0x72) from exc
        if dl.written + len(payload) > dl.size:
            raise Nrc(0x71)
        address = dl.address + dl.written
        loss = self._faults.peek(StepKind.TRANSFER_DATA.value, "power_loss")
        if loss is not None and self._bytes_written + len(payload) > int(loss.arg or 0):
            self._faults.take(StepKind.TRANSFER_DATA.value, "power_loss")
            keep = max(0, int(loss.arg or 0) - self._bytes_written)
            with contextlib.suppress(FlashAccessError):
                self.memory.program(address, payload[:keep])
            self._bytes_written += keep
            log.info("%s: POWER LOSS after %d transferred bytes (fault)", self.name, keep)
            self._persist.app_valid = False
            self._reboot(self._reset_time_ms(), (BOOTLOADER, SESSION_DEFAULT))
            return None
        try:
            if payload:  # a compressed block may decode to nothing yet (the codec buffers)
                self.memory.program(address, payload)
        except FlashAccessError as exc:
            log.info("%s: programming failed: %s", self.name, exc)
            raise Nrc(0x72) from exc
        dl.written += len(payload)
        dl.counter = counter
        dl.blocks += 1
        self._bytes_written += len(payload)
        response = bytes([0x76, counter])
        delay_ms = len(payload) / 1024 * self.options.programming_ms_per_kib
        if delay_ms > 0:
            self._owe_busy(entry, data, response, delay_ms)
            return None
        return response

    def _svc_transfer_exit(self, data: bytes, entry: Stack) -> bytes | None:
        del entry
        if len(data) != 1:
            raise Nrc(0x13)
        dl = self._download
        if dl is not None and dl.decompressor is not None and dl.written == dl.size:
            try:
                dl.decompressor.finish()
            except CompressionError as exc:
                self._violation(V_TRANSFER_SEQUENCE, f"RequestTransferExit: {exc}")
                raise Nrc(0x24) from exc
        if dl is None or dl.written != dl.size:
            self._violation(
                V_TRANSFER_SEQUENCE,
                "RequestTransferExit without a download"
                if dl is None
                else f"RequestTransferExit after 0x{dl.written:X} of 0x{dl.size:X} bytes",
            )
            raise Nrc(0x24)
        log.info(
            "%s: download of 0x%X bytes at 0x%08X complete (%d blocks)",
            self.name,
            dl.size,
            dl.address,
            dl.blocks,
        )
        self._downloaded.append((dl.address, dl.size))
        self._download = None
        return bytes([0x77])

    def _progress_erase(self, now: float) -> None:
        """Worker loop: erase the sectors due by `now`; answer 0x78 or the final response."""
        op = self._erase
        assert op is not None
        total = len(op.sectors)
        span = max(op.done_at - op.started_at, 1e-6)
        target = total if now >= op.done_at else int(total * (now - op.started_at) / span)
        while op.erased < target:
            start, size = op.sectors[op.erased]
            self.memory.erase_sector(start, size)
            op.erased += 1
        if op.erased >= total:
            self._erase = None
            if op.fail:
                self._respond(op.stack, self._nrc_bytes(0x31, 0x72), False)
            else:
                self._respond(op.stack, routine_response(self._erase_routine, b"\x00"), False)
            return
        if now >= op.next_pending_at:
            op.next_pending_at = now + self.options.pending_interval_ms / 1000.0
            self._respond(op.stack, self._nrc_bytes(0x31, 0x78), False)
