"""UdsLink's one exchange path (protocols/uds_link.py) on real python-can `virtual` buses with
real can-isotp peers: late answers and duplicates are skipped instead of failing a good flash
(issue 13 point 8, reproduced exactly through the chaos ECU's late mode), 0x21/0x78 handled the
same way by `request`, `transfer_data` and `functional_request`, one flush, errors that name the
step and say what to do."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import can
import pytest

from fota_studio.core.ea import EcuDefinition
from fota_studio.core.errors import TransferError, UdsNegativeResponseError
from fota_studio.protocols.isotp_link import DirectNotifierStack, IsoTpLink, build_address
from fota_studio.protocols.uds_link import NO_RESPONSE_HINT, Exchange, UdsLink
from fota_studio.sim.chaos import ChaosEcu, LateAnswers
from tests.fakes import sim_rig

#: What the scripted ECU answers to the n-th request it receives (0-based): a list of payloads.
Script = Callable[[bytes, int], list[bytes]]


@contextmanager
def scripted_ecu(ecu: EcuDefinition, channel: str, script: Script) -> Iterator[list[bytes]]:
    """A can-isotp peer on the ECU's bootloader IDs (physical and functional receivers, both
    answering physically) answering per `script`; yields the requests it received."""
    conn = ecu.connection
    bus = can.Bus(interface="virtual", channel=channel, ignore_config=True)
    notifier = can.Notifier(bus, [], timeout=0.05)
    stacks = [
        DirectNotifierStack(
            bus,
            notifier,
            address=build_address(conn, conn.bootloader, ecu_side=True, functional=functional),
            params={"tx_padding": 0xAA},
        )
        for functional in (False, True)
    ]
    for stack in stacks:
        stack.start()
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for stack in stacks:
                req = stack.recv(block=True, timeout=0.01)
                if req is None:
                    continue
                received.append(bytes(req))
                for answer in script(bytes(req), len(received) - 1):
                    stack.send(answer)

    thread = threading.Thread(target=serve, name="test-scripted-ecu", daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join(2.0)
        for stack in stacks:
            stack.stop()
        notifier.stop(timeout=0.1)
        bus.shutdown()


@contextmanager
def uds_link(
    ecu: EcuDefinition, channel: str, exchanges: list[Exchange], busy: list[str] | None = None
) -> Iterator[UdsLink]:
    """Our UdsLink on the ECU's bootloader IDs, recording every exchange."""
    conn = ecu.connection
    with sim_rig.tester_bus(channel) as (bus, notifier):
        link = UdsLink(
            IsoTpLink(bus, notifier, conn, conn.bootloader),
            ecu.uds,
            on_exchange=exchanges.append,
            on_busy=None if busy is None else busy.append,
        )
        link.open()
        try:
            yield link
        finally:
            link.close()


def test_transfer_data_skips_an_answer_to_the_previous_block(can_channel: str) -> None:
    """`76 09` (a duplicate / late answer) before `76 0A` is skipped, not taken for block 0x0A
    (the old fast path returned it and the flash failed: "acknowledged block counter 9")."""
    ecu = sim_rig.fast_ecu()
    exchanges: list[Exchange] = []

    def script(req: bytes, n: int) -> list[bytes]:
        return [b"\x76\x09", b"\x76" + req[1:2]]

    with scripted_ecu(ecu, can_channel, script), uds_link(ecu, can_channel, exchanges) as link:
        assert link.transfer_data("transfer_data", 0x0A, bytes(100)) == b"\x76\x0a"
    assert [e.skipped for e in exchanges] == [(b"\x76\x09",)]
    assert link.skipped_responses == 1


def test_transfer_data_returns_any_other_counter_to_the_caller(can_channel: str) -> None:
    """Only the PREVIOUS counter is a duplicate: another one is returned for the flash job to
    refuse (a wrong answer must never be hidden)."""
    ecu = sim_rig.fast_ecu()
    exchanges: list[Exchange] = []
    with (
        scripted_ecu(ecu, can_channel, lambda req, n: [b"\x76\x05"]),
        uds_link(ecu, can_channel, exchanges) as link,
    ):
        assert link.transfer_data("transfer_data", 0x0A, bytes(20)) == b"\x76\x05"


