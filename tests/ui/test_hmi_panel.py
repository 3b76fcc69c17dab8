"""The HMI demo panel, the OEM panel and the TCU bench talking CANopen to each other on a
virtual bus, as an OEM would test its display against the TCU interface step by step."""

from __future__ import annotations

import can

from fota_studio.protocols import fota_objects as fo
from fota_studio.protocols.bus import BusSettings
from fota_studio.ui.panels.hmi_panel import HmiPanel, downtime_text
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


def test_decision_refused_without_offer(qtbot, can_channel: str) -> None:
    bench = TcuBenchPanel()
    hmi = HmiPanel()
    qtbot.addWidget(bench)
    qtbot.addWidget(hmi)
    bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        bench.start(BusSettings(interface="virtual", channel=can_channel))
        hmi.attach_bus(bus)
        hmi._decide(fo.DECISION_APPROVE)  # no offer: the TCU aborts with 0x08000022
        qtbot.waitUntil(lambda: "not accepted" in hmi.result_label.text(), timeout=5000)
    finally:
        hmi.shutdown()
        bench.stop()
        bus.shutdown()


def test_downtime_reads_like_an_operator_would_say_it() -> None:
    assert downtime_text(9) == "9 s"
    assert downtime_text(89) == "89 s"
    assert downtime_text(90) == "2 min"  # rounded up
    assert downtime_text(600) == "10 min"
    assert downtime_text(3600) == "1 h"
    assert downtime_text(4801) == "1 h 21 min"
