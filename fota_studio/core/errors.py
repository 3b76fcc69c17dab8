"""The one error tree of FOTA Studio.

Every error a user can see is a `FotaError`: its message says what happened, where (file:line,
step, block) and what to do. Library exceptions are translated into these in `protocols/` and
`infra/`. Pure data; safe from any thread.
"""

from __future__ import annotations


class FotaError(Exception):
    """Base of every FOTA Studio error; `str(err)` is a one-line message for the user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} ({hint})")


class ImageError(FotaError):
    """A firmware file or image is malformed; the message names file:line and the fault."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}", hint=hint)


class PackageError(FotaError):
    """A firmware package (zip + manifest) is malformed, tampered or not trusted."""


class WorkspaceError(FotaError):
    """The workspace cannot be opened, is of a newer schema, or an operation on it failed."""


class RepositoryError(FotaError):
    """A Software Repository operation failed (unknown brand/model, duplicate version, ...)."""


class ArchitectureError(FotaError):
    """An Electronic Architecture is invalid or a file holding one cannot be read."""


class ConfigurationError(FotaError):
    """A setting or adapter configuration is wrong; the message names the setting."""


class AdapterError(FotaError):
    """A CAN adapter cannot be opened or failed while in use; names the interface."""


class TransferError(FotaError):
    """A transport-level failure (ISO-TP timeout, lost frames, bus-off) during a step."""

    def __init__(self, message: str, *, step: str | None = None, hint: str | None = None) -> None:
        self.step = step
        super().__init__(f"{step}: {message}" if step else message, hint=hint)


class UdsNegativeResponseError(FotaError):
    """The ECU answered a request with a negative response; keeps the service and the NRC."""

    def __init__(
        self,
        *,
        step: str,
        service: int,
        nrc: int,
        nrc_name: str,
        request_hex: str = "",
        hint: str | None = None,
    ) -> None:
        self.step = step
        self.service = service
        self.nrc = nrc
        self.nrc_name = nrc_name
        self.request_hex = request_hex
        req = f" to request {request_hex}" if request_hex else ""
        super().__init__(
            f"{step}: ECU answered NRC 0x{nrc:02X} {nrc_name}{req} (service 0x{service:02X})",
            hint=hint,
        )


class SecurityAccessError(FotaError):
    """Seed/key computation or the key provider failed (no secret, library missing, ...)."""


class PreconditionError(FotaError):
    """A precondition (speed, supply voltage, ...) was not met before erasing."""


class ApprovalDeniedError(FotaError):
    """The operator rejected the update at Checkpoint 1, or the approval timed out."""


class VerificationError(FotaError):
    """Checkpoint 2 health verification failed or timed out."""


class CancelledError(FotaError):
    """A job was cancelled at a safe point."""
