"""Bus logs that do not repeat the firmware: TransferData payload kept by reference.

A flash's BLF bus log holds every frame of the session, and most of them carry image bytes
(TransferData) that the workspace already stores as the repository version's file. Stored as
is, the log costs about two bytes per flashed byte (issue 21). Here:

- `TransferElider` watches the tester's request IDs while the log is written. It follows
  RequestDownload (0x34: the address; a compressed or encrypted download is left alone) and
  every TransferData (0x36) request, block sequence counter included (a repeated counter is the
  same block again, ISO 14229-1 §14.5). The payload bytes of each frame that equal the image at
  that address are zeroed in the log's copy, and one *run* per TransferData request says
  which: `[frame, can_id, extended, prefix, address, length, crc32]`. `frame` is the index of
  the request's first frame in the log, `prefix` the ISO-TP address bytes in front of the PCI
  (extended/mixed addressing), `length` the payload bytes zeroed (a prefix of the request's
  data, whole frames), `crc32` their zlib CRC-32. A frame that does not match is kept as it
  went on the bus, and ends the run.
- `restore_frames` puts the image bytes back into exactly those frames and checks each run's
  CRC-32, so the rebuilt log is frame for frame what went on the bus, or an error naming the
  run that does not match (a different image, an edited record).

Both walk the frames with the same rules (`_TesterFrames`), so the frames the elider zeroed are
the frames the restore fills. Thread use: an elider belongs to one bus log (its caller holds
the log's lock); restore is a pure function of its inputs.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fota_studio.core.errors import WorkspaceError

SID_REQUEST_DOWNLOAD = 0x34
SID_TRANSFER_DATA = 0x36
SID_REQUEST_TRANSFER_EXIT = 0x37
#: The fields of one run, in the order a run list holds them.
RUN_FIELDS = ("frame", "can_id", "extended", "prefix", "address", "length", "crc32")
#: First bytes of a non-TransferData request kept to read its header (0x34 needs at most 3 + 15).
_HEADER_BYTES = 24


class SegmentLike(Protocol):
    """What an image segment offers (core/firmware.py Segment)."""

    @property
    def address(self) -> int:
        """Start address."""
        ...

    @property
    def data(self) -> bytes:
        """The bytes from `address` on."""
        ...


class ImageView:
    """Read-only, copy-free access to an image's bytes by address."""

    def __init__(self, segments: Sequence[SegmentLike]) -> None:
        parts = sorted((int(s.address), memoryview(bytes(s.data))) for s in segments)
        self._starts = [a for a, _ in parts]
        self._views = [v for _, v in parts]

    def view(self, address: int, length: int) -> memoryview | None:
        """The `length` bytes at `address` when one segment holds them all, else None."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0 or length < 0:
            return None
        off = address - self._starts[i]
        data = self._views[i]
        if off + length > len(data):
            return None
        return data[off : off + length]


@dataclass(frozen=True)
class Tester:
    """One tester request address whose TransferData the elider follows."""

    can_id: int
    extended: bool
    #: ISO-TP address bytes before the PCI (0 normal/fixed, 1 extended/mixed addressing).
    prefix: int = 0


class _Message:
    """The tester request being followed on one CAN ID (its PCI-level framing)."""

    __slots__ = ("header", "key", "left", "run", "start_frame", "transfer")

    def __init__(self, key: tuple[int, bool]) -> None:
        self.key = key
        self.header = bytearray()  # first bytes of a non-TransferData request
        self.left = 0  # message bytes still to come in consecutive frames
        self.transfer = False
        self.run: _Run | None = None
        self.start_frame = 0


class _Run:
    """One TransferData request being elided (or restored)."""

    __slots__ = ("active", "address", "crc", "frame", "limit", "pos", "view")

    def __init__(self, frame: int, address: int, view: memoryview, limit: int) -> None:
        self.frame = frame
        self.address = address
        self.view = view
        self.pos = 0  # payload bytes elided / restored so far
        self.crc = 0
        self.limit = limit  # payload bytes the run may cover
        self.active = True


def _first_frame(data: bytearray, p: int) -> tuple[int, int]:
    """(message length, offset of its first byte) of a first frame at PCI offset `p`."""
    length = ((data[p] & 0x0F) << 8) | data[p + 1]
    if length == 0 and len(data) >= p + 6:  # CAN FD escape: 32-bit length
        return int.from_bytes(data[p + 2 : p + 6], "big"), p + 6
    return length, p + 2


def _single_frame(data: bytearray, p: int) -> tuple[int, int]:
    """(message length, offset of its first byte) of a single frame at PCI offset `p`."""
    length = data[p] & 0x0F
    if length == 0 and len(data) > p + 1:  # CAN FD escape: length in the next byte
        return data[p + 1], p + 2
    return length, p + 1


class TransferElider:
    """Zeroes the TransferData payload bytes that equal the image, recording runs (above).

    `feed(msg, index)` is called for every frame in log order BEFORE the frame is written, and
    may change `msg.data` in place (give it the log's own copy). The journal (`set_journal`),
    when set, is called with ("start", [frame, can_id, extended, prefix, address]) before the
    first zeroed frame of a run is written and with ("run", run) when the run ends, so a
    killed process leaves enough to put the bytes back (`infra/flash_journal.py`).
    """

    def __init__(
        self,
        image: ImageView,
        *,
        journal: Callable[[str, list[int]], None] | None = None,
    ) -> None:
        self.image = image
        self.runs: list[list[int]] = []
        self._journal = journal
        self._testers: dict[tuple[int, bool], Tester] = {}
        self._messages: dict[tuple[int, bool], _Message] = {}
        # Per tester: the download region (next new block's address), the last block seen.
        self._next: dict[tuple[int, bool], int | None] = {}
        self._last: dict[tuple[int, bool], tuple[int, int]] = {}

    def set_journal(self, journal: Callable[[str, list[int]], None] | None) -> None:
        """Call `journal` with each run's start and end (see the class docstring)."""
        self._journal = journal

    def watch(self, tester: Tester) -> None:
        """Follow the TransferData requests the tester sends on `tester.can_id`."""
        key = (tester.can_id, tester.extended)
        self._testers[key] = tester
        self._messages.setdefault(key, _Message(key))
        self._next.setdefault(key, None)

    @property
    def bytes_elided(self) -> int:
        """Payload bytes kept by reference so far."""
        return sum(r[5] for r in self.runs)

    def feed(self, msg: Any, index: int) -> None:
        """Look at frame `index` of the log; zero its payload bytes when they are image bytes."""
        if msg.is_rx or msg.is_error_frame or msg.is_remote_frame:
            return
        key = (msg.arbitration_id, msg.is_extended_id)
        tester = self._testers.get(key)
        if tester is None:
            return
        data = msg.data
        p = tester.prefix
        if len(data) <= p + 1:
            return
        kind = data[p] >> 4
        m = self._messages[key]
        if kind == 2:
            self._consecutive(m, data, p + 1)
        elif kind in (0, 1):
            self._end(m)
            if kind == 0:
                length, start = _single_frame(data, p)
                m.left = 0
                m.transfer = False
                m.run = None
                self._request(key, bytes(data[start : start + length]))
            else:
                self._first(key, m, data, p, index)

    def close(self) -> None:
        """End the runs still open (the log is being closed)."""
        for m in self._messages.values():
            self._end(m)

    # -- framing ---------------------------------------------------------------------------

    def _first(
        self, key: tuple[int, bool], m: _Message, data: bytearray, p: int, index: int
    ) -> None:
        length, start = _first_frame(data, p)
        chunk_end = min(len(data), start + length)
        if length >= 3 and chunk_end > start + 2 and data[start] == SID_TRANSFER_DATA:
            m.transfer = True
            m.left = length - (chunk_end - start)
            m.start_frame = index
            self._start_run(key, m, data[start + 1], length - 2, index)
            self._elide(m, data, start + 2, chunk_end)
            return
        m.transfer = False
        m.run = None
        m.header = bytearray(data[start:chunk_end])
        m.left = length - (chunk_end - start)
        if m.left <= 0:
            self._request(key, bytes(m.header))

    def _consecutive(self, m: _Message, data: bytearray, first: int) -> None:
        if m.left <= 0:
            return
        take = min(len(data) - first, m.left)
        m.left -= take
        if m.transfer:
            self._elide(m, data, first, first + take)
            if m.left <= 0:
                self._end(m)
            return
        if len(m.header) < _HEADER_BYTES:
            m.header += data[first : first + take]
        if m.left <= 0:
            self._request(m.key, bytes(m.header))

    # -- UDS -------------------------------------------------------------------------------

    def _request(self, key: tuple[int, bool], req: bytes) -> None:
        """A complete non-TransferData request (its first bytes): follow the download region."""
        if not req:
            return
        sid = req[0]
        if sid == SID_REQUEST_DOWNLOAD:
            self._next[key] = _download_address(req)
            self._last.pop(key, None)
        elif sid == SID_REQUEST_TRANSFER_EXIT:
            self._next[key] = None
            self._last.pop(key, None)

    def _start_run(
        self, key: tuple[int, bool], m: _Message, counter: int, payload: int, index: int
    ) -> None:
        base = self._next.get(key)
        if base is None:
            m.run = None
            return
        last = self._last.get(key)
        address = last[1] if last is not None and last[0] == counter else base
        self._last[key] = (counter, address)
        self._next[key] = address + payload
        view = self.image.view(address, payload)
        if view is None:
            m.run = None
            return
        m.run = _Run(index, address, view, payload)
        if self._journal is not None:
            t = self._testers[key]
            self._journal("start", [index, t.can_id, int(t.extended), t.prefix, address])

    def _elide(self, m: _Message, data: bytearray, a: int, b: int) -> None:
        run = m.run
        if run is None or not run.active:
            return
        n = min(b - a, run.limit - run.pos)
        if n <= 0:
            return
        chunk = data[a : a + n]
        if run.view[run.pos : run.pos + n] != chunk:
            self._end(m)  # kept as sent; nothing after it is elided in this request
            return
        run.crc = zlib.crc32(chunk, run.crc)
        run.pos += n
        data[a : a + n] = bytes(n)

    def _end(self, m: _Message) -> None:
        run = m.run
        if run is None or not run.active:
            return
        run.active = False
        t = self._testers[m.key]
        entry = [run.frame, t.can_id, int(t.extended), t.prefix, run.address, run.pos, run.crc]
        if run.pos:
            self.runs.append(entry)
        if self._journal is not None:
            self._journal("run", entry)


def _download_address(req: bytes) -> int | None:
    """The memory address of a plain RequestDownload; None when compressed/encrypted (the
    bytes on the bus are not the image's) or malformed."""
    if len(req) < 3 or req[1] != 0x00:
        return None
    alfid = req[2]
    n_addr = alfid & 0x0F
    if n_addr == 0 or len(req) < 3 + n_addr:
        return None
    return int.from_bytes(req[3 : 3 + n_addr], "big")


# -- restore -----------------------------------------------------------------------------------


class BuslogRestoreError(WorkspaceError):
    """A bus log's elided payload cannot be put back exactly as it went on the bus."""


def restore_frames(
    frames: Iterable[Any],
    runs: Sequence[Sequence[int]],
    image: ImageView,
    *,
    open_run: Sequence[int] | None = None,
    partial: bool = False,
    what: str = "bus log",
) -> Iterator[Any]:
    """Yield `frames` with the image bytes of every run put back (frames are changed in place).

    Each run's bytes must re-hash to its CRC-32, and must be complete, else BuslogRestoreError
    naming the run. `open_run` ([frame, can_id, extended, prefix, address], from the journal of
    a killed job) is a run whose end was never written: every payload byte of its request that
    is in the log was elided (the elider journals a run's end as soon as one frame does not
    match), so it is filled up to the request's end or the log's end, without a CRC.
    `partial`: the log was cut short (a killed job): runs past its end are left out and runs it
    ends inside are filled as far as it goes, unchecked.
    """
    todo = sorted((list(r) for r in runs), key=lambda r: r[0])
    if open_run is not None:
        todo.append([*open_run[:5], -1, -1])
        todo.sort(key=lambda r: r[0])
    k = 0
    count = 0
    # key -> [run, image bytes, bytes put back, their CRC-32, message bytes left, first frame]
    active: dict[tuple[int, bool], list[Any]] = {}
    for index, msg in enumerate(frames):
        count = index + 1
        while k < len(todo) and todo[k][0] == index:
            _restore_start(msg, todo[k], image, active, what)
            k += 1
        if active and not msg.is_rx:
            state = active.get((msg.arbitration_id, msg.is_extended_id))
            if state is not None and state[5] != index:
                _restore_consecutive(msg, state, active, what)
        yield msg
    if partial:
        return
    if k < len(todo):
        raise BuslogRestoreError(
            f"{what}: run at frame {todo[k][0]} is past the log's end ({count} frames)",
            hint="the bus log blob is not the one the record names; run `fota-studio records "
            "verify`",
        )
    for state in list(active.values()):
        _restore_finish(state, active, what)


def _restore_start(
    msg: Any, run: list[int], image: ImageView, active: dict[tuple[int, bool], list[Any]], what: str
) -> None:
    frame, can_id, extended, prefix, address, length, _crc = run
    key = (can_id, bool(extended))
    if key in active:
        _restore_finish(active[key], active, what)
    data = msg.data
    ok = (
        not msg.is_rx
        and (msg.arbitration_id, msg.is_extended_id) == key
        and len(data) > prefix + 2
        and data[prefix] >> 4 == 1
    )
    if ok:
        msg_len, start = _first_frame(data, prefix)
        ok = data[start] == SID_TRANSFER_DATA and msg_len >= 3
    if not ok:
        raise BuslogRestoreError(
            f"{what}: frame {frame} is not the TransferData first frame on 0x{can_id:X} its "
            "record names",
            hint="the record or its bus log was changed; run `fota-studio records verify`",
        )
    payload = msg_len - 2
    want = payload if length < 0 else length
    view = image.view(address, want)
    if view is None or want > payload:
        raise BuslogRestoreError(
            f"{what}: run at frame {frame} names {want} bytes at 0x{address:X}, which the "
            "image does not hold",
            hint="the record names another image; run `fota-studio records verify`",
        )
    state: list[Any] = [run, view, 0, 0, msg_len - (min(len(data), start + msg_len) - start), frame]
    active[key] = state
    _fill(data, start + 2, min(len(data), start + msg_len), state)
    if state[2] >= len(view):
        _restore_finish(state, active, what)


def _restore_consecutive(
    msg: Any, state: list[Any], active: dict[tuple[int, bool], list[Any]], what: str
) -> None:
    run = state[0]
    prefix = run[3]
    data = msg.data
    if len(data) <= prefix + 1:
        return
    kind = data[prefix] >> 4
    if kind != 2:
        if kind in (0, 1):  # a new request before the run's bytes were all put back
            _restore_finish(state, active, what)
        return
    take = min(len(data) - prefix - 1, state[4])
    state[4] -= take
    _fill(data, prefix + 1, prefix + 1 + take, state)
    if state[2] >= len(state[1]) or state[4] <= 0:
        _restore_finish(state, active, what)


def _fill(data: bytearray, a: int, b: int, state: list[Any]) -> None:
    view = state[1]
    n = min(b - a, len(view) - state[2])
    if n <= 0:
        return
    chunk = view[state[2] : state[2] + n]
    data[a : a + n] = chunk
    state[3] = zlib.crc32(chunk, state[3])
    state[2] += n


def _restore_finish(state: list[Any], active: dict[tuple[int, bool], list[Any]], what: str) -> None:
    run = state[0]
    active.pop((run[1], bool(run[2])), None)
    if run[5] < 0:  # the open run of a killed job: as much as the log holds
        return
    if state[2] != run[5]:
        raise BuslogRestoreError(
            f"{what}: run at frame {run[0]} put back {state[2]} of its {run[5]} bytes (the "
            "log's frames do not hold them)",
            hint="the record or its bus log was changed; run `fota-studio records verify`",
        )
    if state[3] != run[6]:
        raise BuslogRestoreError(
            f"{what}: the image bytes of the run at frame {run[0]} (0x{run[4]:X}, {run[5]} "
            f"bytes) do not match the CRC-32 the record holds (0x{state[3]:08X} ≠ "
            f"0x{run[6]:08X})",
            hint="the image the record names is not the one that was flashed; run "
            "`fota-studio records verify`",
        )
