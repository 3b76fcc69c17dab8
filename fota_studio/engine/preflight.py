"""The pre-flight summary of one flash: from → to, what kind of change, policy, time, checks.

`build_preflight` is the one place the technician view and the Flash panel turn "version V
into ECU E of machine M" plus what the ECU said (`engine/ecu_info.EcuInfo`, None before it was
asked) into the facts a technician confirms: the version the ECU reports next to the one the
workspace recorded, whether the change is an upgrade, a downgrade or a re-flash (the one
version ordering, `core/versions.compare_versions`), whether the package is signed and whether
the flash policy (`infra/trust`, the same rule the resolver applies) refuses it, the estimated
time (`core/flash_plan`, measured earlier flashes when there are some) and the preconditions
with their live values. `confirm_text` is the from → to question Start asks, and
`left_in_bootloader` tells from a flash record whether a flash that did not end well left the
ECU in its bootloader (what the result screen must say, with "Re-run the flash").

Only small workspace reads (no image is loaded or hashed): callable on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fota_studio.core.ea import EcuDefinition, StepKind
from fota_studio.core.errors import FotaError
from fota_studio.core.flash_plan import SEGMENT_STEPS, make_plan
from fota_studio.core.flash_record import FlashRecord
from fota_studio.core.versions import compare_versions
from fota_studio.engine.ecu_info import EcuInfo, PreconditionReading
from fota_studio.engine.estimates import erase_ranges, measured_flashes
from fota_studio.engine.flash_job import (
    APPLICATION_START_STEP,
    BOOTLOADER_ENTRY_STEP,
    BOOTLOADER_READY_STEP,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.trust import TrustStore

CHANGE_UPGRADE = "upgrade"
CHANGE_DOWNGRADE = "downgrade"
CHANGE_REFLASH = "re-flash"
CHANGE_UNKNOWN = "unknown"  # the ECU's version is not known (not asked, silent, bootloader)


@dataclass(frozen=True)
class Preflight:
    """What a technician confirms before a flash (see the module docstring)."""

    machine: str
    ecu: str
    target: str
    recorded: str | None  # what the workspace says the ECU runs
    on_ecu: str | None  # what the ECU itself reported (None: not asked or no answer)
    asked_ecu: bool
    in_bootloader: bool
    change: str
    signature: str  # "signed by …" / "unsigned"
    signed: bool
    policy_problem: str  # why the flash policy refuses it ("" = allowed)
    estimated_s: float
    bytes_total: int
    segments: int
    estimate_basis: str
    verified_after: bool  # the version is read back after the reset
    preconditions: tuple[PreconditionReading, ...]
    blocking: tuple[str, ...]  # one line per reason the flash cannot start now
    ecu_problem: str
    #: The EA's preconditions by name (shown before the ECU was asked).
    checks: tuple[str, ...] = ()

    @property
    def from_version(self) -> str:
        """The version the flash starts from: the ECU's answer first, the record otherwise."""
        if self.on_ecu:
            return self.on_ecu
        if self.in_bootloader:
            return "bootloader (no application)"
        return self.recorded or "unknown"

    @property
    def record_disagrees(self) -> bool:
        """The ECU reports another version than the workspace recorded."""
        return bool(self.on_ecu and self.recorded and self.on_ecu != self.recorded)

    @property
    def can_start(self) -> bool:
        """Nothing known stops the flash (the engine checks again when it runs)."""
        return not self.blocking

    def confirm_text(self) -> str:
        """The question Start asks: `VCU of Unit #1001: 3.1.0 → 3.2.1 (upgrade)` + warnings."""
        lines = [
            f"Flash {self.ecu} of {self.machine or 'the bench'}: "
            f"{self.from_version} → {self.target}"
        ]
        if self.change == CHANGE_DOWNGRADE:
            lines.append(f"This is a DOWNGRADE: {self.target} is older than {self.from_version}.")
        elif self.change == CHANGE_REFLASH:
            lines.append(f"This is a RE-FLASH: the ECU already runs {self.target}.")
        elif self.change == CHANGE_UNKNOWN and not self.in_bootloader:
            lines.append("The version the ECU runs is not known (it was not read).")
        if self.record_disagrees:
            lines.append(f"The workspace recorded {self.recorded}; the ECU reports {self.on_ecu}.")
        if not self.signed:
            lines.append("The firmware is UNSIGNED.")
        lines.append(
            f"About {self.estimated_s:.0f} s. The ECU is not usable while it is flashed; if the "
            "flash stops half-way it stays in its bootloader until the flash is run again."
        )
        return "\n".join(lines)


