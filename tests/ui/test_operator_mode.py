"""Operator mode in the GUI hides raw CAN transmit (and replay) and fault injection (issue 14):
the Workbench asks the one access check (`AccessControl.allows`) and the panels follow it."""

from __future__ import annotations

import pytest

from fota_studio.infra.access import AccessDeniedError
from fota_studio.ui.workbench import Workbench
from tests.ui.app_fixtures import app_fixtures

PASSPHRASE = "correct horse battery"


ws_fixture, window_fixture = app_fixtures("op")


def _transmit_visible(bench: Workbench) -> bool:
    tabs = bench.trace_panel.tabs
    return bool(tabs.isTabVisible(tabs.indexOf(bench.trace_panel.transmit_tab)))


def test_operator_mode_hides_raw_transmit_and_fault_injection(window) -> None:  # type: ignore[no-untyped-def]
    _w, bench = window
    assert _transmit_visible(bench)  # no passphrase: engineering mode
    assert not bench.sim_panel.fault_box.isHidden()
    bench.access.set_passphrase(PASSPHRASE)
    bench.access.enter_operator()
    assert not _transmit_visible(bench)
    assert bench.sim_panel.fault_box.isHidden()
    with pytest.raises(AccessDeniedError, match="operator mode: raw CAN transmit"):
        bench.trace_panel.start_replay("CAN1")
    assert bench.access.enter_engineering(PASSPHRASE)
    assert _transmit_visible(bench)
    assert not bench.sim_panel.fault_box.isHidden()
