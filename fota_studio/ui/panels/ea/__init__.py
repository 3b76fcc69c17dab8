"""The Electronic Architecture editor, one room per job (as Vorta's `views/archive/`).

- `panel.py`: `ArchitecturePanel`, the tree of EAs/ECUs/machines, undo, save/import/export.
- `ecu_form.py`: the typed field widgets bound to model paths and the ECU page's tabs.
- `list_table.py`: one editable list of the current ECU (steps, regions, DIDs, ...).
- `codecs.py`: a cell's text to a typed value and back; no Qt (unit-tested without it).

This package imports nothing itself, so importing `codecs` never loads Qt.
"""
