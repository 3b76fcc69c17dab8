"""The python-can internals FOTA Studio relies on, each named, so that an upgrade that changes
one fails HERE instead of as a wrong doctor figure or a frozen app without `fota_sim`. Measured
against python-can 4.6; pyproject.toml keeps `python-can>=4.4,<4.7` until this file passes on a
newer minor release (the can-isotp ones are in test_library_internals.py).

- `tests/helpers/leaks.py`: `can.interfaces.virtual.channels` (name -> receive queues).
- `engine/doctor.py`: `can.interfaces.virtual.channels_lock` and `VirtualBus.channel`, the list
  of the receive queues of every bus instance on that channel (how many peers share it).
- `sim/paced_bus.py`: wraps a `VirtualBus` (attribute `_inner`, read by the doctor) and sends
  through it.
- `packaging/hooks/rthook_fota_can.py`, `cli/selftest.py`, `protocols/bus.py`:
  `can.interfaces.BACKENDS` (name -> (module, class)) and the frozenset `VALID_INTERFACES`
  computed from it at import time.
"""

from __future__ import annotations

from importlib.metadata import version

import can
import can.interfaces
from can.interfaces import virtual

from fota_studio.engine.doctor import _virtual_peers as virtual_peers


def test_pinned_below_the_next_minor_release() -> None:
    major, minor = (int(p) for p in version("python-can").split(".")[:2])
    assert (major, minor) < (4, 7), "re-check this file, then raise the pin in pyproject.toml"


def test_virtual_channel_is_the_list_of_peer_queues(can_channel: str) -> None:
    with virtual.channels_lock:  # a lock (an RLock in 4.6) guarding the channels table
        pass
    a = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    b = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    try:
        assert isinstance(a, virtual.VirtualBus)
        with virtual.channels_lock:
            assert isinstance(a.channel, list) and len(a.channel) == 2
            assert a.channel is b.channel and a.queue in a.channel
        assert virtual_peers(a) == 1
    finally:
        a.shutdown()
        b.shutdown()


def test_paced_bus_wraps_a_virtual_bus(can_channel: str) -> None:
    bus = can.Bus(interface="fota_sim", channel=can_channel, ignore_config=True)
    try:
        assert isinstance(bus._inner, virtual.VirtualBus)
    finally:
        bus.shutdown()


def test_backends_table_shape() -> None:
    module, cls = can.interfaces.BACKENDS["virtual"]
    assert (module, cls) == ("can.interfaces.virtual", "VirtualBus")
    assert isinstance(can.interfaces.VALID_INTERFACES, frozenset)
    assert set(can.interfaces.BACKENDS) <= set(can.interfaces.VALID_INTERFACES)


def test_virtual_channels_table_maps_names_to_open_buses(can_channel: str) -> None:
    # tests/helpers/leaks.py reads `virtual.channels` (name -> receive queues of the open buses)
    # to fail a test that leaves a bus open.
    with (
        can.Bus(interface="virtual", channel=can_channel, ignore_config=True),
        virtual.channels_lock,
    ):
        assert len(virtual.channels[can_channel]) == 1
    with virtual.channels_lock:
        assert can_channel not in virtual.channels
