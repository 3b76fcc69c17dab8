"""Update request rules: the status transition table, version order, new-request validation."""

from __future__ import annotations

import pytest

from fota_studio.core.update_request import (
    TRANSITIONS,
    RequestStateError,
    RequestStatus,
    UpdateRequest,
    check_transition,
    compare_versions,
    has_blocks,
    validate_new_request,
)
from fota_studio.demo.catalog import APP_REGION_START, demo_ecus

VCU = demo_ecus()[0]
FITS = [(APP_REGION_START, 0x1000)]


def _req(status: RequestStatus, approved: bool = False) -> UpdateRequest:
    return UpdateRequest(
        1, "M", "VCU", VCU.brand, VCU.model, "3.2.0", "t", "u", status, approved=approved
    )


def test_statuses_are_the_domain_five() -> None:
    assert [s.value for s in RequestStatus] == [
        "Pending",
        "In progress",
        "Successful",
        "Failed",
        "Cancelled",
    ]
    assert TRANSITIONS[RequestStatus.SUCCESSFUL] == frozenset()


def test_transitions() -> None:
    check_transition(RequestStatus.PENDING, RequestStatus.IN_PROGRESS)
    check_transition(RequestStatus.FAILED, RequestStatus.PENDING)  # re-run
    with pytest.raises(RequestStateError, match="Successful cannot change"):
        check_transition(RequestStatus.SUCCESSFUL, RequestStatus.PENDING)
    with pytest.raises(RequestStateError):
        check_transition(RequestStatus.PENDING, RequestStatus.SUCCESSFUL)


def test_cancellable_only_before_approval() -> None:
    assert _req(RequestStatus.PENDING).cancellable
    assert _req(RequestStatus.IN_PROGRESS).cancellable
    assert not _req(RequestStatus.IN_PROGRESS, approved=True).cancellable
    assert not _req(RequestStatus.SUCCESSFUL).cancellable
    assert _req(RequestStatus.FAILED).rerunnable and not _req(RequestStatus.PENDING).rerunnable


def test_version_order() -> None:
    assert compare_versions("3.10.0", "3.9.1") == 1
    assert compare_versions("2.2.0-rc.1", "2.2.0") == -1
    assert compare_versions("1.0.0", "1.0.0") == 0


def _codes(**kw: object) -> list[str]:
    args: dict[str, object] = {
        "version": "3.2.0",
        "brand": VCU.brand,
        "model": VCU.model,
        "segments": FITS,
        "installed_version": "3.1.0",
    }
    args.update(kw)
    return [i.code for i in validate_new_request(VCU, **args)]  # type: ignore[arg-type]


def test_clean_request_has_no_issues() -> None:
    assert _codes() == []


def test_warnings_need_confirmation() -> None:
    assert _codes(installed_version="3.2.1") == ["downgrade"]
    assert _codes(installed_version="3.2.0") == ["same_version"]
    assert _codes(open_requests=[_req(RequestStatus.PENDING)]) == ["pending"]
    issues = validate_new_request(
        VCU,
        version="3.2.0",
        brand=VCU.brand,
        model=VCU.model,
        segments=FITS,
        installed_version="3.2.1",
    )
    assert not has_blocks(issues)


def test_blocks() -> None:
    issues = validate_new_request(
        VCU,
        version="3.2.0",
        brand="Other",
        model="X",
        segments=[(0x0, 0x100)],
        installed_version=None,
    )
    assert has_blocks(issues)
    assert {i.code for i in issues} == {"brand_model", "layout"}
    assert "outside every writable region" in str(issues[1])
