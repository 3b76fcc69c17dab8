"""The one version ordering (`core/versions.py`): the cases where two orderings used to disagree
(`1.0.0-rc.9` vs `rc.10`, `v2.0` vs `10.0`), and that the repository list, the downgrade check
of a new update request and the sort key all follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core import firmware
from fota_studio.core.firmware import FirmwareImage, Segment
from fota_studio.core.update_request import validate_new_request
from fota_studio.core.versions import (
    compare_versions,
    is_prerelease,
    parse_version,
    sort_versions,
    version_key,
)
from fota_studio.demo.catalog import demo_ecus
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0.0-rc.9", "1.0.0-rc.10"),  # numeric pre-release identifiers compare numerically
        ("v2.0", "10.0"),  # a leading "v" is not a letter that sorts after digits
        ("1.0.0-rc.10", "1.0.0"),  # a pre-release precedes its release (SemVer §11)
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.beta", "1.0.0-beta"),
        ("3.9.1", "3.10.0"),
        ("v1", "1.0.1"),
        ("10.0", "build-2"),  # non-semantic strings sort after semantic ones
        ("build-9", "build-10"),  # ... in natural order among themselves
    ],
)
def test_ordering(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1
    assert version_key(older) < version_key(newer)
    assert sort_versions([newer, older]) == [older, newer]


def test_same_semantic_version_compares_equal() -> None:
    assert compare_versions("v1.2", "1.2.0") == 0
    assert compare_versions("3.2.1", "3.2.1") == 0
    # ... but sorting stays deterministic
    assert sort_versions(["v1.2", "1.2.0"]) == sort_versions(["1.2.0", "v1.2"])


def test_prerelease_and_parse() -> None:
    assert is_prerelease("2.2.0-rc.1") and not is_prerelease("2.2.0")
    assert not is_prerelease("nightly-3")
    assert parse_version("V3") is not None and parse_version("3.x") is None


def _downgrade(version: str, installed: str) -> bool:
    vcu = demo_ecus()[0]
    issues = validate_new_request(
        vcu,
        version=version,
        brand=vcu.brand,
        model=vcu.model,
        segments=[(0x1_0000, 0x100)],
        installed_version=installed,
    )
    return any(i.code == "downgrade" for i in issues)


def test_downgrade_check_uses_the_ordering() -> None:
    assert not _downgrade("1.0.0-rc.10", "1.0.0-rc.9")
    assert _downgrade("1.0.0-rc.9", "1.0.0-rc.10")
    assert not _downgrade("10.0", "v2.0")
    assert _downgrade("v2.0", "10.0")


def test_repository_lists_in_the_same_order(tmp_path: Path) -> None:
    versions = ["10.0", "1.0.0-rc.10", "v2.0", "1.0.0-rc.9", "1.0.0", "build-10", "build-9"]
    with Workspace.open(tmp_path / "ws") as ws:
        store = RepositoryStore(ws)
        for i, v in enumerate(versions):
            image = FirmwareImage((Segment(0x1_0000, bytes([i]) * 64),))
            store.import_bytes(
                "B", "M", v, firmware.to_hex(image), source_name=f"{i}.hex", create_repository=True
            )
        listed = [v.version for v in store.list_versions("B", "M")]
    assert listed == sort_versions(versions)
    assert listed == ["1.0.0-rc.9", "1.0.0-rc.10", "1.0.0", "v2.0", "10.0", "build-9", "build-10"]
