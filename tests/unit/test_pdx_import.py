"""ODX-F / PDX import (issue 19 part 1): containers written by odxtools' own writer are read back,
their checksums verified, stored as a repository version and flashed into the simulated ECU;
a wrong checksum is refused naming the block; a loose container is refused strictly and
imported leniently with a per-problem report; the EA profile changes are offered, not applied."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from fota_studio.cli import main
from fota_studio.core.ea import StepKind
from fota_studio.core.errors import ImageError
from fota_studio.core.pdx import apply_profile_changes, profile_changes
from fota_studio.demo.catalog import demo_ecus
from fota_studio.demo.seed import ensure_demo
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.pdx_import import (
    accept_changes,
    import_container,
    offered_changes,
    read_container,
)
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace
from tests.fakes.flash import fast_ecu, fast_sim, flash_image, memory_matches

ROOT = Path(__file__).resolve().parents[2]


def _builder() -> ModuleType:
    name = "docs_tools_pdx_example"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "tools" / "pdx_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _workspace(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path / "ws")


def test_pdx_imports_as_its_blocks_and_flashes_the_simulated_ecu(
    tmp_path: Path, can_channel: str
) -> None:
    pdx = _builder()
    path = pdx.write_pdx(tmp_path / "hcu-1.7.0.pdx", "1.7.0")
    blocks = pdx.example_blocks("1.7.0")
    ws = _workspace(tmp_path)
    try:
        store = RepositoryStore(ws)
        result, done = import_container(store, path, create_repository=True)
        v = result.version
        # Identity from the container: company, ECU-MEM, the version OWN-IDENT, the hardware.
        assert (v.brand, v.model, v.version) == (pdx.BRAND, pdx.MODEL, "1.7.0")
        assert v.hardware_ids == (pdx.HARDWARE,)
        # Segments equal the container's data blocks: addresses and bytes.
        assert v.segments == tuple((a, len(d)) for a, d in blocks)
        image = store.load_image(v)
        assert [(s.address, s.data) for s in image.segments] == blocks
        assert len(done.checksums.verified) == 2 and not done.problems
        # ... and the image flashes the simulated ECU.
        ecu = fast_ecu("HCU")
        with fast_sim(ecu, can_channel, tmp_path / "sim") as sim:
            flashed = flash_image(ecu, can_channel, image, expected_version="1.7.0")
            assert flashed.ok, flashed.error
            assert memory_matches(sim, image)
        assert flashed.verified
    finally:
        ws.close()


@pytest.mark.parametrize(("bad", "name"), [(0, "DB_App"), (1, "DB_Cal")])
def test_wrong_checksum_is_refused_naming_the_block(tmp_path: Path, bad: int, name: str) -> None:
    path = _builder().write_pdx(tmp_path / "bad.pdx", "1.7.0", wrong_checksum_block=bad)
    ws = _workspace(tmp_path)
    try:
        store = RepositoryStore(ws)
        for lenient in (False, True):
            with pytest.raises(ImageError) as err:
                import_container(store, path, create_repository=True, lenient=lenient)
            assert f"data block {name}" in str(err.value)
            assert "bad.pdx" in str(err.value) and "CRC32" in str(err.value)
        assert not any(r.model == _builder().MODEL for r in store.list_repositories())
    finally:
        ws.close()


def test_loose_container_strict_refused_lenient_reports_each_problem(tmp_path: Path) -> None:
    pdx = _builder()
    loose = pdx.loosen(pdx.write_pdx(tmp_path / "ok.pdx", "1.7.0"), tmp_path / "loose.pdx")
    with pytest.raises(ImageError) as err:
        read_container(loose)
    assert "RAW-BINARY" in str(err.value) and "--lenient" in str(err.value)
    ws = _workspace(tmp_path)
    try:
        result, done = import_container(
            RepositoryStore(ws), loose, create_repository=True, lenient=True
        )
        problems = done.problems
        # odxtools' own complaint, our consequence for the block, and the unchecked checksum.
        assert any("odxtools" in p and "RAW-BINARY" in p for p in problems), problems
        assert any(p.startswith("DATABLOCK DB_Cal") and "ignored" in p for p in problems)
        assert any("CS_Cal" in p and "no imported data block" in p for p in problems)
        # What could be read is imported: the application block only, its checksum verified.
        assert result.version.segments == ((pdx.example_blocks("1.7.0")[0][0], 0x2C20),)
        assert done.checksums.verified and "CS_App" in done.checksums.verified[0]
    finally:
        ws.close()


def test_profile_changes_are_offered_and_applied_only_when_accepted(tmp_path: Path) -> None:
    pdx = _builder()
    path = pdx.write_pdx(tmp_path / "c.pdx", "1.7.0")
    container = read_container(path)
    hcu = next(e for e in demo_ecus() if e.name == "HCU")
    hcu.uds.data_format = 0x11
    changes = profile_changes(hcu, container.params)
    by_key = {c.key: c for c in changes}
    assert by_key["data_format"].current == "0x11" and by_key["data_format"].proposed == "0x00"
    assert by_key["timing.ecu_max_block_length"].proposed == "1026"
    assert "ENCRYPT-COMPRESS-METHOD" in by_key["data_format"].source
    # Unchanged parameters are not offered.
    assert "address_and_length_format" not in by_key
    changed = apply_profile_changes(hcu, [by_key["data_format"]])
    assert changed.uds.data_format == 0x00 and hcu.uds.data_format == 0x11
    assert changed.uds.timing.ecu_max_block_length == hcu.uds.timing.ecu_max_block_length
    ws = _workspace(tmp_path)
    try:
        ensure_demo(ws)  # the demo EA's HCU is of the container's Brand/Model
        store = RepositoryStore(ws)
        result, _ = import_container(store, path)
        eas = EaStore(ws)
        offers = offered_changes(eas, result.version, container)
        (ea_name, ecu_name), offered = next(iter(offers.items()))
        assert ecu_name == "HCU"
        before = eas.get(ea_name).ecu("HCU").uds.timing.ecu_max_block_length
        # Offering changed nothing; accepting one applies exactly that one.
        assert eas.get(ea_name).ecu("HCU").uds.timing.ecu_max_block_length == before
        block = [c for c in offered if c.key == "timing.ecu_max_block_length"]
        accept_changes(eas, ea_name, "HCU", block)
        assert eas.get(ea_name).ecu("HCU").uds.timing.ecu_max_block_length == 1026
        assert not any(
            c.key == "timing.ecu_max_block_length"
            for c in offered_changes(eas, result.version, container).get((ea_name, "HCU"), [])
        )
        assert eas.get(ea_name).ecu("HCU").uds.step(StepKind.CHECK) is not None
    finally:
        ws.close()


def test_cli_repo_import_pdx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`fota-studio repo import FILE.pdx` into the demo workspace's HCU repository."""
    ws = tmp_path / "ws"
    example = ROOT / "resources" / "examples" / "hcu-1.6.0.pdx"
    code = main(["--workspace", str(ws), "--log-level", "WARNING", "repo", "import", str(example)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"imported {_builder().BRAND} / {_builder().MODEL} 1.6.0" in out
    assert "checksum verified: CS_App" in out and "checksum verified: CS_Cal" in out
    assert "(NOT applied)" in out and "MAX-BLOCK-LENGTH" in out
    bad = _builder().write_pdx(tmp_path / "bad.pdx", "1.8.0", wrong_checksum_block=1)
    code = main(["--workspace", str(ws), "--log-level", "WARNING", "repo", "import", str(bad)])
    out, err = capsys.readouterr()
    assert code != 0 and "data block DB_Cal" in err


def test_shipped_example_is_what_the_builder_writes(tmp_path: Path) -> None:
    """The committed example reads back to the builder's blocks (rebuild it with
    `.venv/bin/python docs/tools/pdx_example.py` when the builder changes)."""
    pdx = _builder()
    container = read_container(ROOT / "resources" / "examples" / "hcu-1.6.0.pdx")
    assert [(b.address, b.data) for b in container.blocks] == pdx.example_blocks("1.6.0")
    assert container.version == "1.6.0" and not container.problems


def test_missing_flash_data_file_strict_refused_lenient_left_out(tmp_path: Path) -> None:
    """A PDX whose EXTERN-FLASHDATA file is missing: strict names the block, lenient leaves it
    out and says so (never a silent partial import)."""
    pdx = _builder()
    good = pdx.write_pdx(tmp_path / "ok.pdx", "1.7.0")
    holed = tmp_path / "holed.pdx"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(holed, "w") as zout:
        for item in zin.infolist():
            if item.filename != "calibration.bin":
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(ImageError) as err:
        read_container(holed)
    assert "DATABLOCK DB_Cal" in str(err.value) and "--lenient" in str(err.value)
    container = read_container(holed, lenient=True)
    assert [b.name for b in container.blocks] == ["DB_App"]
    assert any(p.startswith("DATABLOCK DB_Cal") for p in container.problems)


def test_cli_lenient_reports_each_ignored_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`repo import --lenient` imports a loose container and prints one line per problem."""
    pdx = _builder()
    loose = pdx.loosen(pdx.write_pdx(tmp_path / "ok.pdx", "1.7.0"), tmp_path / "loose.pdx")
    base = ["--workspace", str(tmp_path / "ws"), "--log-level", "WARNING", "repo", "import"]
    assert main([*base, str(loose)]) != 0
    assert "--lenient" in capsys.readouterr().err
    assert main([*base, "--lenient", str(loose)]) == 0
    out, err = capsys.readouterr()
    ignored = [line for line in err.splitlines() if line.startswith("ignored: ")]
    assert any("RAW-BINARY" in line for line in ignored)
    assert any("DATABLOCK DB_Cal" in line for line in ignored)
    assert any("CS_Cal" in line for line in ignored)
    assert "1 data block(s)" in out and "checksum verified: CS_App" in out