def _change(from_version: str | None, target: str) -> str:
    if not from_version:
        return CHANGE_UNKNOWN
    order = compare_versions(target, from_version)
    if order == 0:
        return CHANGE_REFLASH
    return CHANGE_UPGRADE if order > 0 else CHANGE_DOWNGRADE


def build_preflight(
    ws: Any,
    machine: str,
    ecu: EcuDefinition,
    version: str,
    info: EcuInfo | None = None,
) -> Preflight:
    """The pre-flight of `version` into `ecu` of `machine`; `info` is what the ECU said.

    Raises FotaError (RepositoryError …) when the version is not in the ECU's repository."""
    recorded: str | None = None
    if machine:
        recorded = EaStore(ws).get_machine(machine).installed.get(ecu.name)
    v = RepositoryStore(ws).get_version(ecu.brand, ecu.model, version)
    segs = list(v.segments)
    try:
        measured = measured_flashes(ws, ecu)
    except FotaError:
        measured = []
    plan = make_plan(ecu, segs, erase_ranges=erase_ranges(ecu, segs), measured=measured)
    on_ecu = info.version if info is not None else None
    in_boot = bool(info is not None and info.in_bootloader)
    base = on_ecu if info is not None else recorded
    change = CHANGE_UNKNOWN if in_boot else _change(base, version)
    signed = v.signature_state != "unsigned"
    signature = v.signature_state + (f" by {v.signer}" if v.signer else "")
    problem = (
        TrustStore(ws).flash_problem(
            v, ecu=ecu, machine=machine, installed_version=on_ecu or recorded
        )
        or ""
    )
    blocking: list[str] = []
    if problem:
        blocking.append(f"the flash policy refuses it: {problem}")
    readings: tuple[PreconditionReading, ...] = ()
    ecu_problem = ""
    if info is not None:
        readings = info.preconditions
        ecu_problem = info.problem
        for p in info.blocking:
            if p.ok is False:
                blocking.append(f"{p.name} = {p.value}, allowed {p.limits}")
            else:
                blocking.append(f"{p.name} cannot be checked: {p.why}")
    basis = (
        f"measured in {plan.measured_flashes} earlier flash(es)"
        if plan.measured_flashes
        else "from the EA's timing facts"
    )
    return Preflight(
        machine=machine,
        ecu=ecu.name,
        target=version,
        recorded=recorded,
        on_ecu=on_ecu,
        asked_ecu=info is not None,
        in_bootloader=in_boot,
        change=change,
        signature=signature,
        signed=signed,
        policy_problem=problem,
        estimated_s=plan.estimated_s,
        bytes_total=plan.bytes_total,
        segments=len(segs),
        estimate_basis=basis,
        verified_after=ecu.uds.step(StepKind.READ_VERSION) is not None,
        preconditions=readings,
        blocking=tuple(blocking),
        ecu_problem=ecu_problem,
        checks=tuple(
            [p.name + (" (skippable)" if p.skippable else "") for p in ecu.uds.preconditions]
            + [
                p.name + (" (skippable)" if p.skippable else "")
                for p in ecu.uds.routine_preconditions
            ]
        ),
    )


#: Steps that only run once the ECU left its application (entry frame acknowledged, the
#: programming session, anything per segment).
_BOOTLOADER_STEPS = frozenset(
    {BOOTLOADER_READY_STEP, StepKind.PROGRAMMING_SESSION.value} | {k.value for k in SEGMENT_STEPS}
)


def left_in_bootloader(record: FlashRecord | None) -> bool:
    """True when the flash got the ECU out of its application and never saw it start again:
    the ECU then waits in its bootloader with no valid application until the flash is re-run.
    """
    if record is None:
        return False
    entered = False
    for step in record.steps:
        if (step.step == BOOTLOADER_ENTRY_STEP and step.ok) or step.step in _BOOTLOADER_STEPS:
            entered = True
        elif step.step == APPLICATION_START_STEP and step.ok:
            entered = False
    return entered
