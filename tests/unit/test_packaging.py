"""The packaged app: the PyInstaller bundle and the .deb, plus the static packaging files.

The static checks (spec, runtime hook, .desktop/MIME files) always run. The bundle checks run
only when a bundle exists in dist/fota-studio or FOTA_BUILD_BUNDLE=1 (then `make package` is run
first, ~1 min); the .deb checks only when dist/*.deb exists (`make deb`). Installing the .deb
with dpkg -i needs root AND FOTA_DEB_INSTALL=1, because it changes the machine.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
BUNDLE = DIST / "fota-studio"
EXE = BUNDLE / ("fota-studio.exe" if sys.platform == "win32" else "fota-studio")
SPEC = ROOT / "packaging" / "fota_studio.spec"
RUN_TIMEOUT_S = 120


def _pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def _frozen_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=env or _frozen_env(),
        check=False,
    )


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The built bundle's executable (built first when FOTA_BUILD_BUNDLE=1)."""
    if os.environ.get("FOTA_BUILD_BUNDLE") == "1" and not EXE.exists():
        subprocess.run(["make", "package"], cwd=ROOT, check=True, timeout=1800)
    if not EXE.exists():
        pytest.skip("no bundle in dist/fota-studio (make package, or FOTA_BUILD_BUNDLE=1)")
    return EXE


# -- static files (always) ---------------------------------------------------------------------


def test_spec_bundles_what_the_app_loads_by_name() -> None:
    spec = SPEC.read_text()
    for backend in ("socketcan", "pcan", "kvaser", "vector", "ixxat", "slcan", "gs_usb"):
        assert f'"{backend}"' in spec or f"can.interfaces.{backend}" in spec
    assert '"virtual"' in spec and '"udp_multicast"' in spec
    assert 'collect_submodules("fota_studio")' in spec  # cli/*.py are discovered by pkgutil
    assert 'copy_metadata("fota-studio")' in spec  # version + the fota_sim entry point
    assert "rthook_fota_can.py" in spec
    # core/resources.py finds them with importlib.resources, as in an installed wheel
    assert '"fota_studio/resources"' in spec and '"fota_studio/resources/manual"' in spec


