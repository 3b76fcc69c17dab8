"""User settings file: defaults, round trip, migrations from v0, tolerance of broken files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from fota_studio.infra import settings as st


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert st.load_settings(tmp_path / "nope.json") == st.Settings()


def test_default_path_is_under_user_config_dir() -> None:
    # conftest points XDG_CONFIG_HOME into a temp folder
    path = st.save_settings(st.Settings())
    assert path == st.settings_path()
    assert path.is_file()
    assert st.load_settings() == st.Settings()


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    s = st.Settings()
    s = replace(s, ui=replace(s.ui, theme="dark"), approval=st.ApprovalSettings(42.0, 7.5))
    s = s.with_recent_workspace("/a").with_recent_workspace("/b").with_recent_workspace("/a")
    s = s.with_recent_log_file("/tmp/x.blf")
    st.save_settings(s, path)
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == st.SCHEMA_VERSION
    loaded = st.load_settings(path)
    assert loaded == s
    assert loaded.ui.recent_workspaces == ("/a", "/b")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_recent_list_is_bounded() -> None:
    s = st.Settings()
    for i in range(st.MAX_RECENT + 5):
        s = s.with_recent_workspace(f"/ws{i}")
    assert len(s.ui.recent_workspaces) == st.MAX_RECENT
    assert s.ui.recent_workspaces[0] == f"/ws{st.MAX_RECENT + 4}"


def test_migration_from_v0(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"theme": "light", "recent_workspaces": ["/w"], "approval_timeout": 2})
    )
    s = st.load_settings(path)
    assert s.ui.theme == "light"
    assert s.ui.recent_workspaces == ("/w",)
    assert s.approval.operator_timeout_s == 120.0


def test_bad_values_fall_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": st.SCHEMA_VERSION,
                "ui": {"theme": "neon", "recent_workspaces": [1, 2], "unknown": True},
                "approval": {"operator_timeout_s": "soon", "verification_timeout_s": 30},
            }
        )
    )
    s = st.load_settings(path)
    assert s.ui.theme == "system"
    assert s.ui.recent_workspaces == ()
    assert s.approval.operator_timeout_s == st.ApprovalSettings().operator_timeout_s
    assert s.approval.verification_timeout_s == 30.0


def test_broken_json_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    assert st.load_settings(path) == st.Settings()
    path.write_text("[1, 2]")
    assert st.load_settings(path) == st.Settings()


def test_newer_schema_reads_what_fits(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema_version": 99, "ui": {"theme": "dark"}, "future": {}}))
    assert st.load_settings(path).ui.theme == "dark"
