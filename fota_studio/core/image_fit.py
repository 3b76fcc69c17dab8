"""The one image-fits rule: may these image segments be written into this ECU?

Every segment `(address, length)` must be non-empty, lie inside ONE of the ECU's writable
memory regions and touch none of its protected ranges (e.g. the bootloader). An ECU whose EA
lists no memory region accepts nothing: the EA does not say where its flash may be written, and
`ea validate` refuses such an EA for the same reason ("nothing can be flashed"). The EA
validator (`ea_validate.check_image_fits`), a new update request (`update_request`), the flash
target resolver (`engine/targets.py`) and the flash job itself (before anything is sent) all
ask this function, so they can no longer disagree. Pure; safe from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fota_studio.core.ea import UdsProfile
from fota_studio.core.errors import ConfigurationError

#: How many problems an ImageLayoutError message lists.
MAX_LISTED_PROBLEMS = 3


class ImageLayoutError(ConfigurationError):
    """The image does not fit the ECU's flash layout (wrong image, or wrong EA)."""


@dataclass(frozen=True)
class FitProblem:
    """Why segment `index` of an image does not fit (index -1: the ECU accepts nothing)."""

    index: int
    message: str

    @property
    def path(self) -> str:
        """Where the problem is, as a validation path ("segments[2]", "memory_regions")."""
        return f"segments[{self.index}]" if self.index >= 0 else "memory_regions"


def _span(start: int, end: int) -> str:
    return f"0x{start:X}–0x{end - 1:X}"


def image_fit_problems(
    profile: UdsProfile, segments: Sequence[tuple[int, int]], *, ecu_name: str = ""
) -> list[FitProblem]:
    """Every reason the segments `(address, length)` do not fit `profile`'s flash layout
    (empty list: the image fits)."""
    who = f'ECU "{ecu_name}"' if ecu_name else "the ECU"
    regions = profile.memory_regions
    if not regions:
        return [
            FitProblem(
                -1,
                f"{who} has no writable memory region in its Electronic Architecture: nothing "
                "can be flashed (add the memory regions from the bootloader specification)",
            )
        ]
    layout = ", ".join(f'"{r.name}" {_span(r.start, r.end)}' for r in regions)
    problems: list[FitProblem] = []
    for i, (address, length) in enumerate(segments):
        end = address + length
        if length <= 0:
            problems.append(FitProblem(i, f"segment at 0x{address:X} is empty"))
            continue
        if not any(r.start <= address and end <= r.end for r in regions):
            problems.append(
                FitProblem(
                    i,
                    f"{_span(address, end)} ({length} bytes) is outside every writable region "
                    f"of {who} (regions: {layout})",
                )
            )
            continue
        for prot in profile.protected_ranges:
            if address < prot.end and prot.start < end:
                problems.append(
                    FitProblem(
                        i,
                        f'{_span(address, end)} overlaps the protected range "{prot.name}" '
                        f"{_span(prot.start, prot.end)} of {who}, which is never erased or "
                        "written; is this image built for this ECU?",
                    )
                )
                break
    return problems


def require_image_fits(
    profile: UdsProfile, segments: Sequence[tuple[int, int]], *, ecu_name: str = ""
) -> None:
    """Return when the segments fit; else raise ImageLayoutError listing the first problems."""
    problems = image_fit_problems(profile, segments, ecu_name=ecu_name)
    if problems:
        more = len(problems) - MAX_LISTED_PROBLEMS
        raise ImageLayoutError(
            "; ".join(p.message for p in problems[:MAX_LISTED_PROBLEMS])
            + (f" (and {more} more)" if more > 0 else ""),
            hint="this image does not fit this ECU (wrong image or wrong EA?); nothing was sent",
        )