def test_busy_and_pending_while_a_repeat_is_pending(can_channel: str) -> None:
    """0x21 to one copy, then 0x78 and a late `76 <previous>` to the repeat: the block is
    repeated, the wait switches to P2*, the duplicate is skipped, block 0x0A acknowledged."""
    ecu = sim_rig.fast_ecu()
    exchanges: list[Exchange] = []
    busy: list[str] = []

    def script(req: bytes, n: int) -> list[bytes]:
        if n == 0:
            return [b"\x7f\x36\x21"]
        return [b"\x7f\x36\x78", b"\x76\x09", b"\x76\x0a"]

    with (
        scripted_ecu(ecu, can_channel, script) as received,
        uds_link(ecu, can_channel, exchanges, busy) as link,
    ):
        assert link.transfer_data("transfer_data", 0x0A, bytes(300)) == b"\x76\x0a"
    assert len(received) == 2 and received[0] == received[1]
    assert [e.nrc for e in exchanges] == [0x21, None]
    assert exchanges[1].pending_count == 1 and exchanges[1].skipped == (b"\x76\x09",)
    assert busy == ["transfer_data"]


def test_request_skips_late_answers_to_other_requests(can_channel: str) -> None:
    """A late answer to the previous request's service and the keeper's TesterPresent NRC are
    skipped; a response to a service nobody asked for is an error naming the step."""
    ecu = sim_rig.fast_ecu()
    exchanges: list[Exchange] = []

    def script(req: bytes, n: int) -> list[bytes]:
        if req[0] == 0x31:
            return []  # the erase answer comes late, during the next request
        if req[0] == 0x34:
            return [b"\x71\x01\xff\x00\x00", b"\x7f\x3e\x12", b"\x74\x20\x04\x02"]
        return [b"\x62\xf1\x95"]  # ReadDataByIdentifier answer to an 0x2E request

    with scripted_ecu(ecu, can_channel, script), uds_link(ecu, can_channel, exchanges) as link:
        with pytest.raises(TransferError, match="no response"):
            link.request("erase", 0x31, b"\xff\x00", subfunction=0x01)
        assert link.request("request_download", 0x34, b"\x00\x44" + bytes(8)) == (
            b"\x74\x20\x04\x02"
        )
        with pytest.raises(TransferError, match="invalid response") as info:
            link.request("fingerprint", 0x2E, b"\xf1\x5a\x01")
    assert exchanges[1].skipped == (b"\x71\x01\xff\x00\x00", b"\x7f\x3e\x12")
    assert info.value.step == "fingerprint" and info.value.hint


def test_request_and_functional_request_share_busy_repeat_and_nrc(can_channel: str) -> None:
    """The same loop under `request` and `functional_request`: 0x21 repeats (one recorded
    exchange per attempt), 0x78 extends the wait, a final NRC names step, service and hint."""
    ecu = sim_rig.fast_ecu()
    exchanges: list[Exchange] = []
    busy: list[str] = []

    def script(req: bytes, n: int) -> list[bytes]:
        if req[0] == 0x10:
            return [b"\x7f\x10\x21"] if n == 0 else [b"\x7f\x10\x78", b"\x50\x03\x00\x32\x01\xf4"]
        return [b"\x7f\x28\x22"]

    with (
        scripted_ecu(ecu, can_channel, script) as received,
        uds_link(ecu, can_channel, exchanges, busy) as link,
    ):
        assert link.request("extended_session", 0x10, subfunction=0x03) == (
            b"\x50\x03\x00\x32\x01\xf4"
        )
        with pytest.raises(UdsNegativeResponseError) as info:
            link.functional_request("comm_control_off", b"\x28\x03\x01")
    assert received[:2] == [b"\x10\x03", b"\x10\x03"] and received[2] == b"\x28\x03\x01"
    assert [(e.step, e.nrc) for e in exchanges] == [
        ("extended_session", 0x21),
        ("extended_session", None),
        ("comm_control_off", 0x22),
    ]
    assert busy == ["extended_session"]
    assert info.value.nrc == 0x22 and info.value.step == "comm_control_off"
    assert "preconditions" in (info.value.hint or "")


def test_stale_responses_are_flushed_before_each_request(can_channel: str) -> None:
    """An answer that arrived between exchanges is dropped by the one flush, not returned."""
    ecu = sim_rig.fast_ecu()
    exchanges: list[Exchange] = []

    def script(req: bytes, n: int) -> list[bytes]:
        # A suppressed request answered anyway (a sloppy ECU): the answer waits in the queue.
        return [b"\x7e\x00"] if req[0] == 0x3E else [b"\x51\x01"]

    with (
        scripted_ecu(ecu, can_channel, script) as received,
        uds_link(ecu, can_channel, exchanges) as link,
    ):
        assert (
            link.request("tester_present", 0x3E, subfunction=0x00, suppress_response=True) is None
        )
        deadline = threading.Event()
        while not link.link.stack.available() and not deadline.wait(0.01):
            pass
        assert link.request("reset", 0x11, subfunction=0x01) == b"\x51\x01"
    assert received == [b"\x3e\x80", b"\x11\x01"]
    assert link.flushed_responses == 1 and exchanges[1].skipped == ()


