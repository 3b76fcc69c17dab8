"""Where the EA editor was before it was split into `ui/panels/ea/` (issue 17).

Kept only for `ui/workbench.py`'s import while that file is being changed under another issue;
new code imports `fota_studio.ui.panels.ea` (the panel) or `fota_studio.ui.panels.ea.codecs`.
"""

from fota_studio.ui.panels.ea.panel import ArchitecturePanel

__all__ = ["ArchitecturePanel"]
