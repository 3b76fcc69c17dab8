"""The HMI demo panel, the OEM panel and the TCU bench talking CANopen to each other on a
virtual bus, as an OEM would test its display against the TCU interface step by step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import can

from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.tcu_node import TcuNode
from fota_studio.ui.panels.hmi_panel import HmiPanel, downtime_text, final_reason, final_text
from fota_studio.ui.panels.oem_panel import OemPanel, TcuBenchPanel


def test_hmi_and_oem_against_the_tcu_bench(qtbot, can_channel: str) -> None:
    bench = TcuBenchPanel()
    hmi = HmiPanel()
    oem = OemPanel()
    for w in (bench, hmi, oem):
        qtbot.addWidget(w)
    hmi_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    oem_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        bench.start(BusSettings(interface="virtual", channel=can_channel))
        hmi.attach_bus(hmi_bus)
        oem.attach_bus(oem_bus)
        bench.offered_edit.setText("3.2.0")
        with qtbot.waitSignal(hmi.offer_shown, timeout=5000):
            bench.offer()
        assert hmi.headline.text() == "Update available"
        assert "3.1.0 → 3.2.0" in hmi.versions_label.text()
        assert hmi.downtime_label.text().startswith("Machine unavailable for about ")
        assert hmi.approve_button.isEnabled() and hmi.approve_button.minimumHeight() >= 60
        with qtbot.waitSignal(bench.decision_seen, timeout=5000) as seen:
            hmi.approve_button.click()
        assert seen.args == [fo.OPERATOR_DECISION, fo.DECISION_APPROVE]
        bench.simulate_flash()
        qtbot.waitUntil(lambda: not hmi.progress.isHidden(), timeout=5000)
        qtbot.waitUntil(lambda: hmi.progress.value() >= 50, timeout=10_000)
        bench.verify_button.click()
        qtbot.waitUntil(lambda: hmi.last_status == fo.STATUS_WAITING_VERIFICATION, timeout=5000)
        with qtbot.waitSignal(bench.decision_seen, timeout=5000) as verdict:
            oem.healthy_button.click()
        assert verdict.args == [fo.OEM_VERIFICATION, fo.VERDICT_HEALTHY]
        with qtbot.waitSignal(hmi.final_shown, timeout=5000) as final:
            bench.success_button.click()
        assert final.args == [fo.STATUS_SUCCESSFUL]
        assert "successful" in hmi.result_label.text().lower()
    finally:
        hmi.shutdown()
        oem.shutdown()
        bench.stop()
        hmi_bus.shutdown()
        oem_bus.shutdown()


@contextlib.contextmanager
def _bench_and_hmi(qtbot, can_channel: str) -> Iterator[tuple[TcuBenchPanel, HmiPanel, TcuNode]]:  # type: ignore[no-untyped-def]
    """The TCU bench started on `can_channel` and an HMI panel on its own bus instance there;
    (bench, HMI, the bench's TCU node), all stopped afterwards."""
    bench = TcuBenchPanel()
    hmi = HmiPanel()
    for w in (bench, hmi):
        qtbot.addWidget(w)
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        tcu = bench.start(BusSettings(interface="virtual", channel=can_channel))
        hmi.attach_bus(bus)
        yield bench, hmi, tcu
    finally:
        hmi.shutdown()
        bench.stop()
        bus.shutdown()


def test_decision_refused_without_offer(qtbot, can_channel: str) -> None:
    with _bench_and_hmi(qtbot, can_channel) as (_bench, hmi, _tcu):
        hmi._decide(fo.DECISION_APPROVE)  # no offer: the TCU aborts with 0x08000022
        qtbot.waitUntil(lambda: "not accepted" in hmi.result_label.text(), timeout=5000)


def test_downtime_reads_like_an_operator_would_say_it() -> None:
    assert downtime_text(9) == "9 s"
    assert downtime_text(89) == "89 s"
    assert downtime_text(90) == "2 min"  # rounded up
    assert downtime_text(600) == "10 min"
    assert downtime_text(3600) == "1 h"
    assert downtime_text(4801) == "1 h 21 min"


def _offer_and_approve(qtbot, bench: TcuBenchPanel, hmi: HmiPanel) -> None:  # type: ignore[no-untyped-def]
    bench.offered_edit.setText("3.2.1")
    with qtbot.waitSignal(hmi.offer_shown, timeout=5000):
        bench.offer()
    with qtbot.waitSignal(hmi.decision_sent, timeout=5000):
        hmi.approve_button.click()


def test_hmi_text_follows_the_real_status(qtbot, can_channel: str) -> None:
    """Issue 15 point 7: "Approved. Waiting for the TCU…" must not stay during the flash."""
    with _bench_and_hmi(qtbot, can_channel) as (bench, hmi, _tcu):
        _offer_and_approve(qtbot, bench, hmi)
        assert hmi.result_label.text() == "Approved. Waiting for the TCU…"
        assert not hmi.approve_button.isEnabled()
        bench.simulate_flash()
        qtbot.waitUntil(lambda: hmi.last_status == fo.STATUS_FLASHING, timeout=5000)
        assert "Waiting for the TCU" not in hmi.result_label.text()
        assert hmi.headline.text() == "Updating… do not switch off"
        assert "VCU" in hmi.result_label.text()
        bench.verify_button.click()
        qtbot.waitUntil(lambda: hmi.last_status == fo.STATUS_WAITING_VERIFICATION, timeout=5000)
        assert hmi.headline.text() == "Checking the new software…"
        assert "Writing" not in hmi.result_label.text()


def test_hmi_shows_the_real_failure_reason(qtbot, can_channel: str) -> None:
    """On failure the HMI shows the reason the TCU logged (a version mismatch), not the coarse
    last_error text "no response from the ECU" the code alone gives."""
    with _bench_and_hmi(qtbot, can_channel) as (bench, hmi, tcu):
        _offer_and_approve(qtbot, bench, hmi)
        bench.simulate_flash()
        qtbot.waitUntil(lambda: hmi.last_status == fo.STATUS_FLASHING, timeout=5000)
        reason = "flash failed at verify: the ECU reports version 3.2.0, expected 3.2.1"
        tcu.append_log(f"12:00:01 final: Failed (flash_failed: {reason})")
        tcu.set_last_error(fo.ERROR_NO_RESPONSE)
        with qtbot.waitSignal(hmi.final_shown, timeout=5000):
            tcu.set_status(fo.STATUS_FAILED)
        text = hmi.result_label.text()
        assert "reports version 3.2.0, expected 3.2.1" in text, text
        assert "no response" not in text
        assert hmi.headline.text() == "Failed"
        assert hmi.progress.isHidden()


def test_final_reason_and_texts() -> None:
    log = (
        "12:00:00 checkpoint 1: approved\n"
        "12:00:09 final: Failed (flash_failed: flash failed at transfer: P2 timeout (block 3))\n"
    )
    assert final_reason(log) == "flash failed at transfer: P2 timeout (block 3)"
    assert final_reason("12:00:00 final: Successful\n") == ""
    assert final_reason("") == ""
    assert final_text(fo.STATUS_FAILED, fo.ERROR_NO_RESPONSE, "", None) == (
        "Failed: no response from the ECU (ISO-TP / P2 timeout)"
    )
    rejected = final_text(fo.STATUS_REJECTED, fo.ERROR_REJECTED, "", None)
    assert "rejected" in rejected.lower() and rejected.lower().count("rejected") == 1


def test_hmi_grows_with_the_window(qtbot) -> None:
    """The display's text grows as its space grows (issue 15: it used to shrink)."""
    hmi = HmiPanel()
    qtbot.addWidget(hmi)
    hmi.resize(420, 360)
    hmi.show()
    qtbot.waitExposed(hmi)
    small_px, small_h = hmi.headline.font().pixelSize(), hmi.view.height()
    hmi.resize(1400, 1000)
    qtbot.waitUntil(lambda: hmi.view.height() > small_h, timeout=2000)
    assert hmi.headline.font().pixelSize() > small_px
    assert hmi.approve_button.height() >= hmi.approve_button.minimumHeight() >= 60
    hmi.resize(420, 360)
    qtbot.waitUntil(lambda: hmi.headline.font().pixelSize() == small_px, timeout=2000)
    # The display takes the panel's height; the bus log is one click away.
    assert hmi.log_view.isHidden()
    hmi.log_button.click()
    assert not hmi.log_view.isHidden()


def test_an_offer_the_client_knew_before_the_panel_attached_is_shown(
    qtbot,
    can_channel: str,  # type: ignore[no-untyped-def]
) -> None:
    """The client's listener only hears changes: a panel attached after the client learnt of
    the offer (the demo bench's client, started before the GUI attaches) still shows it."""
    from fota_studio.protocols.fota_client import FotaClient

    bench = TcuBenchPanel()
    hmi = HmiPanel()
    for w in (bench, hmi):
        qtbot.addWidget(w)
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    client = FotaClient(bus, poll_period_s=None)
    try:
        bench.start(BusSettings(interface="virtual", channel=can_channel))
        client.start()
        bench.offer()
        qtbot.waitUntil(
            lambda: (
                client.state is not None
                and client.state.update_available == fo.UPDATE_WAITING_APPROVAL
            ),
            timeout=5000,
        )
        with qtbot.waitSignal(hmi.offer_shown, timeout=5000):
            hmi.attach_client(client)
        assert hmi.approve_button.isEnabled()
    finally:
        hmi.shutdown()
        client.stop()
        bench.stop()
        bus.shutdown()
