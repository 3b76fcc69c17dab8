"""The demo: the demo machine type, the demo workspace, the demo bench and the demo scenario.

A layer of its own between the front ends (`cli/`, `ui/`, `app.py`) and what it composes
(`engine/`, `sim/`, `infra/`, `protocols/`, `core/`), so the engine never depends on the
simulator: `catalog.py` (what the demo "Excavator-X200" is, its pinned demo versions),
`seed.py` (seeding a brand-new workspace), `bench.py` (`DemoBench`: simulated ECU + engine +
TCU node + machine-side client on a private virtual bus) and `run.py` (`run_demo`, the one
scenario the CLI, the self-test and the GUI run).
"""
