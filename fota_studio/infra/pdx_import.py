"""Import an ODX-F / PDX flash container (ISO 22901-1) into a Software Repository version.

`read_container` opens a `.pdx` archive (or a bare `.odx-f` file) with odxtools and turns its
FLASH document into a `core.pdx.PdxContainer`: one flash session's data blocks with their ECU
addresses (SOURCE-START-ADDRESS + TARGET-ADDR-OFFSET; INTEL-HEX, MOTOROLA-S and BINARY flash data,
inside the ODX-F file or as a file in the archive), the checksums the session states, the
version (an OWN-IDENT named like *VERSION*, else the document's revision label), the ECU (the
ECU-MEM) and the hardware it fits (EXPECTED-IDENTs), and the flash parameters it states
(ADDRESS-LENGTH/SIZE-LENGTH, ENCRYPT-COMPRESS-METHOD, CHECKSUM-ALG, SECURITY-METHOD, and the
special data PROGRAMMING-SESSION / MAX-BLOCK-LENGTH).

Strict by default: a container that breaks the ODX rules is refused with odxtools' message.
`lenient=True` reads it with odxtools' non-strict mode and reports, one line per problem, what
was ignored (odxtools' own complaints and ours: a block without usable flash data, a checksum
we cannot compute). A checksum that does not match is refused in both modes, naming the block.

`import_container` stores the result like any other import (`RepositoryStore.prepare_import`
+ `commit_imports`, so the one duplicate/identical-image/policy path applies): the image is kept
as Intel HEX (it reloads without odxtools), the source name is the container's file name.

odxtools' strict switch is a module global: reads are serialised by a lock. Call from a worker
thread (`fota-ui-io`) or the CLI, never the GUI thread (a big container takes seconds).
"""

from __future__ import annotations

