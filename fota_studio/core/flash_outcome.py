"""The outcome of a flash in words: *flashed and verified*, *flashed, not verified*, or failed.

One place decides how a `FlashRecord` is described, so the CLI, the Flash panel, the request
report, the workflow and the self-test never call a flash "verified" that was not: verified
means the version was read after the reset AND equals the expected one
(`FlashRecord.verification == "verified"`). A flash that completed without that check is
*flashed, not verified*, always with the reason (version step disabled, no expected version).
Pure functions over the record; safe from any thread.
"""

from __future__ import annotations

import enum

from fota_studio.core.flash_record import (
    RESULT_CANCELLED,
    RESULT_SUCCESS,
    VERIFICATION_VERIFIED,
    FlashRecord,
)


class FlashOutcome(enum.StrEnum):
    """The three outcomes of a flash (plus cancelled, a failure the operator asked for)."""

    VERIFIED = "verified"
    NOT_VERIFIED = "not_verified"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Short labels, e.g. for a table cell or a status line.
OUTCOME_LABELS = {
    FlashOutcome.VERIFIED: "Flashed and verified",
    FlashOutcome.NOT_VERIFIED: "Flashed, NOT verified",
    FlashOutcome.FAILED: "Failed",
    FlashOutcome.CANCELLED: "Cancelled",
}


def flash_outcome(record: FlashRecord) -> FlashOutcome:
    """Which outcome the record holds (from `result` and `verification`)."""
    if record.result == RESULT_SUCCESS:
        if record.verification == VERIFICATION_VERIFIED:
            return FlashOutcome.VERIFIED
        return FlashOutcome.NOT_VERIFIED
    if record.result == RESULT_CANCELLED:
        return FlashOutcome.CANCELLED
    return FlashOutcome.FAILED


def not_verified_reason(record: FlashRecord) -> str:
    """Why a completed flash was not verified, in words an operator can act on."""
    if not record.version_after:
        return (
            "the version was not read after the reset (read_version step disabled or "
            "skipped), so nothing confirms what the ECU runs"
        )
    if not record.expected_version:
        return (
            f'the ECU reports "{record.version_after}" but no expected version was given '
            "(use --expect-version or flash a repository version)"
        )
    return f'the ECU reports "{record.version_after}", expected "{record.expected_version}"'


def outcome_text(record: FlashRecord, label: str = "") -> str:
    """One sentence for the operator: what was flashed and whether it was verified."""
    what = label or record.version or "the image"
    size = f" ({record.bytes_total} bytes)" if record.bytes_total else ""
    outcome = flash_outcome(record)
    if outcome is FlashOutcome.VERIFIED:
        return (
            f"{record.ecu}: flashed {what}{size} and verified version {record.version_after} "
            "(read after the reset, as expected)"
        )
    if outcome is FlashOutcome.NOT_VERIFIED:
        return f"{record.ecu}: flashed {what}{size}, NOT VERIFIED: {not_verified_reason(record)}"
    where = f" at {record.failed_step}" if record.failed_step else ""
    verb = "cancelled" if outcome is FlashOutcome.CANCELLED else "FAILED"
    return f"{record.ecu}: flash of {what} {verb}{where}: {record.error or 'no detail'}"
