"""Shared test doubles and rigs: real protocol peers and test data, never mocks of our code.

- `sim_rig.py`: simulated ECU on a virtual bus, tester bus, adapter-fault wrapper, test images
  (the tests and the reliability campaign share it).
- `flash.py`: flash-engine pieces on top of `sim_rig` (bigger images, the demo ECU's timings).
- `uds_tester.py`: a plain udsoncan tester against the simulated ECU.
- `workflow.py`: update-request workspaces for the workflow tests.
- `slcan_device.py`: an emulated slcan adapter on a pseudo-terminal.
- `processes.py`: a CLI flash in a child process, SIGKILLed at a chosen percentage.
- `storage.py`: a SQLite file with scribbled b-tree pages.
- `packages.py`, `firmware_text.py`, `frames.py`: test firmware, HEX/S-record lines, CAN frames.
No test lives here, and no `test_*.py` module holds a helper another test imports.
"""