import io
import logging
import re
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fota_studio.core import firmware
from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.core.errors import ArchitectureError, ImageError, RepositoryError
from fota_studio.core.pdx import (
    ChecksumReport,
    FlashParams,
    PdxBlock,
    PdxChecksum,
    PdxContainer,
    ProfileChange,
    apply_profile_changes,
    checksum_kind,
    container_image,
    profile_changes,
    verify_checksums,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import ImportResult, PreparedImport, RepositoryStore, VersionInfo

log = logging.getLogger(__name__)

_STRICT_LOCK = threading.Lock()


@contextmanager
def _odx_mode(lenient: bool, problems: list[str]) -> Iterator[None]:
    """Run odxtools strict or not; in non-strict mode collect what it logs and warns."""
    import odxtools.exceptions as odx_exc
    from odxtools.globals import logger as odx_logger

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            problems.append(f"odxtools: {record.getMessage()}")

    handler = _Collect(level=logging.WARNING)
    with _STRICT_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = odx_exc.strict_mode
        odx_exc.strict_mode = not lenient
        odx_logger.addHandler(handler)
        try:
            yield
        finally:
            odx_logger.removeHandler(handler)
            odx_exc.strict_mode = old
            problems.extend(
                f"odxtools: {w.message}"
                for w in caught
                if issubclass(w.category, odx_exc.OdxWarning | odx_exc.OdxError)
            )


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    try:
        return int(t, 0) if t.lower().startswith("0x") else int(t)
    except ValueError:
        return None


def _value_bytes(raw: Any) -> bytes:
    """A CHECKSUM-RESULT value (bytefield, uint or hex text) as bytes."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if isinstance(raw, int):
        return raw.to_bytes(max(1, (raw.bit_length() + 7) // 8), "big")
    text = re.sub(r"\s", "", str(raw)).removeprefix("0x").removeprefix("0X")
    return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)


def _value_int(raw: Any) -> int | None:
    if isinstance(raw, int):
        return raw
    if isinstance(raw, bytes | bytearray):
        return int.from_bytes(raw, "big") if raw else None
    return _int(str(raw))


def _target_offset(block: Any) -> int:
    from odxtools.negoffset import NegOffset
    from odxtools.posoffset import PosOffset

    tao = block.target_addr_offset
    if isinstance(tao, PosOffset):
        return int(tao.positive_offset)
    if isinstance(tao, NegOffset):
        return -int(tao.negative_offset)
    return 0


def _block_pieces(block: Any, problems: list[str], where: str, *, lenient: bool) -> list[PdxBlock]:
    """The bytes of every segment of one DATABLOCK at their ECU addresses."""
    from bincopy import BinFile

    fd = block.flashdata
    if fd is None:
        problems.append(f"{where}: no FLASHDATA-REF (or it names nothing); block ignored")
        return []
    try:
        dataset = fd.dataset
    except Exception as exc:  # odxtools/bincopy raise many types for broken data
        problems.append(f"{where}: flash data {fd.short_name} cannot be read ({exc}); ignored")
        return []
    if dataset is None:
        problems.append(
            f"{where}: flash data {fd.short_name} has data format "
            f"{getattr(fd.dataformat.selection, 'value', '?')} (supplier-specific); ignored"
        )
        return []
    offset = _target_offset(block)
    out: list[PdxBlock] = []
    segments = list(block.segments)
    if not segments:
        problems.append(f"{where}: no SEGMENTS; the whole flash data is taken")
    for seg_index, seg in enumerate(segments or [None]):
        if seg is None:
            if isinstance(dataset, BinFile):
                pieces = [(int(s.minimum_address), bytes(s.data)) for s in dataset.segments]
            else:
                pieces = [(0, bytes(dataset))]
        else:
            start = int(seg.source_start_address)
            if seg.uncompressed_size is not None:
                end = start + int(seg.uncompressed_size)
            elif seg.source_end_address is not None:
                end = int(seg.source_end_address) + 1
            else:
                problems.append(f"{where}/{seg.short_name}: neither size nor end address; ignored")
                continue
            if isinstance(dataset, BinFile):
                data = bytes(dataset.as_binary(minimum_address=start, maximum_address=end))
            else:
                data = bytes(dataset[start:end])
            if len(data) != end - start and lenient:
                problems.append(
                    f"{where}/{seg.short_name}: the segment states {end - start} bytes from "
                    f"0x{start:X}, the flash data {fd.short_name} holds {len(data)} there; "
                    "segment left out"
                )
                continue
            if len(data) != end - start:
                raise ImageError(
                    f"{where}/{seg.short_name}: the segment states {end - start} bytes from "
                    f"0x{start:X}, the flash data {fd.short_name} holds {len(data)} there",
                    hint="the container is inconsistent; ask its supplier for a corrected one",
                )
            pieces = [(start, data)]
        name = (
            block.short_name
            if len(segments) <= 1
            else f"{block.short_name}/{segments[seg_index].short_name}"
        )
        for start, data in pieces:
            if data:
                out.append(PdxBlock(name, start + offset, data, str(block.data_type or "")))
    return out


def _ident_version(blocks: list[Any]) -> str:
    for block in blocks:
        for oi in block.own_idents:
            if "VERSION" in oi.short_name.upper():
                return str(oi.ident_value.value_raw).strip()
    return ""


def _params(session: Any, used: list[Any], problems: list[str]) -> FlashParams:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(key: str, value: Any, src: str) -> None:
        if value is None:
            return
        if key in values and values[key] != value:
            problems.append(
                f"{src}: {key} {value} differs from {values[key]} ({sources[key]}); "
                "the first one is offered"
            )
            return
        values.setdefault(key, value)
        sources.setdefault(key, src)

    for block in used:
        fd = block.flashdata
        if fd is None:
            continue
        put("address_length", fd.address_length, f"FLASHDATA {fd.short_name} ADDRESS-LENGTH")
        put("size_length", fd.size_length, f"FLASHDATA {fd.short_name} SIZE-LENGTH")
        methods = [(fd.encrypt_compress_method, f"FLASHDATA {fd.short_name}")]
        methods += [(s.encrypt_compress_method, f"SEGMENT {s.short_name}") for s in block.segments]
        for ecm, src in methods:
            if ecm is not None:
                put("data_format", _value_int(ecm.value), f"{src} ENCRYPT-COMPRESS-METHOD")
    for cs in session.checksums:
        kind = checksum_kind(cs.checksum_alg)
        if kind is not None:
            put("checksum_kind", kind, f"CHECKSUM {cs.short_name} CHECKSUM-ALG {cs.checksum_alg}")
    for sec in session.securities:
        if sec.security_method is not None:
            level = _value_int(sec.security_method.value)
            if level is None or not 0 < level < 0x7F:
                problems.append(
                    f"SESSION {session.short_name} SECURITY-METHOD "
                    f"{sec.security_method.value_raw!r} is not a requestSeed level; not offered"
                )
            else:
                put("security_level", level, f"SESSION {session.short_name} SECURITY-METHOD")
    for sdg in session.sdgs:
        for sd in getattr(sdg, "values", []):
            si = (getattr(sd, "semantic_info", None) or "").upper()
            key = {
                "PROGRAMMING-SESSION": "programming_session",
                "MAX-BLOCK-LENGTH": "max_block_length",
            }.get(si)
            if key is not None and hasattr(sd, "value"):
                number = _int(sd.value)
                if number is None:
                    problems.append(
                        f"SESSION {session.short_name} SD {si} {sd.value!r} is not a number"
                    )
                else:
                    put(key, number, f"SESSION {session.short_name} SD {si}")
    return FlashParams(sources=sources, **values)


def _load(path: Path, lenient: bool, problems: list[str]) -> Any:
    from odxtools.database import Database
    from odxtools.exceptions import OdxError

    try:
        with _odx_mode(lenient, problems):
            db = Database()
            if path.suffix.lower() == ".pdx":
                # From memory: odxtools keeps the archive's members open for the flash data it
                # reads later, so reading from the file would leave its handle open.
                db.add_pdx_file(zipfile.ZipFile(io.BytesIO(path.read_bytes())))
            else:
                db.add_odx_file(str(path))
            db.refresh()
            return db
    except (OdxError, KeyError, ValueError, TypeError, AttributeError, OSError) as exc:
        # zipfile.BadZipFile is an Exception subclass of its own; XML errors are ParseError.
        raise ImageError(
            f"not a readable ODX container: {type(exc).__name__}: {exc}",
            source=path.name,
            hint="import it with --lenient (odxtools' non-strict mode; every problem is reported)"
            if not lenient
            else "the container is too broken even for a lenient read",
        ) from exc
    except Exception as exc:
        raise ImageError(
            f"not a readable ODX container: {type(exc).__name__}: {exc}",
            source=path.name,
            hint="check that this is a .pdx archive or an .odx-f file",
        ) from exc


def read_container(
    path: str | Path, *, lenient: bool = False, session: str | None = None
) -> PdxContainer:
    """Read a .pdx / .odx-f file into a `PdxContainer` (checksums NOT yet verified).

    `session` picks the flash session by short name when the ECU-MEM holds several (the
    default is the only one; with several, the caller must choose: the error names them).
    """
    p = Path(path)
    if not p.is_file():
        raise RepositoryError(f"{p}: no such file", hint="check the path")
    problems: list[str] = []
    db = _load(p, lenient, problems)
    mems = [(flash, mem) for flash in db.flashs for mem in flash.ecu_mems]
    if not mems:
        raise ImageError(
            "holds no FLASH document with an ECU-MEM (is it a diagnostic-only PDX?)",
            source=p.name,
            hint="import the supplier's flash container (ODX-F), not the diagnostic database",
        )
    if len(mems) > 1:
        problems.append(
            f"{len(mems)} ECU-MEMs ({', '.join(m.short_name for _, m in mems)}); the first one "
            f"({mems[0][1].short_name}) is imported"
        )
    flash, ecu_mem = mems[0]
    sessions = list(ecu_mem.mem.sessions)
    if session is not None:
        sessions = [s for s in sessions if s.short_name == session]
        if not sessions:
            names = ", ".join(s.short_name for s in ecu_mem.mem.sessions) or "none"
            raise ImageError(f"has no session {session!r} (sessions: {names})", source=p.name)
    if len(sessions) > 1:
        names = ", ".join(s.short_name for s in sessions)
        raise ImageError(
            f"ECU-MEM {ecu_mem.short_name} has several flash sessions ({names})",
            source=p.name,
            hint="choose one (CLI: --session NAME)",
        )
    with _odx_mode(lenient, problems):
        if sessions:
            ses = sessions[0]
            used = list(ses.datablocks)
            session_name = ses.short_name
        else:
            ses = None
            used = list(ecu_mem.mem.datablocks)
            session_name = ""
            problems.append(f"ECU-MEM {ecu_mem.short_name} has no SESSION; all data blocks taken")
        blocks: list[PdxBlock] = []
        for block in used:
            blocks.extend(
                _block_pieces(block, problems, f"DATABLOCK {block.short_name}", lenient=lenient)
            )
        checksums: list[PdxChecksum] = []
        hardware: list[str] = []
        params = FlashParams()
        if ses is not None:
            for cs in ses.checksums:
                try:
                    start = int(cs.source_start_address)
                    if cs.source_end_address is not None:
                        end = int(cs.source_end_address)
                    elif cs.uncompressed_size is not None:
                        end = start + int(cs.uncompressed_size) - 1
                    else:
                        problems.append(
                            f"CHECKSUM {cs.short_name}: no end address or size; not checked"
                        )
                        continue
                    expected = _value_bytes(cs.checksum_result.value)
                except (ValueError, TypeError, AttributeError) as exc:
                    if not lenient:
                        raise ImageError(
                            f"CHECKSUM {cs.short_name} is unreadable: {exc}", source=p.name
                        ) from exc
                    problems.append(f"CHECKSUM {cs.short_name} is unreadable ({exc}); not checked")
                    continue
                checksums.append(
                    PdxChecksum(
                        cs.short_name, cs.checksum_alg or "", start, end, expected, cs.fillbyte
                    )
                )
            for ei in ses.expected_idents:
                if "HW" in ei.short_name.upper() or "HARDWARE" in ei.short_name.upper():
                    hardware.extend(str(v.value_raw).strip() for v in ei.ident_values)
            params = _params(ses, used, problems)
    version = _ident_version(used)
    if not version and flash.admin_data is not None and flash.admin_data.doc_revisions:
        version = str(flash.admin_data.doc_revisions[-1].revision_label or "").strip()
    brand = ""
    if flash.company_datas:
        cd = flash.company_datas[0]
        brand = (cd.long_name or cd.short_name or "").strip()
    if problems and not lenient:
        shown = "; ".join(problems[:5]) + (
            f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        raise ImageError(
            f"the container breaks the ODX rules or cannot be read completely: {shown}",
            source=p.name,
            hint="import it with --lenient (odxtools' non-strict mode; every problem is "
            "reported and what cannot be read is left out)",
        )
    return PdxContainer(
        source_name=p.name,
        flash_name=flash.short_name,
        ecu_name=ecu_mem.short_name,
        session_name=session_name,
        brand=brand,
        model=(ecu_mem.long_name or ecu_mem.short_name or "").strip(),
        version=version,
        blocks=tuple(blocks),
        checksums=tuple(checksums),
        hardware_ids=tuple(h for h in hardware if h),
        params=params,
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class ContainerImport:
    """A container read and checked, ready to store: the prepared import + what was checked."""

    container: PdxContainer
    prepared: PreparedImport
    checksums: ChecksumReport

    @property
    def problems(self) -> tuple[str, ...]:
        """What a lenient read ignored plus the checksums it could not check."""
        return self.container.problems + self.checksums.unchecked


def prepare_container(
    store: RepositoryStore,
    path: str | Path,
    *,
    brand: str | None = None,
    model: str | None = None,
    version: str | None = None,
    notes: str = "",
    lenient: bool = False,
    session: str | None = None,
    create_repository: bool = False,
    imported_by: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> ContainerImport:
    """Read, verify and prepare a container import (stores nothing).

    Brand/model/version default to the container's (company, ECU-MEM, version ident); given
    ones win (an engineer files a supplier's ECU under the repository it belongs to).
    """
    p = Path(path)
    if store.require_signed_packages:
        raise RepositoryError(
            f"{p.name}: this workspace accepts only signed firmware packages; a PDX container "
            "carries no signature we can check against the workspace's trusted keys",
            hint="wrap the image in a signed package, or turn the policy off with "
            "`fota-studio repo require-signed off`",
        )
    if progress is not None:
        progress(0.05)
    container = read_container(p, lenient=lenient, session=session)
    if progress is not None:
        progress(0.5)
    image = container_image(container)
    report = verify_checksums(container, image, lenient=lenient)
    for what, given, stated in (
        ("brand", brand, container.brand),
        ("model", model, container.model),
        ("version", version, container.version),
    ):
        if not (given or stated):
            raise RepositoryError(
                f"{p.name}: the container states no {what}",
                hint=f"give the {what} (CLI: --{what})",
            )
    item = store.prepare_import(
        brand or container.brand,
        model or container.model,
        version or container.version,
        firmware.to_hex(image),
        source_name=p.name,
        notes=notes or f"from {container.flash_name}/{container.ecu_name}/{container.session_name}",
        fmt="hex",
        imported_by=imported_by,
        create_repository=create_repository,
    )
    if container.hardware_ids:
        from dataclasses import replace

        item = replace(item, hardware_ids=container.hardware_ids)
    if progress is not None:
        progress(0.8)
    return ContainerImport(container, item, report)


def import_container(
    store: RepositoryStore, path: str | Path, **kw: Any
) -> tuple[ImportResult, ContainerImport]:
    """`prepare_container` then store it; returns the stored version and what was checked."""
    prepared = prepare_container(store, path, **kw)
    result = store.commit_imports([prepared.prepared])[0]
    return result, prepared


def offered_changes(
    eas: EaStore, version: VersionInfo, container: PdxContainer
) -> dict[tuple[str, str], list[ProfileChange]]:
    """Per (EA, ECU) whose Brand/Model is the imported version's: the container's flash
    parameters that differ from that ECU's profile. Nothing is applied."""
    out: dict[tuple[str, str], list[ProfileChange]] = {}
    for name in eas.names():
        ea = eas.find(name)
        if ea is None:
            continue
        for ecu in ea.ecus:
            if (ecu.brand, ecu.model) == (version.brand, version.model):
                changes = profile_changes(ecu, container.params)
                if changes:
                    out[(name, ecu.name)] = changes
    return out


def accept_changes(
    eas: EaStore, ea_name: str, ecu_name: str, accepted: Sequence[ProfileChange]
) -> ElectronicArchitecture:
    """Apply the changes the engineer accepted to one ECU of one EA and save the EA (validated
    by `EaStore.save`, which refuses an EA with errors). Returns the saved EA."""
    ea = eas.get(ea_name)
    for index, ecu in enumerate(ea.ecus):
        if ecu.name == ecu_name:
            ea.ecus[index] = apply_profile_changes(ecu, accepted)
            break
    else:
        raise ArchitectureError(f'EA "{ea_name}" has no ECU "{ecu_name}"')
    eas.save(ea)
    return ea
