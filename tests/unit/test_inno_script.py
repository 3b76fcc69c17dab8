"""The Inno Setup script (packaging/windows/fota-studio.iss), kept under test on Linux.

It cannot be compiled here, so this parses it: sections and required keys, the version comes
only from the ISPP define (filled from pyproject on the iscc command line), every [Files]
source exists in the expected PyInstaller Windows layout, the AppId GUID never changes, the
install is per-user, packages are associated, and the uninstaller leaves the workspace alone.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ISS = ROOT / "packaging" / "windows" / "fota-studio.iss"
#: The product's AppId: Windows matches upgrades and the uninstaller by it. NEVER change it.
APP_ID = "{{5E987CE7-79C3-464D-A2E7-BC3324E52FEB}"
#: What PyInstaller's one-folder build produces on Windows (relative to the repository root),
#: plus the icon packaging/scripts/render_icons.py writes.
WINDOWS_LAYOUT = (
    "dist/fota-studio/fota-studio.exe",
    "dist/fota-studio/fota-studio-gui.exe",
    "dist/fota-studio/_internal/python311.dll",
    "dist/fota-studio/_internal/resources/fota_tcu.eds",
    "dist/fota-studio/_internal/PySide6/Qt6Core.dll",
    "build/icons/fota-studio.ico",
)

Sections = dict[str, list[str]]


def parse_iss(text: str) -> tuple[Sections, list[str]]:
    """(lines per [Section], preprocessor lines) without comments or blank lines."""
    sections: Sections = {}
    preprocessor: list[str] = []
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("#"):
            preprocessor.append(line)
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            current = m.group(1)
            sections.setdefault(current, [])
            continue
        assert current is not None, f"line outside a section: {line}"
        sections[current].append(line)
    return sections, preprocessor


def setup_keys(sections: Sections) -> dict[str, str]:
    """The [Setup] directives as a dict."""
    keys = {}
    for line in sections["Setup"]:
        key, _, value = line.partition("=")
        keys[key.strip()] = value.strip()
    return keys


def entry_params(line: str) -> dict[str, str]:
    """`Name: "x"; Flags: a b` → {"Name": "x", "Flags": "a b"} (quotes removed)."""
    params = {}
    for m in re.finditer(r'(\w+):\s*("(?:[^"]|"")*"|[^;]*)', line):
        value = m.group(2).strip()
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1].replace('""', '"')
        params[m.group(1)] = value
    return params


def defines(preprocessor: list[str]) -> dict[str, str]:
    """`#define Name "value"` lines."""
    out = {}
    for line in preprocessor:
        m = re.fullmatch(r'#define\s+(\w+)\s+"([^"]*)"', line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def expand(text: str, values: dict[str, str]) -> str:
    """Replace ISPP `{#Name}` inlines."""
    return re.sub(r"\{#(\w+)\}", lambda m: values[m.group(1)], text)


def project_version() -> str:
    """The version printed by the same helper the Windows build uses."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "scripts" / "project_version.py")],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def iss() -> tuple[Sections, list[str], str]:
    text = ISS.read_text(encoding="utf-8")
    sections, pre = parse_iss(text)
    return sections, pre, text


def test_sections_and_required_setup_keys(iss: tuple[Sections, list[str], str]) -> None:
    sections, _pre, _text = iss
    for name in ("Setup", "Languages", "Tasks", "Files", "Icons", "Registry", "Run"):
        assert name in sections, f"[{name}] missing"
    keys = setup_keys(sections)
    for key in (
        "AppId",
        "AppName",
        "AppVersion",
        "DefaultDirName",
        "OutputDir",
        "OutputBaseFilename",
        "PrivilegesRequired",
        "ChangesAssociations",
        "UninstallDisplayIcon",
    ):
        assert keys.get(key), f"[Setup] {key} missing"
    assert keys["PrivilegesRequired"] == "lowest"  # per-user, no admin rights
    assert keys["DefaultDirName"].startswith("{autopf}")  # = %LOCALAPPDATA%\Programs per-user
    assert keys["ChangesAssociations"] == "yes"


def test_app_id_is_stable(iss: tuple[Sections, list[str], str]) -> None:
    assert setup_keys(iss[0])["AppId"] == APP_ID


