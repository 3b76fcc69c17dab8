"""What to flash, resolved once: machine → EA → ECU → version → flash policy → image → fit.

`resolve_flash_target` is the one place that turns "version V into ECU E of machine M" into
something the flash job can run, for every entry point: the `flash` command, the GUI's Flash
panel and the update-request workflow. It refuses, with errors that say what to do, a machine
without an EA, an unknown ECU, firmware of another Brand/Model, a version the repository does not
have or whose file no longer matches its hashes, anything the one flash policy refuses
(`infra/trust.check_flashable`: signature and trusted key, hardware, bootloader, downgrade), and
an image that does not fit the ECU (`core/image_fit.py`). `resolve_file_target` does the same for
an EA file plus a firmware file (`flash --ea/--firmware`). Both read and hash whole images: call
them on a worker or command thread, never on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fota_studio.core.ea import EcuDefinition, ElectronicArchitecture
from fota_studio.core.errors import ConfigurationError, RepositoryError
from fota_studio.core.firmware import FirmwareImage, load_image_file
from fota_studio.core.image_fit import require_image_fits
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore, VersionInfo
from fota_studio.infra.trust import TrustStore, check_flashable


class BrandModelMismatchError(ConfigurationError):
    """The firmware's Brand/Model is not the ECU's (the wrong repository for this ECU)."""


@dataclass(frozen=True)
class FlashTarget:
    """A resolved flash: where (machine, ECU of its EA), what (image) and what to expect.

    `version` is the repository version (None for a firmware file); `label` what records and
    progress call it; `expected_version` what the ECU must report afterwards (None: not
    checked); `installed_version` what the workspace says the ECU runs now.
    """

    machine: str
    ea: ElectronicArchitecture
    ecu: EcuDefinition
    image: FirmwareImage
    label: str
    expected_version: str | None
    version: VersionInfo | None = None
    installed_version: str | None = None


def _require_fit(ecu: EcuDefinition, image: FirmwareImage) -> None:
    """The one image-fits rule (core/image_fit.py); ImageLayoutError when it does not fit."""
    require_image_fits(
        ecu.uds, [(s.address, len(s.data)) for s in image.segments], ecu_name=ecu.name
    )


def machine_ecu(ws: Any, machine: str, ecu: str) -> tuple[ElectronicArchitecture, EcuDefinition]:
    """The EA of `machine` and its ECU `ecu`; ConfigurationError naming what to do."""
    eas = EaStore(ws)
    m = eas.get_machine(machine)
    if not m.ea_name:
        raise ConfigurationError(
            f'machine "{machine}" is not assigned to an Electronic Architecture',
            hint="assign it with `fota-studio ea assign`",
        )
    ea = eas.get(m.ea_name)
    try:
        return ea, ea.ecu(ecu)
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None


def resolve_flash_target(
    ws: Any,
    machine: str,
    ecu: str,
    version: str,
    *,
    brand: str | None = None,
    model: str | None = None,
    expected_version: str | None = None,
    bootloader_version: str | None = None,
) -> FlashTarget:
    """Resolve `version` for ECU `ecu` of `machine` from the workspace.

    The repository is the ECU's Brand/Model unless `brand`/`model` name another one (an update
    request stores its own), which is refused with BrandModelMismatchError. The image is loaded
    (re-hashed against the version row), the flash policy applied (NotFlashableError) and the
    image checked against the ECU's memory layout (ImageLayoutError). `expected_version`
    defaults to `version`.
    """
    ea, definition = machine_ecu(ws, machine, ecu)
    b, mo = brand or definition.brand, model or definition.model
    if (b, mo) != (definition.brand, definition.model):
        raise BrandModelMismatchError(
            f"firmware is for {b} / {mo} but ECU {definition.name} is "
            f"{definition.brand} / {definition.model}",
            hint="choose a version from the ECU's own Software Repository",
        )
    repo = RepositoryStore(ws)
    info = repo.get_version(b, mo, version)
    installed = EaStore(ws).get_machine(machine).installed.get(definition.name)
    check_flashable(
        ws,
        info,
        ecu=definition,
        machine=machine,
        installed_version=installed,
        bootloader_version=bootloader_version,
    )
    image = repo.load_image(info)  # re-hashes the file and the image data
    _require_fit(definition, image)
    return FlashTarget(
        machine=machine,
        ea=ea,
        ecu=definition,
        image=image,
        label=version,
        expected_version=expected_version or version,
        version=info,
        installed_version=installed,
    )


def resolve_file_target(
    ws: Any,
    ea_file: Path,
    ecu: str,
    firmware_file: Path,
    *,
    base_address: int | None = None,
    label: str | None = None,
    expected_version: str | None = None,
    machine: str = "",
) -> FlashTarget:
    """Resolve a firmware file for ECU `ecu` of an EA file (no repository, no signature).

    Refused when the workspace requires signed packages (a plain file cannot carry one), when
    the EA file does not validate and when the image does not fit the ECU.
    """
    from fota_studio.core.ea_format import load_ea_file
    from fota_studio.core.ea_validate import Severity, validate

    if TrustStore(ws).require_signed_packages:
        raise RepositoryError(
            f"{firmware_file}: this workspace requires firmware packages signed by a trusted "
            "key; a plain file cannot be flashed",
            hint="import a signed package with `fota-studio repo import` and flash it with "
            "--machine/--version",
        )
    loaded = load_ea_file(ea_file)
    ea = loaded.ea
    errors = [p for p in validate(ea) if p.severity is Severity.ERROR]
    if errors:
        listed = "; ".join(f"{loaded.where(p.path)}: {p.message}" for p in errors[:3])
        raise ConfigurationError(
            f"{ea_file}: the EA is not valid: {listed}"
            + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""),
            hint=f"run `fota-studio ea validate {ea_file}` and fix the file; nothing was sent",
        )
    try:
        definition = ea.ecu(ecu)
    except KeyError as exc:
        raise ConfigurationError(f"{ea_file}: {exc.args[0]}") from None
    image, _fmt = load_image_file(firmware_file, base_address=base_address)
    _require_fit(definition, image)
    return FlashTarget(
        machine=machine,
        ea=ea,
        ecu=definition,
        image=image,
        label=label or firmware_file.name,
        expected_version=expected_version,
    )
