"""A simulated machine: every ECU of an Electronic Architecture on one python-can bus.

`SimMachine` builds one `SimEcu` per ECU of the EA (optionally only some), each with its flash
and state files in a per-machine folder (`<state_dir>/<machine>/<ecu>.flash|.json`), all sharing
ONE notifier on the bus: the caller's notifier when given (the bus owner), otherwise a notifier
the machine creates and stops. `synthetic_app_image` builds a demo firmware image (application
header + deterministic filler) for a fresh ECU. `start`/`stop` may be called from any thread;
`stop` is idempotent and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import can

from fota_studio.core import reference_ecu
from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.sim.faults import Fault
from fota_studio.sim.lifecycle import Startable
from fota_studio.sim.uds_ecu import SimEcu, SimEcuOptions, SimEcuSnapshot, default_state_dir

log = logging.getLogger(__name__)

#: Notifier stop timeout (library-notes: the default waits up to 1 s).
NOTIFIER_STOP_TIMEOUT_S = 0.1


def synthetic_app_image(
    version: str, size_bytes: int, *, start: int = reference_ecu.APP_REGION_START
) -> list[tuple[int, bytes]]:
    """One-segment demo image: the application header for `version` + deterministic filler."""
    header = reference_ecu.app_header(version)
    filler = bytearray()
    counter = 0
    while len(header) + len(filler) < size_bytes:
        filler += hashlib.sha256(f"{version}:{counter}".encode()).digest()
        counter += 1
    return [(start, (header + bytes(filler))[: max(size_bytes, len(header))])]


class SimMachine(Startable):
    """All simulated ECUs of one machine on one bus, with a per-machine state folder."""

    def __init__(
        self,
        ea: ElectronicArchitecture,
        bus: can.BusABC,
        *,
        name: str,
        state_dir: Path,
        notifier: can.Notifier | None = None,
        options: Mapping[str, SimEcuOptions] | None = None,
        initial_images: Mapping[str, Sequence[tuple[int, bytes]]] | None = None,
        ecus: Sequence[str] | None = None,
    ) -> None:
        """Prepare the ECUs (flash files opened/created); nothing runs until `start`."""
        self.ea = ea
        self.name = name
        self.bus = bus
        self.state_dir = default_state_dir(Path(state_dir), name)
        self._given_notifier = notifier
        self._notifier: can.Notifier | None = notifier
        self._lock = threading.Lock()
        self._running = False
        selected = [e for e in ea.ecus if ecus is None or e.name in ecus]
        self._ecu_defs = selected
        self._options = dict(options or {})
        self._images = dict(initial_images or {})
        self.ecus: dict[str, SimEcu] = {}

    def _create_ecus(self, notifier: can.Notifier) -> None:
        for definition in self._ecu_defs:
            if definition.name in self.ecus:
                continue
            self.ecus[definition.name] = SimEcu(
                definition,
                self.bus,
                notifier,
                machine=self.name,
                state_dir=self.state_dir,
                options=self._options.get(definition.name),
                initial_image=self._images.get(definition.name),
            )

    def start(self) -> None:
        """Start every ECU (creating the notifier if the machine owns it)."""
        with self._lock:
            if self._running:
                return
            if self._notifier is None:
                self._notifier = can.Notifier(self.bus, [], timeout=0.05)
            try:
                self._create_ecus(self._notifier)
                for ecu in self.ecus.values():
                    ecu.start()
            except BaseException:
                # E.g. no disk space for a flash file: undo what started, or the own
                # notifier would keep reading a bus its owner shuts down next.
                self._close_ecus_and_notifier()
                raise
            self._running = True
            log.info(
                'simulated machine "%s" running: %s (state in %s)',
                self.name,
                ", ".join(self.ecus),
                self.state_dir,
            )

    def stop(self) -> None:
        """Stop every ECU, close their flash files and the own notifier (idempotent)."""
        with self._lock:
            if not self._running and not self.ecus:
                return
            self._running = False
            self._close_ecus_and_notifier()
            log.info('simulated machine "%s" stopped', self.name)

    def _close_ecus_and_notifier(self) -> None:
        """Close every ECU and stop the machine's own notifier (caller holds the lock)."""
        for ecu in self.ecus.values():
            with contextlib.suppress(Exception):
                ecu.close()
        self.ecus.clear()
        if self._given_notifier is None and self._notifier is not None:
            self._notifier.stop(timeout=NOTIFIER_STOP_TIMEOUT_S)
            self._notifier = None

    def ecu(self, name: str) -> SimEcu:
        """The running simulated ECU with this name (KeyError names the known ones)."""
        try:
            return self.ecus[name]
        except KeyError:
            known = ", ".join(self.ecus) or "none (not started)"
            raise KeyError(
                f'simulated machine "{self.name}" has no ECU "{name}" ({known})'
            ) from None

    def inject(self, ecu: str, fault: Fault) -> None:
        """Arm a fault on one ECU."""
        self.ecu(ecu).inject(fault)

    def states(self) -> dict[str, SimEcuSnapshot]:
        """Snapshots of every ECU."""
        return {name: ecu.state() for name, ecu in self.ecus.items()}
