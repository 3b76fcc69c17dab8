"""`fota-studio workspace check`: report integrity problems of a workspace; exit 1 on any.

Checks the schema version, SQLite's integrity, and every referenced firmware / bus-log blob
(missing or not matching its hash) without writing anything (read-only media work too); see
`infra/workspace_check.py`. Runs on the main thread.
"""

from __future__ import annotations

import argparse
from typing import Any

from fota_studio.cli.common import Command, add_group, succeed
from fota_studio.infra.paths import resolve_workspace_dir
from fota_studio.infra.workspace import SCHEMA_VERSION
from fota_studio.infra.workspace_check import check_workspace


def register(subparsers: Any) -> None:
    """Add the `workspace` command group."""
    add_group(
        subparsers,
        "workspace",
        (
            Command(
                "check",
                _check,
                "check schema, database integrity and every stored blob; exit 1 on any problem",
                "Read-only check: schema version, PRAGMA integrity_check, every referenced "
                "firmware file and bus log (present, content matches its SHA-256).",
            ),
        ),
        help="workspace maintenance: check integrity",
        description="Maintenance of the workspace folder (database + blobs).",
        dest="workspace_cmd",
    )


def _check(args: argparse.Namespace) -> int:
    root = resolve_workspace_dir(getattr(args, "workspace", None))
    report = check_workspace(root)
    schema = "?" if report.schema_version is None else str(report.schema_version)
    print(
        f"workspace {root}: schema {schema} (this FOTA Studio: {SCHEMA_VERSION}), "
        f"{report.blobs_checked} blobs checked"
    )
    for note in report.notes:
        print(f"  note: {note}")
    for problem in report.problems:
        print(f"  PROBLEM: {problem}")
    if report.ok:
        return succeed("workspace check: ok")
    print(f"workspace check: {len(report.problems)} problem(s)")
    return 1
