"""Flash estimates for `flash --dry-run` and the Flash panel's pre-flight: one entry point.

`estimate_flash(ecu, segments, ws)` builds the dry-run plan (`core.flash_plan.make_plan`) with
the erases the flash job will really run (`flash_job.plan_erases`, by the EA's erase policy)
and, when a workspace is given, the measured step times of the latest successful flashes of the
same ECU model (`measured_flashes`). A record counts for "the same ECU model" when its ECU has
the same name and, where the record names a machine of the workspace, that machine's EA gives
the ECU the same Brand/Model. Reads the workspace (SQLite): call it off the GUI thread for a
large workspace; any thread may call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from fota_studio.core.ea import EcuDefinition, StepKind
from fota_studio.core.errors import FotaError
from fota_studio.core.flash_plan import FlashPlan, MeasuredFlash, make_plan
from fota_studio.core.flash_record import RESULT_SUCCESS, FlashRecord
from fota_studio.engine.flash_job import plan_erases
from fota_studio.engine.records import list_flash_records, load_flash_record
from fota_studio.infra.workspace import Workspace

#: How many of the latest successful flashes feed the estimate (their median).
MEASURED_FLASHES = 3
#: Records looked at to find them (newest first).
RECORDS_SCANNED = 50


@dataclass(frozen=True)
class _Segment:
    """The (address, data) shape plan_erases reads; only the length of `data` matters."""

    address: int
    data: bytes


def erase_ranges(
    ecu: EcuDefinition, segments: Sequence[tuple[int, int]]
) -> list[list[tuple[int, int]]] | None:
    """Per segment, the (start, length) erases the flash job will run; None when the EA's
    erase step is disabled or the image cannot be erased as planned (the flash job refuses it
    with its own error before anything is sent)."""
    step = ecu.uds.step(StepKind.ERASE)
    if step is None:
        return None
    segs = [_Segment(a, bytes(n)) for a, n in segments]
    try:
        plan = plan_erases(ecu.uds, segs, str(step.param("record")))
    except FotaError:
        return None
    return [[(e.start, e.length) for e in erases] for erases in plan]


def measured_from_record(ecu: EcuDefinition, record: FlashRecord) -> MeasuredFlash:
    """The step times one record measured (`started_at`/`finished_at` of each step)."""
    steps: dict[str, tuple[float, int]] = {}
    for st in record.steps:
        if st.finished_at is None or not st.ok:
            continue
        total, count = steps.get(st.step, (0.0, 0))
        steps[st.step] = (total + (st.finished_at - st.started_at), count + 1)
    ranges = erase_ranges(ecu, [(s.address, s.length) for s in record.segments])
    erased = sum(n for erases in ranges for _, n in erases) if ranges else 0
    # A delta or resumed flash wrote only part of the image: its rate is per byte written.
    written = record.bytes_total - record.bytes_skipped
    return MeasuredFlash(bytes_total=written, step_s=steps, erase_bytes=erased)


def _same_model(ws: Workspace, ecu: EcuDefinition, record: FlashRecord) -> bool:
    if not record.machine:
        return True
    from fota_studio.infra.ea_store import EaStore

    with contextlib.suppress(FotaError, KeyError):
        store = EaStore(ws)
        machine = store.get_machine(record.machine)
        if machine.ea_name:
            other = store.get(machine.ea_name).ecu(record.ecu)
            return (other.brand, other.model) == (ecu.brand, ecu.model)
    return True  # a machine or EA no longer in the workspace: the ECU name decides


def measured_flashes(
    ws: Workspace, ecu: EcuDefinition, limit: int = MEASURED_FLASHES
) -> list[MeasuredFlash]:
    """The measured step times of the latest successful flashes of this ECU model."""
    out: list[MeasuredFlash] = []
    for row in list_flash_records(ws, ecu=ecu.name, limit=RECORDS_SCANNED):
        if row.result != RESULT_SUCCESS:
            continue
        try:
            record = load_flash_record(ws, row.id)
        except FotaError:
            continue
        if not record.steps or not _same_model(ws, ecu, record):
            continue
        out.append(measured_from_record(ecu, record))
        if len(out) >= limit:
            break
    return out


def estimate_flash(
    ecu: EcuDefinition,
    segments: Sequence[tuple[int, int]],
    ws: Workspace | None = None,
    wire_lengths: Sequence[int] | None = None,
) -> FlashPlan:
    """The dry-run plan of flashing `segments` into `ecu`, from the EA and the workspace;
    `wire_lengths`: per segment, the compressed stream size (`core.compression`)."""
    measured = measured_flashes(ws, ecu) if ws is not None else []
    return make_plan(
        ecu,
        list(segments),
        erase_ranges=erase_ranges(ecu, segments),
        measured=measured,
        wire_lengths=wire_lengths,
    )
