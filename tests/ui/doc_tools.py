"""The scripts of docs/tools (screenshots, PDX example) loaded as modules for the tests that
check them; they are scripts, not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DOC_TOOLS = Path(__file__).resolve().parents[2] / "docs" / "tools"


def load_doc_tool(stem: str, name: str, *, shared: bool = False) -> ModuleType:
    """docs/tools/`stem`.py as module `name`: a fresh copy (a test may patch it), or with
    `shared` the one registered in sys.modules, loaded there on first use."""
    if shared and name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DOC_TOOLS / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if shared:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
