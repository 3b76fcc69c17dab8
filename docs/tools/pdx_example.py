"""Build the shipped ODX-F / PDX example (`resources/examples/hcu-1.6.0.pdx`) with
odxtools' own writer, and the variants the tests need (a wrong checksum, a loose container).

The container describes the demo machine's HCU, a reference ECU the simulator models
(`core/reference_ecu.py`): two
data blocks in its application region, one as INTEL-HEX data inside the ODX-F file (the
application header with the version + code) and one as a BINARY file in the PDX archive placed
by a TARGET-ADDR-OFFSET, one CRC32 checksum per block in the flash session, the software version
as OWN-IDENT, the hardware it fits as EXPECTED-IDENT, and the flash parameters a tester needs
(ADDRESS-LENGTH/SIZE-LENGTH, ENCRYPT-COMPRESS-METHOD, a SECURITY-METHOD, and the programming
session and block size as special data). Pure functions, no Qt; any thread.

    .venv/bin/python docs/tools/pdx_example.py            # rewrite the shipped example
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odxtools.admindata import AdminData  # noqa: E402
from odxtools.checksum import Checksum  # noqa: E402
from odxtools.companydata import CompanyData  # noqa: E402
from odxtools.database import Database  # noqa: E402
from odxtools.datablock import Datablock  # noqa: E402
from odxtools.datafile import Datafile  # noqa: E402
from odxtools.dataformat import Dataformat  # noqa: E402
from odxtools.dataformatselection import DataformatSelection  # noqa: E402
from odxtools.docrevision import DocRevision  # noqa: E402
from odxtools.ecumem import EcuMem  # noqa: E402
from odxtools.encryptcompressmethod import EncryptCompressMethod  # noqa: E402
from odxtools.encryptcompressmethodtype import EncryptCompressMethodType  # noqa: E402
from odxtools.expectedident import ExpectedIdent  # noqa: E402
from odxtools.externflashdata import ExternFlashdata  # noqa: E402
from odxtools.flash import Flash  # noqa: E402
from odxtools.flashdata import Flashdata  # noqa: E402
from odxtools.identvalue import IdentValue  # noqa: E402
from odxtools.identvaluetype import IdentValueType  # noqa: E402
from odxtools.internflashdata import InternFlashdata  # noqa: E402
from odxtools.mem import Mem  # noqa: E402
from odxtools.nameditemlist import NamedItemList  # noqa: E402
from odxtools.odxlink import DocType, OdxDocFragment, OdxLinkId, OdxLinkRef  # noqa: E402
from odxtools.ownident import OwnIdent  # noqa: E402
from odxtools.posoffset import PosOffset  # noqa: E402
from odxtools.security import Security  # noqa: E402
from odxtools.segment import Segment  # noqa: E402
from odxtools.session import Session  # noqa: E402
from odxtools.sessionsubelemtype import SessionSubElemType  # noqa: E402
from odxtools.specialdata import SpecialData  # noqa: E402
from odxtools.specialdatagroup import SpecialDataGroup  # noqa: E402
from odxtools.validityfor import ValidityFor  # noqa: E402
from odxtools.writepdxfile import write_pdx_file  # noqa: E402

from fota_studio.core.firmware import FirmwareImage, to_hex  # noqa: E402
from fota_studio.core.reference_ecu import APP_REGION_START, app_header  # noqa: E402

EXAMPLE = ROOT / "resources" / "examples" / "hcu-1.6.0.pdx"
EXAMPLE_VERSION = "1.6.0"
FLASH_NAME = "FL_HCU"
#: The demo machine's hydraulics ECU (demo/catalog.py): its repository and hardware.
BRAND = "Bosch Rexroth"
MODEL = "BODAS RC5-6/40"
HARDWARE = "RC5-6/40 rev C"
DOC = (OdxDocFragment(FLASH_NAME, DocType.FLASH),)
#: Where the second (BINARY) block goes: its bytes start at source address 0 in the .bin file,
#: the TARGET-ADDR-OFFSET moves them here.
CAL_ADDRESS = APP_REGION_START + 0x8000


def _id(local: str) -> OdxLinkId:
    return OdxLinkId(local, DOC)


def example_blocks(
    version: str, code_bytes: int = 0x2C00, cal_bytes: int = 0x1200
) -> list[tuple[int, bytes]]:
    """The two data blocks (address, bytes): header + code, and a calibration block."""
    code = app_header(version) + bytes((i * 7 + 3) & 0xFF for i in range(code_bytes))
    cal = bytes((i * 13 + 1) & 0xFF for i in range(cal_bytes))
    return [(APP_REGION_START, code), (CAL_ADDRESS, cal)]


def _crc32_hex(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08X}"


def _flashdata_fields(name: str, selection: DataformatSelection) -> dict[str, Any]:
    """What the INTERN and EXTERN flash data `FD_<name>` share: 4-byte address and size
    fields, the data format, no encryption or compression (method 00)."""
    return {
        "odx_id": _id(f"FD.{name}"),
        "short_name": f"FD_{name}",
        "size_length": 4,
        "address_length": 4,
        "dataformat": Dataformat(selection=selection),
        "encrypt_compress_method": EncryptCompressMethod(
            value_raw="00", value_type=EncryptCompressMethodType.A_BYTEFIELD
        ),
    }


def _datablock_fields(
    name: str, long_name: str, data_type: str, index: int, **segment: int
) -> dict[str, Any]:
    """The fields of data block `DB_<name>`: its flash data `FD_<name>` and its one segment
    `SEG_<name>` (`segment`: that segment's addresses / size)."""
    return {
        "odx_id": _id(f"DB.{name}"),
        "short_name": f"DB_{name}",
        "long_name": long_name,
        "data_type": data_type,
        "logical_block_index": index,
        "flashdata_ref": OdxLinkRef.from_id(_id(f"FD.{name}")),
        "segments": NamedItemList(
            [Segment(odx_id=_id(f"SEG.{name}"), short_name=f"SEG_{name}", **segment)]
        ),
    }


def build_database(
    version: str = EXAMPLE_VERSION,
    *,
    blocks: list[tuple[int, bytes]] | None = None,
    wrong_checksum_block: int | None = None,
    security_level: int = 0x03,
) -> Database:
    """An odxtools `Database` holding one FLASH document for the reference ECU.

    `wrong_checksum_block` (0 or 1) stores a checksum that does not match that block's data.
    """
    blocks = blocks or example_blocks(version)
    (code_addr, code), (cal_addr, cal) = blocks
    db = Database()
    code_hex = to_hex(FirmwareImage.from_segments([(code_addr, code)])).decode("ascii")
    flashdatas: list[Flashdata] = [
        InternFlashdata(**_flashdata_fields("App", DataformatSelection.INTEL_HEX), data=code_hex),
        ExternFlashdata(
            **_flashdata_fields("Cal", DataformatSelection.BINARY),
            datafile=Datafile(value="calibration.bin", latebound_datafile=False),
        ),
    ]
    # BINARY extern flash data is read from the PDX as hex text (odxtools' Flashdata.dataset).
    db.add_auxiliary_file("calibration.bin", io.BytesIO(cal.hex().upper().encode("ascii")))
    datablocks = [
        Datablock(
            **_datablock_fields(
                "App",
                "Application",
                "CODE",
                0,
                source_start_address=code_addr,
                uncompressed_size=len(code),
            ),
            own_idents=NamedItemList(
                [
                    OwnIdent(
                        odx_id=_id("OI.App.Version"),
                        short_name="SW_VERSION",
                        ident_value=IdentValue(
                            value_raw=version, value_type=IdentValueType.A_ASCIISTRING
                        ),
                    )
                ]
            ),
        ),
        Datablock(
            **_datablock_fields(
                "Cal",
                "Calibration",
                "DATA",
                1,
                source_start_address=0,
                source_end_address=len(cal) - 1,
            ),
            target_addr_offset=PosOffset(positive_offset=cal_addr),
        ),
    ]
    checksums = []
    for index, (name, addr, data) in enumerate(
        (("CS_App", code_addr, code), ("CS_Cal", cal_addr, cal))
    ):
        value = _crc32_hex(data)
        if index == wrong_checksum_block:
            value = _crc32_hex(data + b"\x00")
        checksums.append(
            Checksum(
                odx_id=_id(f"CS.{name}"),
                short_name=name,
                source_start_address=addr,
                source_end_address=addr + len(data) - 1,
                checksum_alg="CRC32",
                checksum_result=ValidityFor(
                    value_raw=value, value_type=SessionSubElemType.A_BYTEFIELD
                ),
            )
        )
    session = Session(
        odx_id=_id("SES.Update"),
        short_name="SES_Update",
        long_name="Application update",
        expected_idents=NamedItemList(
            [
                ExpectedIdent(
                    odx_id=_id("EI.Hardware"),
                    short_name="HW_NUMBER",
                    ident_values=[
                        IdentValue(value_raw=HARDWARE, value_type=IdentValueType.A_ASCIISTRING)
                    ],
                )
            ]
        ),
        checksums=NamedItemList(checksums),
        securities=[
            Security(
                security_method=ValidityFor(
                    value_raw=str(security_level), value_type=SessionSubElemType.A_UINT32
                )
            )
        ],
        datablock_refs=[OdxLinkRef.from_id(_id("DB.App")), OdxLinkRef.from_id(_id("DB.Cal"))],
        sdgs=[
            SpecialDataGroup(
                semantic_info="FLASH-PARAMETERS",
                values=[
                    SpecialData(semantic_info="PROGRAMMING-SESSION", value="0x02"),
                    SpecialData(semantic_info="MAX-BLOCK-LENGTH", value="1026"),
                ],
            )
        ],
    )
    flash = Flash(
        odx_id=_id("FL.HCU"),
        short_name=FLASH_NAME,
        long_name="HCU application",
        admin_data=AdminData(
            doc_revisions=[DocRevision(revision_label=version, date="2026-12-01T00:00:00")]
        ),
        company_datas=NamedItemList(
            [CompanyData(odx_id=_id("CD.Supplier"), short_name="BoschRexroth", long_name=BRAND)]
        ),
        ecu_mems=NamedItemList(
            [
                EcuMem(
                    odx_id=_id("EM.HCU"),
                    short_name="HCU",
                    long_name=MODEL,
                    mem=Mem(
                        sessions=NamedItemList([session]),
                        datablocks=NamedItemList(datablocks),
                        flashdatas=NamedItemList(flashdatas),
                    ),
                )
            ]
        ),
    )
    db.flashs.append(flash)
    db.short_name = "HcuFlash"
    db.refresh()
    return db


def write_pdx(path: Path, version: str = EXAMPLE_VERSION, **kw: object) -> Path:
    """Write the container (see `build_database` for the options) to `path` with odxtools."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pdx_file(str(path), build_database(version, **kw))  # type: ignore[arg-type]
    return path


def loosen(src: Path, dst: Path) -> Path:
    """Copy the container `src` to `dst` with one fault other makers' files have: a data format
    selection the ODX schema does not know (RAW-BINARY)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith(".odx-f"):
                data = data.replace(b'SELECTION="BINARY"', b'SELECTION="RAW-BINARY"')
            zout.writestr(item, data)
    return dst


def main(argv: list[str] | None = None) -> int:
    """Rewrite the shipped example (or write one to --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=EXAMPLE, help="where to write the .pdx")
    args = parser.parse_args(argv)
    write_pdx(args.out)
    sys.stdout.write(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
