"""Ask an ECU what it runs, before a flash: the pre-flight's read of the ECU itself.

`read_ecu_info` reads, from the APPLICATION (physical request IDs of the EA's connection), the
running software version (the DID of the EA's read_version step, 0xF195 by default), the other
identification DIDs the EA lists (VIN, serial number, …) and the live value of every DID
precondition (scaled and compared to its limits like the flash job does). Nothing is written,
no session is changed and no routine is run: routine preconditions are only listed, they run
when the flash starts. When the application is silent, one TesterPresent probe on the
bootloader IDs tells whether the ECU sits in its bootloader (a flash that stopped half-way).

`submit_read_ecu_info` queues that read as a job on the engine's worker for the ECU's channel
(the GUI never talks to the bus); the job's future — and the engine's `JobFinished` event —
carry the `EcuInfo`. `read_ecu_info` itself runs on whatever thread calls it (worker, CLI,
tests) and blocks for at most a few P2 timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import can

from fota_studio.core.ea import EcuDefinition, IsoTpAddress, StepKind
from fota_studio.core.errors import FotaError, TransferError, UdsNegativeResponseError
from fota_studio.engine.engine import Engine, JobContext, JobHandle
from fota_studio.protocols.isotp_link import AdapterSendError, IsoTpLink, TxTap
from fota_studio.protocols.uds_link import UdsLink, decode_did

#: The step name read errors and the trace carry.
ECU_INFO_STEP = "read_ecu_info"
#: DID of the running software version when the EA has no read_version step (ISO 14229-1
#: Annex C.1 applicationSoftwareIdentificationDataIdentifier 0xF195).
DEFAULT_VERSION_DID = 0xF195


@dataclass(frozen=True)
class PreconditionReading:
    """One precondition as the ECU answers it now.

    `value` is the scaled value with its unit ("" when not read); `ok` is True/False against
    the limits, None when it could not be read (`why` says why) or is a routine (checked when
    the flash starts).
    """

    name: str
    value: str
    ok: bool | None
    why: str = ""
    limits: str = ""
    skippable: bool = False
    skip_reason: str = ""
    routine: bool = False


@dataclass(frozen=True)
class EcuInfo:
    """What the ECU said: version (None when unknown), identification DIDs, preconditions."""

    ecu: str
    application_answers: bool
    in_bootloader: bool
    version: str | None
    version_did: int
    dids: dict[str, str] = field(default_factory=dict)
    preconditions: tuple[PreconditionReading, ...] = ()
    problem: str = ""

    @property
    def blocking(self) -> tuple[PreconditionReading, ...]:
        """Preconditions that would stop the flash now: outside their limits, or not readable
        and not skippable."""
        return tuple(
            p
            for p in self.preconditions
            if p.ok is False or (p.ok is None and not p.routine and not p.skippable)
        )

    @property
    def skipped(self) -> tuple[PreconditionReading, ...]:
        """Preconditions that cannot be read now but the EA allows to skip (with a reason)."""
        return tuple(p for p in self.preconditions if p.ok is None and p.skippable)


def _version_did(ecu: EcuDefinition) -> int:
    step = ecu.uds.step(StepKind.READ_VERSION)
    if step is not None:
        try:
            return int(step.param("did"))
        except (KeyError, TypeError, ValueError):
            pass
    return ecu.uds.health.version_did or DEFAULT_VERSION_DID


def _limits(minimum: float | None, maximum: float | None, unit: str) -> str:
    if minimum is None and maximum is None:
        return ""
    low = "-∞" if minimum is None else f"{minimum:g}"
    high = "∞" if maximum is None else f"{maximum:g}"
    return f"{low} … {high} {unit}".rstrip()


def read_ecu_info(
    bus: can.BusABC,
    notifier: can.Notifier,
    ecu: EcuDefinition,
    *,
    tx_tap: TxTap | None = None,
) -> EcuInfo:
    """Read version, identification DIDs and DID preconditions from `ecu`'s application.

    Never raises for an ECU that does not answer (that is the answer: `application_answers`
    False, `in_bootloader` from one probe); an adapter that refuses to send raises
    AdapterSendError (the bus is the problem, not the ECU).
    """
    conn = ecu.connection
    version_did = _version_did(ecu)
    did_defs = {d.did: d for d in ecu.uds.dids}
    links: list[UdsLink] = []

    def link(ids: IsoTpAddress) -> UdsLink:
        iso = IsoTpLink(bus, notifier, conn, ids, tx_tap=tx_tap, name=f"{ecu.name}@info")
        uds = UdsLink(iso, ecu.uds)
        uds.open()
        links.append(uds)
        return uds

    def read(uds: UdsLink, did: int) -> tuple[bytes | None, str]:
        try:
            raw = uds.request(ECU_INFO_STEP, 0x22, did.to_bytes(2, "big"), busy_retries=2)
        except AdapterSendError:
            raise
        except TransferError:
            return None, f"no answer to DID 0x{did:04X}"
        except UdsNegativeResponseError as exc:
            return None, f"DID 0x{did:04X}: NRC 0x{exc.nrc:02X} {exc.nrc_name}"
        return (raw or b"")[3:], ""

    try:
        app = link(conn.application)
        raw, why = read(app, version_did)
        answers = raw is not None or "NRC" in why
        app_answers = answers
        version = decode_did(did_defs.get(version_did), raw) if raw is not None else None
        dids: dict[str, str] = {}
        readings: list[PreconditionReading] = []
        in_boot = False
        problem = ""
        if not answers:
            problem = f"the application of {ecu.name} does not answer ({why})"
            boot = conn.bootloader
            if (boot.request_id, boot.response_id) != (
                conn.application.request_id,
                conn.application.response_id,
            ):
                app.close()
                boot_link = link(boot)
                try:
                    boot_link.request(ECU_INFO_STEP, 0x3E, subfunction=0x00, busy_retries=0)
                    in_boot = True
                except UdsNegativeResponseError:
                    in_boot = True  # something answers on the bootloader IDs
                except AdapterSendError:
                    raise
                except TransferError:
                    in_boot = False
            if in_boot:
                problem = f"{ecu.name} is in its bootloader: no valid application runs"
                # A re-run asks the preconditions there, as the flash job does.
                app, answers = boot_link, True
        else:
            if version is None:
                problem = f"{ecu.name} does not give its version: {why}"
            for d in ecu.uds.dids:
                if d.did == version_did:
                    continue
                value, _why = read(app, d.did)
                if value is not None:
                    dids[d.name] = decode_did(d, value)
        for pre in ecu.uds.preconditions:
            limits = _limits(pre.minimum, pre.maximum, pre.unit)

            def reading(value: str, ok: bool | None, why: str = "") -> PreconditionReading:
                return PreconditionReading(
                    pre.name,  # noqa: B023 - used at once, inside this iteration
                    value,
                    ok,
                    why,
                    limits=limits,  # noqa: B023
                    skippable=pre.skippable,  # noqa: B023
                    skip_reason=pre.skip_reason,  # noqa: B023
                )

            if not answers:
                readings.append(reading("", None, "the application does not answer"))
                continue
            value, why = read(app, pre.did)
            if value is None:
                readings.append(reading("", None, why))
            elif len(value) < pre.length:
                short = f"DID 0x{pre.did:04X} answered {len(value)} bytes, {pre.length} expected"
                readings.append(reading("", None, short))
            else:
                ok, physical = pre.evaluate(value)
                readings.append(reading(f"{physical:g} {pre.unit}".rstrip(), ok))
        for rpre in ecu.uds.routine_preconditions:
            readings.append(
                PreconditionReading(
                    rpre.name,
                    "",
                    None,
                    f"routine 0x{rpre.routine_id:04X}, run when the flash starts",
                    skippable=rpre.skippable,
                    skip_reason=rpre.skip_reason,
                    routine=True,
                )
            )
        return EcuInfo(
            ecu=ecu.name,
            application_answers=app_answers,
            in_bootloader=in_boot,
            version=version,
            version_did=version_did,
            dids=dids,
            preconditions=tuple(readings),
            problem=problem,
        )
    finally:
        for uds in links:
            uds.close()


def submit_read_ecu_info(engine: Engine, ecu: EcuDefinition) -> JobHandle:
    """Queue `read_ecu_info` on the worker of `ecu`'s channel; the future yields the EcuInfo.

    FotaError (channel not open) is raised at once, on the caller's thread."""

    def job(ctx: JobContext) -> EcuInfo:
        return read_ecu_info(ctx.bus, ctx.notifier, ecu, tx_tap=ctx.tx_fanout)

    return engine.submit(ecu.connection.channel, f"read {ecu.name} version and preconditions", job)


__all__ = [
    "ECU_INFO_STEP",
    "EcuInfo",
    "FotaError",
    "PreconditionReading",
    "read_ecu_info",
    "submit_read_ecu_info",
]
