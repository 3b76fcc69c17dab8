"""The one flash-target resolver (`engine/targets.py`) and the one image-fits rule
(`core/image_fit.py`): what the CLI, the Flash panel and the workflow flash is resolved and
refused in one place, and the EA validator and the flash job agree about an ECU without memory
regions (before, the validator refused such an EA while the flash job wrote the image)."""

from __future__ import annotations

import copy
from pathlib import Path

import can
import pytest

from fota_studio.core import firmware
from fota_studio.core.ea import ProtectedRange, UdsProfile
from fota_studio.core.ea_format import save_ea_file
from fota_studio.core.ea_validate import check_image_fits
from fota_studio.core.errors import ConfigurationError, FotaError
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.core.image_fit import ImageLayoutError, image_fit_problems
from fota_studio.demo.catalog import (
    APP_REGION_LENGTH,
    APP_REGION_START,
    DEMO_MACHINES,
    DEMO_REPOSITORIES,
    app_header,
    demo_ecus,
)
from fota_studio.demo.seed import ensure_demo
from fota_studio.engine.engine import Engine
from fota_studio.engine.targets import (
    BrandModelMismatchError,
    resolve_file_target,
    resolve_flash_target,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace
from fota_studio.protocols.bus import BusSettings

MACHINE = DEMO_MACHINES[0]
VCU = DEMO_REPOSITORIES[0]


@pytest.fixture
def ws(workspace_dir: Path):
    w = Workspace.open(workspace_dir)
    ensure_demo(w)
    yield w
    w.close()


def _hex(address: int, version: str = "9.0.0") -> bytes:
    body = app_header(version) + bytes(range(256)) * 2
    return firmware.to_hex(FirmwareImage((Segment(address, body),)))


def test_resolves_a_repository_version(ws: Workspace) -> None:
    t = resolve_flash_target(ws, MACHINE, "VCU", "3.2.0")
    assert (t.machine, t.ecu.name, t.label, t.expected_version) == (
        MACHINE,
        "VCU",
        "3.2.0",
        "3.2.0",
    )
    assert t.installed_version == VCU.installed_version
    assert t.version is not None and t.version.sha256 == t.image.sha256()
    assert (
        resolve_flash_target(ws, MACHINE, "VCU", "3.2.0", expected_version="x").expected_version
        == "x"
    )


def test_refusals_name_what_to_do(ws: Workspace) -> None:
    with pytest.raises(ConfigurationError, match="HCX"):
        resolve_flash_target(ws, MACHINE, "HCX", "3.2.0")
    with pytest.raises(FotaError, match="no machine"):
        resolve_flash_target(ws, "Unit #9999", "VCU", "3.2.0")
    hcu = DEMO_REPOSITORIES[1]
    with pytest.raises(BrandModelMismatchError, match="but ECU VCU is"):
        resolve_flash_target(ws, MACHINE, "VCU", "1.5.0", brand=hcu.brand, model=hcu.model)


def test_an_image_outside_the_regions_is_refused_by_the_resolver(ws: Workspace) -> None:
    RepositoryStore(ws).import_bytes(
        VCU.brand,
        VCU.model,
        "9.0.0",
        _hex(APP_REGION_START + APP_REGION_LENGTH),
        source_name="x.hex",
    )
    with pytest.raises(ImageLayoutError, match="outside every writable region"):
        resolve_flash_target(ws, MACHINE, "VCU", "9.0.0")


def test_file_target_validates_the_ea_and_the_fit(ws: Workspace, tmp_path: Path) -> None:
    ea_file = tmp_path / "x200.ea.yaml"
    fw = tmp_path / "app.hex"
    fw.write_bytes(_hex(APP_REGION_START))
    ea = EaStore(ws).get(EaStore(ws).get_machine(MACHINE).ea_name or "")
    save_ea_file(ea, ea_file)
    t = resolve_file_target(ws, ea_file, "VCU", fw, expected_version="9.0.0")
    assert (t.label, t.expected_version, t.version) == ("app.hex", "9.0.0", None)
    broken = copy.deepcopy(ea)
    broken.ecus[0].uds.memory_regions = []
    save_ea_file(broken, ea_file)
    with pytest.raises(ConfigurationError, match=r"not valid.*no writable memory region"):
        resolve_file_target(ws, ea_file, "VCU", fw)


def test_fit_rule_cases() -> None:
    profile = UdsProfile(protected_ranges=[ProtectedRange("boot", 0x1_0000, 0x100)])
    start = profile.memory_regions[0].start
    assert image_fit_problems(profile, [(start + 0x1000, 0x10)]) == []
    msgs = [p.message for p in image_fit_problems(profile, [(start, 0x10), (0, 4), (start, 0)])]
    assert "overlaps the protected range" in msgs[0]
    assert "outside every writable region" in msgs[1]
    assert "is empty" in msgs[2]
    none = UdsProfile(memory_regions=[])
    assert "nothing can be flashed" in image_fit_problems(none, [(start, 0x10)])[0].message


def test_validator_and_flash_job_agree_on_an_ecu_without_regions(can_channel: str) -> None:
    ecu = copy.deepcopy(next(e for e in demo_ecus() if e.name == "VCU"))
    ecu.uds.memory_regions = []
    image = FirmwareImage((Segment(APP_REGION_START, app_header("9.0.0") + b"\x11" * 256),))
    assert check_image_fits(ecu, [(APP_REGION_START, 288)])  # the validator refuses ...
    listener = can.Bus(interface="virtual", channel=can_channel, ignore_config=True)
    engine = Engine()
    try:
        engine.open_channel(ecu.connection.channel, BusSettings("virtual", can_channel))
        result = engine.submit_flash(ecu.connection.channel, ecu, image).result(timeout=30)
        assert not result.ok  # ... and so does the flash job, before anything is sent
        assert "nothing can be flashed" in str(result.error)
        assert listener.recv(timeout=0.3) is None
    finally:
        engine.shutdown()
        listener.shutdown()
