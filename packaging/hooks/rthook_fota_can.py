"""PyInstaller runtime hook: make `can.Bus(interface="fota_sim")` work in the frozen app.

python-can finds third-party interfaces through the `can.interface` entry-point group, read once
when `can.interfaces` is imported. The spec copies FOTA Studio's dist-info (entry_points.txt
included), so the entry point normally survives freezing; this hook registers the interface in
python-can's `BACKENDS` table by module name anyway, so an incomplete metadata copy can never turn
the simulated bus into "CAN interface 'fota_sim' not supported". Runs once on the main thread
before the application's own code.
"""

import can.interfaces

if "fota_sim" not in can.interfaces.BACKENDS:
    can.interfaces.BACKENDS["fota_sim"] = ("fota_studio.sim.paced_bus", "PacedVirtualBus")
    # VALID_INTERFACES is a frozenset computed at import time: rebuild it from the table.
    can.interfaces.VALID_INTERFACES = frozenset(sorted(can.interfaces.BACKENDS))
