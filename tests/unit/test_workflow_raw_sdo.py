"""A third-party HMI/OEM node using only hand-built CANopen SDO frames completes an update.

This is what an integrator with `cansend` does: expedited SDO uploads of update_available /
update_status and expedited downloads of operator_decision / oem_verification on 0x600+id,
answers on 0x580+id. No canopen library on the client side.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import can

from fota_studio.core.update_request import RequestStatus
from fota_studio.engine.workflow import RequestRun
from tests.fakes.workflow import ECU, Recorder, bench, demo_ws, new_request, options

NODE = 0x7A
INDEX = (0x5FF3).to_bytes(2, "little")
SUB_AVAILABLE, SUB_STATUS, SUB_DECISION, SUB_VERDICT = 0x01, 0x02, 0x03, 0x04


class RawSdo:
    def __init__(self, channel: str) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel, ignore_config=True)

    def _transfer(self, data: bytes) -> bytes:
        self.bus.send(can.Message(arbitration_id=0x600 + NODE, data=data, is_extended_id=False))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            msg = self.bus.recv(0.1)
            if msg is not None and msg.arbitration_id == 0x580 + NODE:
                return bytes(msg.data)
        raise AssertionError("no SDO answer")

    def upload_u8(self, sub: int) -> int:
        answer = self._transfer(bytes([0x40]) + INDEX + bytes([sub, 0, 0, 0, 0]))
        assert answer[0] & 0xE0 == 0x40, answer.hex()
        return answer[4]

    def download_u8(self, sub: int, value: int) -> bytes:
        return self._transfer(bytes([0x2F]) + INDEX + bytes([sub, value, 0, 0, 0]))

    def wait_u8(self, sub: int, value: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.upload_u8(sub) != value:
            assert time.monotonic() < deadline, f"sub {sub} never became {value}"
            time.sleep(0.05)


def test_hand_built_sdo_hmi_completes_an_update(workspace_dir: Path) -> None:
    rec = Recorder()
    log: list[str] = []
    with demo_ws(workspace_dir) as ws, bench(ws, rec, client_poll_period_s=None) as b:
        rid = new_request(ws)
        sdo = RawSdo(b.channel)

        def machine_side() -> None:
            sdo.wait_u8(SUB_AVAILABLE, 1)
            log.append("offer seen")
            assert sdo.download_u8(SUB_DECISION, 1)[0] == 0x60  # approve accepted
            sdo.wait_u8(SUB_STATUS, 2)  # waiting for OEM verification
            log.append("verify asked")
            assert sdo.download_u8(SUB_VERDICT, 1)[0] == 0x60  # healthy
            sdo.wait_u8(SUB_STATUS, 3)
            log.append("successful")

        t = threading.Thread(target=machine_side, name="raw-hmi", daemon=True)
        t.start()
        try:
            final = RequestRun(
                ws,
                b.engine,
                rid,
                tcu=b.tcu,
                options=options(approval_local=False, approval_hmi=True, oem_verification=True),
            ).run()
            t.join(10)
            # A decision written now (no offer) is aborted with 0x08000022.
            answer = sdo.download_u8(SUB_DECISION, 1)
            assert answer[0] == 0x80 and answer[4:8] == (0x08000022).to_bytes(4, "little")
        finally:
            sdo.bus.shutdown()
        assert final.status is RequestStatus.SUCCESSFUL, final.error
        assert log == ["offer seen", "verify asked", "successful"]
        assert b.sim.ecu(ECU).state().software_version == "3.2.0"
