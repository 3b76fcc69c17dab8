"""The technician view's words: each step of the reprogramming sequence as a sentence, and what
to do next after each outcome. Pure text, no Qt (unit-testable); any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

#: What the technician reads while a step runs (the engine's step names → words).
STEP_WORDS = {
    "preconditions": "Checking that the machine is safe to update",
    "bootloader_entry": "Switching the ECU to its bootloader",
    "bootloader_ready": "Waiting for the bootloader to answer",
    "clean_start": "Preparing the programming session",
    "extended_session": "Opening the extended diagnostic session",
    "dtc_off": "Pausing fault-code recording",
    "comm_control_off": "Quietening the other ECUs on the bus",
    "security_level_1": "Unlocking the ECU",
    "programming_session": "Opening the programming session",
    "security_level_2": "Unlocking programming",
    "fingerprint": "Writing who updates the ECU",
    "erase": "Erasing the old software",
    "request_download": "Preparing the download",
    "transfer_data": "Writing the new software",
    "transfer_exit": "Finishing the download",
    "check": "Checking the written software",
    "reset": "Restarting the ECU",
    "application_start": "Waiting for the new software to start",
    "read_version": "Reading the new version from the ECU",
}


def step_words(step: str, detail: str = "") -> str:
    """`transfer_data` → "Writing the new software"; unknown steps read as their name."""
    return STEP_WORDS.get(step, step.replace("_", " ").capitalize())


@dataclass(frozen=True)
class FlashFacts:
    """What one ECU's flash did, as the technician's words need it: completed (`ok`), version
    verified, cancelled, left in the bootloader, wrote any of the new software."""

    ecu: str
    ok: bool
    verified: bool
    cancelled: bool
    in_bootloader: bool
    wrote: bool

    @property
    def needs_rerun(self) -> bool:
        """The ECU must be flashed again: in its bootloader, or written but not completed."""
        return self.in_bootloader or (self.wrote and not self.ok)


def next_steps(facts: FlashFacts) -> str:
    """What the technician does after the flash (one short paragraph)."""
    ok, verified, ecu = facts.ok, facts.verified, facts.ecu
    in_bootloader, wrote, cancelled = facts.in_bootloader, facts.wrote, facts.cancelled
    if ok and verified:
        return (
            f"{ecu} runs the new software and reported the expected version. Switch the "
            "ignition off and on once, check the machine for warnings, then update another ECU "
            "or close FOTA Studio."
        )
    if ok:
        return (
            f"{ecu} was written but its version was not read back, so the update is NOT "
            "verified. Check the version on the machine's display or with a diagnostic tool "
            "before the machine is used."
        )
    if in_bootloader:
        return (
            f"{ecu} is in its bootloader with no valid application: the machine must not be "
            'used. Keep the power on and press "Re-run the flash". If it fails again, note the '
            "message above and call support."
        )
    if wrote:
        return (
            f"{ecu} was written and restarted but the update did not end well (see the message "
            "above): it is NOT verified. Run the flash again; if it fails again, call support."
        )
    if cancelled:
        return f"Nothing was written: {ecu} still runs its old software. Start again when ready."
    return (
        f"Nothing was erased: {ecu} still runs its old software. Fix what the message above "
        "says and start again."
    )