def test_runtime_hook_registers_fota_sim(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook adds fota_sim when the entry point was lost in freezing, and rebuilds the set."""
    import can.interfaces

    monkeypatch.setattr(
        can.interfaces,
        "BACKENDS",
        {k: v for k, v in can.interfaces.BACKENDS.items() if k != "fota_sim"},
    )
    monkeypatch.setattr(can.interfaces, "VALID_INTERFACES", frozenset(can.interfaces.BACKENDS))
    hook = ROOT / "packaging" / "hooks" / "rthook_fota_can.py"
    exec(compile(hook.read_text(), str(hook), "exec"), {})
    assert can.interfaces.BACKENDS["fota_sim"] == (
        "fota_studio.sim.paced_bus",
        "PacedVirtualBus",
    )
    assert "fota_sim" in can.interfaces.VALID_INTERFACES


def test_desktop_entry_and_mime_type_agree() -> None:
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str  # type: ignore[assignment,method-assign]
    desktop.read(ROOT / "packaging" / "deb" / "fota-studio.desktop")
    entry = desktop["Desktop Entry"]
    assert entry["Exec"].split()[0] == "fota-studio" and entry["Icon"] == "fota-studio"
    mime = (ROOT / "packaging" / "deb" / "fota-studio-mime.xml").read_text()
    assert 'type="application/x-fota-package"' in mime
    assert "application/x-fota-package;" in entry["MimeType"]
    globs = re.findall(r'<glob pattern="([^"]+)"', mime)
    assert "*.fotapkg" in globs and "*.fpkg" in globs
    # The repository panel's open dialog must offer the same package extension.
    panel = ROOT / "fota_studio" / "ui" / "panels" / "repository_panel.py"
    if panel.exists():
        assert "*.fpkg" in panel.read_text()


def test_deb_control_template_is_complete() -> None:
    control = (ROOT / "packaging" / "deb" / "control.in").read_text()
    for field in ("Package", "Version", "Architecture", "Maintainer", "Depends", "Description"):
        assert re.search(rf"^{field}: ", control, re.MULTILINE), field
    for lib in ("libxcb-cursor0", "libxkbcommon-x11-0", "libfontconfig1", "libegl1"):
        assert lib in control


# -- the bundle --------------------------------------------------------------------------------


def test_bundle_version_matches_pyproject(bundle: Path) -> None:
    out = _run(str(bundle), "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"fota-studio {_pyproject_version()}", (
        "stale bundle: run `make package`"
    )


def test_bundle_self_test_passes_offscreen(bundle: Path) -> None:
    out = _run(str(bundle), "--log-level", "WARNING", "selftest")
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stdout + out.stderr
    assert lines and lines[-1].startswith("SELF-TEST PASS:") and "(frozen)" in lines[-1]


def test_bundle_doctor_names_a_missing_driver(bundle: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("checks the Linux library name")
    out = _run(str(bundle), "doctor", "--interface", "pcan", "--channel", "PCAN_USBBUS1")
    if out.returncode == 0:
        pytest.skip("PCAN-Basic is installed here")
    assert "libpcanbasic.so" in out.stdout


def test_bundle_is_lean(bundle: Path) -> None:
    internal = bundle.parent / "_internal"
    names = {p.name for p in internal.rglob("*")}
    res = internal / "fota_studio" / "resources"
    assert (res / "fota_tcu.eds").is_file() and (res / "ea.schema.json").is_file()
    assert (res / "manual" / "USER_MANUAL.md").is_file()
    plugins = internal / "PySide6" / "Qt" / "plugins" / "platforms"
    if sys.platform == "linux":
        assert {"libqoffscreen.so", "libqxcb.so"} <= {p.name for p in plugins.iterdir()}
    for unwanted in ("QtWebEngineCore", "Qt3DCore", "QtQuick", "QtQml", "libqgtk3.so"):
        assert not any(unwanted in n for n in names), unwanted
    assert not (internal / "pyqtgraph" / "examples").exists()
    assert not (internal / "pytest").exists() and not (internal / "hypothesis").exists()


# -- the .deb ----------------------------------------------------------------------------------


def _deb() -> Path:
    debs = sorted(DIST.glob(f"fota-studio_{_pyproject_version()}_*.deb"))
    if not debs or shutil.which("dpkg-deb") is None:
        pytest.skip("no .deb built (make deb) or no dpkg-deb")
    return debs[-1]


def test_deb_contents_and_extracted_app(tmp_path: Path) -> None:
    deb = _deb()
    contents = _run("dpkg-deb", "--contents", str(deb)).stdout
    for path in (
        "./opt/fota-studio/fota-studio",
        "./opt/fota-studio/_internal/fota_studio/resources/fota_tcu.eds",
        "./usr/bin/fota-studio -> /opt/fota-studio/fota-studio",
        "./usr/share/applications/fota-studio.desktop",
        "./usr/share/mime/packages/fota-studio.xml",
        "./usr/share/icons/hicolor/scalable/apps/fota-studio.svg",
        "./usr/share/icons/hicolor/256x256/apps/fota-studio.png",
    ):
        assert path in contents, path
    info = _run("dpkg-deb", "--field", str(deb), "Version", "Depends").stdout
    assert f"Version: {_pyproject_version()}" in info and "libxcb-cursor0" in info
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True, timeout=300)
    out = _run(str(tmp_path / "opt" / "fota-studio" / "fota-studio"), "--version")
    assert out.returncode == 0 and out.stdout.strip().endswith(_pyproject_version())


def test_deb_installs_and_removes_as_root() -> None:
    deb = _deb()
    if os.geteuid() != 0 or os.environ.get("FOTA_DEB_INSTALL") != "1":
        pytest.skip("installing the .deb needs root and FOTA_DEB_INSTALL=1")
    subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True, timeout=600)
    try:
        out = _run("/usr/bin/fota-studio", "--version")
        assert out.stdout.strip() == f"fota-studio {_pyproject_version()}"
        assert Path("/usr/share/mime/application/x-fota-package.xml").exists()
    finally:
        subprocess.run(["dpkg", "-r", "fota-studio"], check=True, capture_output=True, timeout=600)
    assert not Path("/opt/fota-studio").exists()
