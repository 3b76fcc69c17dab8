"""Helpers shared by the CLI commands: opening the workspace, printing tables and errors."""

from __future__ import annotations

import argparse
import sys

from fota_studio.infra.paths import resolve_workspace_dir
from fota_studio.infra.workspace import Workspace


def open_workspace(args: argparse.Namespace, *, seed_demo: bool = True) -> Workspace:
    """Open the workspace named by `--workspace` (or the default), seeding demo data when new."""
    root = resolve_workspace_dir(getattr(args, "workspace", None))
    ws = Workspace.open(root)
    if seed_demo:
        from fota_studio.infra import demo

        demo.ensure_demo(ws)
    return ws


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Print rows as an aligned plain-text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line.rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def fail(message: str, code: int = 1) -> int:
    """Print a one-line error to stderr and return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code