def test_version_comes_only_from_the_command_line_define(
    iss: tuple[Sections, list[str], str],
) -> None:
    sections, pre, text = iss
    assert "#ifndef AppVersion" in pre and any(p.startswith("#error") for p in pre)
    keys = setup_keys(sections)
    assert keys["AppVersion"] == "{#AppVersion}"
    assert keys["OutputBaseFilename"] == "FOTA-Studio-Setup-{#AppVersion}"
    # No hard-coded version anywhere in the script: pyproject.toml is the one place.
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(";"))
    assert not re.search(r"\b\d+\.\d+\.\d+\b", code)
    version = project_version()
    values = {**defines(pre), "AppVersion": version}
    assert expand(keys["OutputBaseFilename"], values) == f"FOTA-Studio-Setup-{version}"
    with (ROOT / "pyproject.toml").open("rb") as fh:
        assert version == tomllib.load(fh)["project"]["version"]


def test_every_files_source_exists_in_the_windows_layout(
    iss: tuple[Sections, list[str], str], tmp_path: Path
) -> None:
    sections, pre, _text = iss
    values = {**defines(pre), "AppVersion": "0.0.0"}
    for rel in WINDOWS_LAYOUT:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    script_dir = tmp_path / "packaging" / "windows"  # Source paths are relative to the script
    script_dir.mkdir(parents=True)
    assert sections["Files"]
    for line in sections["Files"]:
        params = entry_params(line)
        source = expand(params["Source"], values).replace("\\", "/")
        base = (script_dir / source).resolve()
        matches = list(base.parent.glob(base.name)) if "*" in base.name else [base]
        assert matches and all(m.exists() for m in matches), f"{source}: nothing to pack"
        assert params["DestDir"].startswith("{app}")
    keys = setup_keys(sections)
    icon = (script_dir / keys["SetupIconFile"].replace("\\", "/")).resolve()
    assert icon.exists()


def test_real_bundle_matches_the_layout_when_built() -> None:
    bundle = ROOT / "dist" / "fota-studio"
    if not bundle.is_dir():
        pytest.skip("no bundle built (make package)")
    assert (bundle / "_internal" / "fota_studio" / "resources" / "fota_tcu.eds").is_file()


def test_start_menu_entry_and_file_association(iss: tuple[Sections, list[str], str]) -> None:
    sections, pre, _text = iss
    values = {**defines(pre), "AppVersion": "0.0.0"}
    icons = [entry_params(line) for line in sections["Icons"]]
    assert any(
        i["Name"].startswith("{autoprograms}")
        and expand(i["Filename"], values).endswith("\\fota-studio-gui.exe")  # windowed
        for i in icons
    )
    registry = [entry_params(line) for line in sections["Registry"]]
    assert all(r["Root"] == "HKA" for r in registry)  # HKCU for a per-user install
    subkeys = [expand(r["Subkey"], values) for r in registry]
    mime = (ROOT / "packaging" / "deb" / "fota-studio-mime.xml").read_text()
    for ext in re.findall(r'<glob pattern="\*(\.\w+)"', mime):
        assert f"Software\\Classes\\{ext}\\OpenWithProgids" in subkeys, ext
    command = next(r for r in registry if r["Subkey"].endswith("shell\\open\\command"))
    assert expand(command["ValueData"], values) == '"{app}\\fota-studio-gui.exe" "%1"'
    progid = next(r for r in registry if r["Subkey"] == "Software\\Classes\\{#PackageProgId}")
    assert "uninsdeletekey" in progid["Flags"]


def test_uninstaller_keeps_the_workspace(iss: tuple[Sections, list[str], str]) -> None:
    sections, _pre, _text = iss
    for name in ("UninstallDelete", "UninstallRun", "InstallDelete"):
        for line in sections.get(name, []):
            target = entry_params(line).get("Name", "") + entry_params(line).get("Filename", "")
            assert target.startswith("{app}"), f"[{name}] touches {target}"
            assert "localappdata" not in target.lower() and "userappdata" not in target.lower()
    assert "{localappdata}" not in "\n".join(sections["Files"])
