"""`fota-studio sim`: fault option parsing, and a cross-process flash over udp_multicast."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fota_studio.cli import build_parser
from fota_studio.cli.sim import parse_faults
from fota_studio.core.errors import ConfigurationError
from fota_studio.sim.faults import Fault
from tests.helpers.netns import netns_unavailable_reason

REPO = Path(__file__).resolve().parents[2]


def test_parse_faults_targets_ecus() -> None:
    faults = parse_faults(["erase:nrc:0x22", "VCU=transfer_data:power_loss:4096"], ["VCU", "HCU"])
    assert faults == [
        ("VCU", Fault("erase", "nrc", 0x22)),
        ("HCU", Fault("erase", "nrc", 0x22)),
        ("VCU", Fault("transfer_data", "power_loss", 4096)),
    ]
    with pytest.raises(ConfigurationError):
        parse_faults(["XYZ=erase:fail"], ["VCU"])


def test_sim_command_is_registered() -> None:
    args = build_parser().parse_args(
        [
            "sim",
            "--machine",
            "Unit #1001",
            "--interface",
            "virtual",
            "--channel",
            "c",
            "--fault",
            "erase:fail",
            "--fault",
            "check:nrc:0x72",
            "--timing",
            "--fd",
        ]
    )
    assert args.fault == ["erase:fail", "check:nrc:0x72"]
    assert args.timing and args.fd and args.machine == "Unit #1001"


TESTER = textwrap.dedent(
    """
    import sys, time, zlib
    import can, isotp, udsoncan
    from udsoncan.client import Client
    from udsoncan.connections import PythonIsoTpConnection
    from udsoncan import MemoryLocation
    from fota_studio.demo import catalog as demo_catalog
    from fota_studio.core.seedkey import compute_key, demo_secret

    ecu = demo_catalog.demo_architecture().ecu("VCU")
    bus = can.Bus(interface="udp_multicast", channel="239.74.163.2", ignore_config=True)
    deadline = time.monotonic() + 30
    while True:  # the simulator is up when its heartbeat arrives
        msg = bus.recv(0.5)
        if msg is not None and msg.arbitration_id == ecu.connection.heartbeat_id:
            break
        if time.monotonic() > deadline:
            sys.exit("no heartbeat from the simulator")
    notifier = can.Notifier(bus, [], timeout=0.05)
    entry = ecu.connection.bootloader_entry
    bus.send(can.Message(arbitration_id=entry.can_id, is_extended_id=False, data=entry.data))
    time.sleep(ecu.connection.bootloader_entry_delay_ms / 1000)
    addr = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E1, rxid=0x7E9)
    stack = isotp.NotifierBasedCanStack(bus, notifier, address=addr,
                                        params={"tx_padding": 0xAA, "blocksize": 8})
    levels = {lvl.seed_subfunction: lvl for lvl in ecu.uds.security_levels}
    cfg = dict(udsoncan.configs.default_client_config)
    cfg["security_algo"] = lambda level, seed, params: compute_key(
        levels[level].algorithm, seed, levels[level].params,
        demo_secret(levels[level].secret_ref))
    cfg["p2_timeout"] = 2.0
    cfg["use_server_timing"] = False
    start = demo_catalog.APP_REGION_START
    data = demo_catalog.app_header("7.7.7") + bytes(i & 0xFF for i in range(3000))
    with Client(PythonIsoTpConnection(stack), config=cfg) as c:
        c.change_session(3)
        c.unlock_security_access(1)
        c.change_session(2)
        c.unlock_security_access(3)
        c.start_routine(0xFF00, bytes([0x44]) + start.to_bytes(4, "big")
                        + len(data).to_bytes(4, "big"))
        resp = c.request_download(MemoryLocation(start, len(data), 32, 32))
        block = resp.service_data.max_length - 2
        for i, off in enumerate(range(0, len(data), block)):
            c.transfer_data((i + 1) & 0xFF, data[off:off + block])
        c.request_transfer_exit()
        resp = c.start_routine(0xFF01, zlib.crc32(data).to_bytes(4, "big"))
        assert resp.service_data.routine_status_record == b"\\x00", resp
        c.ecu_reset(1)
    notifier.stop(timeout=0.1)
    bus.shutdown()
    print("FLASHED")
    """
)


@pytest.mark.slow
def test_cross_process_flash_over_udp_multicast(tmp_path: Path) -> None:
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(f"cross-process test needs `unshare -n`: {reason}")
    (tmp_path / "tester.py").write_text(TESTER)
    state = tmp_path / "state"
    py = sys.executable
    script = f"""
        set -e
        ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo
        {py} -m fota_studio sim --demo --machine 'Unit #1001' --ecu VCU --no-tcu \\
            --interface udp_multicast --channel 239.74.163.2 --state-dir {state} \\
            --erase-ms-per-kib 0.5 &
        SIM=$!
        set +e
        {py} {tmp_path / "tester.py"}
        RC=$?
        kill -INT $SIM; wait $SIM
        exit $RC
    """
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FLASHED" in proc.stdout
    assert "simulator stopped" in proc.stdout
    # The simulator persisted the new firmware and its valid state.
    vcu_state = (state / "Unit_1001" / "VCU.json").read_text()
    assert '"app_valid": true' in vcu_state
    flash = (state / "Unit_1001" / "VCU.flash").read_bytes()
    assert b"7.7.7" in flash[0x10000:0x10040]
