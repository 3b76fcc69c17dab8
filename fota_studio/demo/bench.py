"""The demo bench: a simulated machine, the engine, a TCU node and a machine-side client.

`DemoBench` composes peers that never import each other: the simulated ECU(s) from `sim/`, an
`Engine` from `engine/`, the TCU CANopen node and the HMI/OEM-side `FotaClient` from
`protocols/`, on a private python-can `virtual` channel. Like canopen's `LocalNode`, the
simulator is something only the demo, the tests and the apps compose; the engine never imports
it. `demo_installed_images` gives the demo ECUs' installed firmware when no workspace is at hand
(`sim --demo`, `flash --simulate`). `start`/`stop` may be called from any thread except that the
GUI must not call them on its thread (start takes well under a second, stop joins threads).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

import can

from fota_studio.core.errors import ConfigurationError
from fota_studio.demo import catalog
from fota_studio.engine.engine import Engine
from fota_studio.engine.workflow import Sink
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.protocols.bus import BusSettings
from fota_studio.protocols.fota_client import FotaClient
from fota_studio.protocols.tcu_node import TcuNode
from fota_studio.sim.lifecycle import Startable
from fota_studio.sim.machine import SimMachine, synthetic_app_image
from fota_studio.sim.uds_ecu import SimEcuOptions

#: (attribute, stop method) of the bench's running parts, in the order `stop` stops them.
_PARTS_STOP_ORDER = (("client", "stop"), ("tcu", "stop"), ("engine", "shutdown"), ("sim", "stop"))


def demo_installed_images() -> dict[str, list[tuple[int, bytes]]]:
    """Synthetic images of the demo ECUs' installed versions (when no workspace is at hand)."""
    images = {}
    for ecu, repo in zip(catalog.demo_ecus(), catalog.DEMO_REPOSITORIES, strict=True):
        kib = repo.image_kib[repo.versions.index(repo.installed_version)]
        images[ecu.name] = synthetic_app_image(repo.installed_version, kib * 1024)
    return images


def fast_sim_options() -> SimEcuOptions:
    """Simulated ECU timing for the demo: short erases and response-pending intervals."""
    return SimEcuOptions(erase_ms_per_kib=0.5, erase_min_ms=20, pending_interval_ms=200)


class DemoBench(Startable):
    """The demo machine on a private virtual bus: simulated ECU, engine, TCU node, HMI client.

    Three python-can `virtual` Bus instances on one unique channel (a frame reaches the OTHER
    instances only): the simulated ECU(s), the engine (tester + TCU node on its notifier), and
    the machine-side CANopen client (HMI / OEM logic). The simulated ECU starts with the image
    of the version the workspace says is installed, in a fresh state folder (a temporary one
    unless `state_dir` is given), so every bench is a fresh simulated machine.
    """

    def __init__(
        self,
        ws: Any,
        *,
        machine: str | None = None,
        ecu: str = catalog.DEMO_ECU,
        sink: Sink | None = None,
        state_dir: Path | None = None,
        client_poll_period_s: float | None = 1.0,
        sim_options: SimEcuOptions | None = None,
    ) -> None:
        self.ws = ws
        self.machine = machine or catalog.DEMO_MACHINES[0]
        self.ecu_name = ecu
        self._sink = sink
        self._state_dir = state_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._poll_s = client_poll_period_s
        self._sim_options = sim_options
        self.channel = ""
        self.engine: Engine | None = None
        self.tcu: TcuNode | None = None
        self.client: Any = None
        self.sim: Any = None
        self._buses: list[Any] = []

    def start(self) -> DemoBench:
        """Build and start everything (idempotent)."""
        if self.engine is not None:
            return self
        eas = EaStore(self.ws)
        m = eas.get_machine(self.machine)
        if not m.ea_name:
            raise ConfigurationError(
                f'demo machine "{self.machine}" has no EA',
                hint="assign it with `fota-studio ea assign` or use a fresh workspace",
            )
        ea = eas.get(m.ea_name)
        ecu = ea.ecu(self.ecu_name)
        repo = RepositoryStore(self.ws)
        images: dict[str, list[tuple[int, bytes]]] = {}
        installed = m.installed.get(ecu.name)
        if installed:
            img = repo.load_image(repo.get_version(ecu.brand, ecu.model, installed))
            images[ecu.name] = [(s.address, bytes(s.data)) for s in img.segments]
        if self._state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fota-demo-")
            self._state_dir = Path(self._tmp.name)
        self.channel = f"fota-demo-{uuid.uuid4().hex[:10]}"
        fd = ecu.connection.fd
        try:
            sim_bus = can.Bus(interface="virtual", channel=self.channel, fd=fd, ignore_config=True)
            self._buses.append(sim_bus)
            self.sim = SimMachine(
                ea,
                sim_bus,
                name=self.machine,
                state_dir=self._state_dir,
                options={ecu.name: self._sim_options or fast_sim_options()},
                initial_images=images,
                ecus=[ecu.name],
            )
            self.sim.start()
            self.engine = Engine(self._sink)
            bus, notifier = self.engine.open_channel(
                ecu.connection.channel,
                # The engine echoes own frames on virtual buses: a trace here sees both sides.
                BusSettings(interface="virtual", channel=self.channel, fd=fd),
            )
            self.tcu = TcuNode(bus, notifier=notifier)
            self.tcu.start()
            client_bus = can.Bus(
                interface="virtual", channel=self.channel, fd=fd, ignore_config=True
            )
            self._buses.append(client_bus)
            self.client = FotaClient(client_bus, poll_period_s=self._poll_s)
            self.client.start()
        except BaseException:
            self.stop()
            raise
        return self

    def memory_sha256(self) -> str:
        """SHA-256 of the simulated ECU's whole application region (unchanged = not touched)."""
        mem = self.sim.ecu(self.ecu_name).memory
        data = mem.read(catalog.APP_REGION_START, catalog.APP_REGION_LENGTH)
        return hashlib.sha256(data).hexdigest()

    def stop(self) -> None:
        """Stop client, TCU, engine, simulator and buses, in that order (idempotent)."""
        for attr, method in _PARTS_STOP_ORDER:
            part = getattr(self, attr)
            if part is not None:
                getattr(part, method)()
                setattr(self, attr, None)
        for bus in self._buses:
            with contextlib.suppress(Exception):
                bus.shutdown()
        self._buses.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._state_dir = None