def test_silence_names_the_step_the_timer_and_what_to_do(can_channel: str) -> None:
    ecu = sim_rig.fast_ecu()
    ecu.uds.p2_timeout_ms = 50
    exchanges: list[Exchange] = []
    with (
        scripted_ecu(ecu, can_channel, lambda req, n: []),
        uds_link(ecu, can_channel, exchanges) as link,
        pytest.raises(TransferError) as info,
    ):
        link.transfer_data("transfer_data", 3, bytes(10))
    err = info.value
    assert err.step == "transfer_data" and err.hint == NO_RESPONSE_HINT
    assert "TransferData counter 0x03" in err.message and "P2 = 0.050 s" in err.message
    assert exchanges[0].response is None


def test_point8_late_answer_after_busy_repeat_is_skipped(
    can_channel: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 point 8, exactly: block 9's answer is late (its 0x78 lost) so P2 expires, the
    block is re-sent, the ECU answers that copy 0x21, the repeat gets the late `76 09`, and the
    ECU's answer to the repeat (`76 09` again) arrives while block 0x0A is pending. The old
    code took it as block 0x0A's answer and aborted a good flash."""
    ecu = sim_rig.fast_ecu()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION, (0x3000,))  # 12 blocks of 1 KiB
    late = LateAnswers(hold_counters=frozenset({9}), hold_ms=5000)
    caplog.set_level(logging.INFO, logger="fota_studio.protocols.uds_link")
    with sim_rig.sim_ecu(
        ecu, can_channel, tmp_path / "sim", cls=ChaosEcu, rate=0.0, late=late
    ) as sim:
        assert isinstance(sim, ChaosEcu)
        result, _ = sim_rig.flash(ecu, can_channel, image)
        assert result.ok, result.error
        assert sim_rig.memory_matches(sim, image)
        steps = [(kind, sent) for kind, _, sent in sim.mutations]
    assert steps == [
        ("held", ""),
        ("busy_repeat", "7f3621"),
        ("released", "7609"),
        ("late_repeat", "7609"),
    ]
    block9 = [
        e
        for e in result.record.exchanges
        if e.step == "transfer_data" and e.request_hex[2:4] == "09"
    ]
    assert [(e.response_hex, e.nrc) for e in block9] == [
        (None, None),
        ("7f3621", 0x21),
        ("7609", None),
    ]
    assert result.record.block_retries == 1
    assert any(
        "skipped 76 09 while waiting for the answer to TransferData counter 0x0A" in r.message
        for r in caplog.records
    )


def test_flash_through_late_and_duplicate_answers(can_channel: str, tmp_path: Path) -> None:
    """The chaos ECU's late mode at random (held blocks, 0x21 and 0x78 to repeats, late and
    duplicated answers) over a two-segment image: the flash succeeds, memory is exact."""
    ecu = sim_rig.fast_ecu()
    image = sim_rig.make_image(sim_rig.TARGET_VERSION, (0x3000, 0x1800))
    late = LateAnswers(hold_rate=0.15, duplicate_rate=0.3, pending_rate=0.5)
    with sim_rig.sim_ecu(
        ecu, can_channel, tmp_path / "sim", cls=ChaosEcu, rate=0.0, seed=5, late=late
    ) as sim:
        assert isinstance(sim, ChaosEcu)
        result, _ = sim_rig.flash(ecu, can_channel, image)
        assert result.ok, result.error
        assert sim_rig.memory_matches(sim, image) and sim.state().app_valid
        kinds = [kind for kind, _, _ in sim.mutations]
    assert {"held", "released", "duplicate"} <= set(kinds), kinds
    assert {"busy_repeat", "pending_repeat"} & set(kinds), kinds
    assert result.record.block_retries == kinds.count("held")


def test_busy_repeat_is_bounded(can_channel: str) -> None:
    """An ECU answering 0x21 for ever: the request is repeated `busy_retries` times, then the
    NRC is raised with a hint saying what to do."""
    ecu = sim_rig.fast_ecu()
    exchanges: list[Exchange] = []
    with (
        scripted_ecu(ecu, can_channel, lambda req, n: [b"\x7f\x31\x21"]) as received,
        uds_link(ecu, can_channel, exchanges) as link,
        pytest.raises(UdsNegativeResponseError) as info,
    ):
        link.request("erase", 0x31, b"\xff\x00", subfunction=0x01, busy_retries=2)
    assert len(received) == 3 and [e.nrc for e in exchanges] == [0x21] * 3
    assert info.value.nrc == 0x21 and "busy" in (info.value.hint or "")
