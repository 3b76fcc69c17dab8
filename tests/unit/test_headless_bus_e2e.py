"""An update request run headless on a real bus, across processes, with a raw-frame machine HMI.

Three processes in a private network namespace share one python-can `udp_multicast` bus:
`fota-studio sim --no-tcu` (the machine's ECUs), `fota-studio request start ID --interface
udp_multicast` (TCU node + engine) and a driver written here that plays the machine HMI with raw
SDO frames (python-can only, no canopen library) and runs an OEM node (the project's FOTA client)
for Checkpoint 2. The HMI reads installed_version = the new version at the end; a reject run
leaves the ECU's flash untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fota_studio.cli import main
from fota_studio.engine.bus_run import EXIT_REJECTED, EXIT_SUCCESSFUL
from tests.helpers.netns import netns_unavailable_reason

REPO = Path(__file__).resolve().parents[2]
GROUP = "239.74.163.5"
MACHINE = "Unit #1001"
ECU = "VCU"

DRIVER = textwrap.dedent(
    """
    import json, struct, subprocess, sys, time
    import can

    ws, request_id, decision, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    py = sys.executable
    NODE = 0x7A
    # Sub-indices of object 0x5FF3 from the interface table (docs / resources/fota_tcu.eds).
    AVAILABLE, STATUS, DECISION, INSTALLED, OFFERED = 0x01, 0x02, 0x03, 0x06, 0x07
    INDEX = struct.pack("<H", 0x5FF3)

    bus = can.Bus(interface="udp_multicast", channel=group, ignore_config=True)

    tpdos = []

    def sdo(data, timeout=2.0):
        bus.send(can.Message(arbitration_id=0x600 + NODE, data=data, is_extended_id=False))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = bus.recv(0.1)
            if msg is None:
                continue
            if msg.arbitration_id == 0x180 + NODE:
                tpdos.append(bytes(msg.data))
            # Another client (the OEM node) shares the SDO channel: match our multiplexer.
            # Segment responses carry none; they follow our own segment request.
            elif msg.arbitration_id == 0x580 + NODE and (
                data[0] & 0xE0 == 0x60 or bytes(msg.data[1:4]) == data[1:4]
            ):
                return bytes(msg.data)
        return None

    def upload(sub):
        resp = sdo(bytes([0x40]) + INDEX + bytes([sub, 0, 0, 0, 0]))
        if resp is None or resp[0] == 0x80:
            return None
        if resp[0] & 0x02:  # expedited
            n = 4 - ((resp[0] >> 2) & 3) if resp[0] & 1 else 4
            return resp[4:4 + n]
        size = struct.unpack_from("<L", resp, 4)[0]
        data, toggle = bytearray(), 0
        while True:
            seg = sdo(bytes([0x60 | toggle]) + bytes(7))
            data += seg[1:8 - ((seg[0] >> 1) & 7)]
            if seg[0] & 1:
                break
            toggle ^= 0x10
        return bytes(data[:size])

    sim = subprocess.Popen(
        [py, "-m", "fota_studio", "--workspace", ws, "sim", "--machine", "Unit #1001",
         "--ecu", "VCU", "--no-tcu", "--interface", "udp_multicast", "--channel", group],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import atexit
    atexit.register(lambda: sim.poll() is None and sim.kill())  # never leave it running
    seen = []
    for line in sim.stdout:  # log lines may come first
        seen.append(line)
        if "simulating" in line:
            break
    else:
        sys.exit("simulator did not start: " + "".join(seen))
    from fota_studio.protocols.fota_client import FotaClient
    from fota_studio.sim.oem import ScriptedOemLogic
    # The OEM node follows the TPDO only (no polling), so its SDO requests never collide with
    # the HMI's on the TCU's one SDO server channel.
    oem_bus = can.Bus(interface="udp_multicast", channel=group, ignore_config=True)
    oem_client = FotaClient(oem_bus, poll_period_s=None)
    oem_client.start()
    oem = ScriptedOemLogic(oem_client, verdict=1, delay_s=0.1)
    req = subprocess.Popen(
        [py, "-m", "fota_studio", "--workspace", ws, "request", "start", request_id,
         "--interface", "udp_multicast", "--channel", group, "--approval", "hmi",
         "--verification", "both", "--timeout-approval", "60", "--timeout-verification", "60",
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    atexit.register(lambda: req.poll() is None and req.kill())
    offered = status = installed = None
    with oem:
        # The raw HMI follows TPDO1 (byte 0 update_available, byte 1 update_status).
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and status is None:
            if req.poll() is not None:
                break
            # Poll (expedited uploads) and listen to TPDO1, as a simple HMI does.
            a = upload(AVAILABLE)
            b = upload(STATUS)
            seen = [bytes([a[0], b[0]])] if a and b else []
            seen += tpdos
            tpdos.clear()
            if not seen:
                continue
            available, current = seen[-1][0], seen[-1][1]
            time.sleep(0.2)
            if available == 1 and offered is None:
                offered = upload(OFFERED).decode()
                answer = sdo(bytes([0x2F]) + INDEX + bytes([DECISION, decision, 0, 0, 0]))
                assert answer is not None and answer[0] == 0x60, answer
            elif current >= 0x03:
                status = current
                # What the operator sees at the end (the TCU serves it for --linger seconds).
                installed = upload(INSTALLED)
        out, err = req.communicate(timeout=120)
    oem_client.stop()
    sim.send_signal(2)
    sim.communicate(timeout=30)
    print(json.dumps({"rc": req.returncode, "out": out, "err": err[-3000:], "offered": offered,
                      "installed": installed.decode() if installed is not None else None,
                      "status": status,
                      "verdicts": len(oem.verdicts)}))
    """
)


def _app_header(ws: Path) -> bytes:
    """The first bytes of the simulated VCU's application region (its version header)."""
    files = sorted(ws.rglob("VCU.flash"))
    assert files, f"no simulated flash file under {ws}"
    return files[0].read_bytes()[0x10000:0x10040]


def _run(tmp_path: Path, ws: Path, request_id: int, decision: int) -> dict[str, object]:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    script = (
        "set -e; ip link set lo up; ip link set lo multicast on; "
        "ip route add 224.0.0.0/4 dev lo; "
        f'exec {sys.executable} {driver} "{ws}" {request_id} {decision} {GROUP}'
    )
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_request_on_a_real_bus_with_raw_hmi_and_oem_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(f"cross-process test needs `unshare -n`: {reason}")
    ws = tmp_path / "ws"
    assert main(["--workspace", str(ws), "request", "create", "--machine", MACHINE,
                 "--ecu", ECU, "--version", "3.2.0", "--yes"]) == 0  # fmt: skip
    assert main(["--workspace", str(ws), "request", "list"]) == 0
    capsys.readouterr()

    # Reject first: exit 3, the ECU's flash untouched.
    result = _run(tmp_path, ws, 1, decision=0x02)
    assert result["rc"] == EXIT_REJECTED, result
    assert result["status"] == 0x05  # rejected by the operator
    assert b"3.1.0" in _app_header(ws)  # never erased: still the installed application

    # A new request, approved: flashed, verified by the OEM node and the built-in checks.
    assert main(["--workspace", str(ws), "request", "create", "--machine", MACHINE,
                 "--ecu", ECU, "--version", "3.2.0", "--yes"]) == 0  # fmt: skip
    result = _run(tmp_path, ws, 2, decision=0x01)
    assert result["rc"] == EXIT_SUCCESSFUL, result
    assert result["offered"] == "3.2.0"
    assert result["installed"] == "3.2.0"  # 0x5FF3:06 follows the successful update
    assert result["status"] == 0x03
    assert result["verdicts"] >= 1
    record = json.loads(str(result["out"]))
    assert record["request"]["status"] == "Successful"
    assert record["flash_record"]["result"] == "success"
    assert b"3.2.0" in _app_header(ws)


def test_tcu_bench_runs_pending_requests_in_process(tmp_path: Path, can_channel: str) -> None:
    """`fota-studio tcu --once` on a virtual bus (the same BusRunner path as udp_multicast):
    the TCU offers each Pending request of its machine, the HMI (project client here) approves,
    the request ends Successful and 0x5FF3 installed_version follows it."""
    import threading

    import can

    from fota_studio.demo.bench import fast_sim_options
    from fota_studio.infra.ea_store import EaStore
    from fota_studio.infra.repository import RepositoryStore
    from fota_studio.infra.requests_store import RequestsStore
    from fota_studio.infra.workspace import Workspace
    from fota_studio.protocols import fota_objects as fo
    from fota_studio.protocols.fota_client import FotaClient
    from fota_studio.sim.hmi import ScriptedHmi
    from fota_studio.sim.machine import SimMachine

    ws_dir = tmp_path / "ws"
    assert main(["--workspace", str(ws_dir), "request", "create", "--machine", MACHINE,
                 "--ecu", ECU, "--version", "3.2.0", "--yes"]) == 0  # fmt: skip
    with Workspace.open(ws_dir) as ws:
        m = EaStore(ws).get_machine(MACHINE)
        ea = EaStore(ws).get(str(m.ea_name))
        ecu = ea.ecu(ECU)
        repo = RepositoryStore(ws)
        image = repo.load_image(repo.get_version(ecu.brand, ecu.model, str(m.installed[ECU])))
    sim_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    hmi_bus = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    sim = SimMachine(
        ea,
        sim_bus,
        name=MACHINE,
        state_dir=tmp_path / "sim",
        options={ECU: fast_sim_options()},
        initial_images={ECU: [(s.address, bytes(s.data)) for s in image.segments]},
        ecus=[ECU],
    )
    client = FotaClient(hmi_bus, poll_period_s=0.2)
    codes: list[int] = []
    try:
        sim.start()
        client.start()
        with ScriptedHmi(client, decision=fo.DECISION_APPROVE, delay_s=0.05, once=True):
            argv = ["--workspace", str(ws_dir), "tcu", "--machine", MACHINE, "--interface",
                    "virtual", "--channel", can_channel, "--once"]  # fmt: skip
            worker = threading.Thread(target=lambda: codes.append(main(argv)))
            worker.start()
            worker.join(120)
            assert not worker.is_alive()
            assert codes == [EXIT_SUCCESSFUL]
    finally:
        client.stop()
        sim.stop()
        hmi_bus.shutdown()
        sim_bus.shutdown()
    with Workspace.open(ws_dir) as ws:
        req = RequestsStore(ws).get(1)
        assert req.status.value == "Successful"
    state = json.loads((ws_dir / "tcu-state.json").read_text())
    assert state["values"][fo.INSTALLED_VERSION] == "3.2.0"  # persistent, as the EDS says
