"""The demo workspace: deterministic firmware-like images and idempotent seeding."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fota_studio.demo import seed as demo
from fota_studio.demo.catalog import (
    APP_HEADER_SIZE,
    APP_REGION_LENGTH,
    APP_REGION_START,
    DEMO_EA_NAME,
    DEMO_MACHINES,
    DEMO_REPOSITORIES,
    parse_app_header,
)
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace


def test_generated_image_layout() -> None:
    for kib, seed in ((96, 1), (192, 2), (4, 3), (80, 12345)):
        image = demo.generate_demo_image("3.2.1", kib, seed)
        assert image.total_size == kib * 1024
        assert 2 <= len(image.segments) <= 4
        assert len(image.gaps()) == len(image.segments) - 1
        assert image.segments[0].address == APP_REGION_START
        assert image.max_address <= APP_REGION_START + APP_REGION_LENGTH
        assert parse_app_header(image.segments[0].data[:APP_HEADER_SIZE]) == "3.2.1"


def test_generated_image_looks_like_firmware() -> None:
    image = demo.generate_demo_image("1.0.0", 128, 7)
    data = image.data_bytes()
    counts = Counter(data)
    # Erased-flash padding, and far from uniform noise (code-like opcode bytes dominate).
    assert counts[0xFF] > len(data) * 0.03
    assert sum(n for _, n in counts.most_common(16)) > len(data) * 0.45
    assert b"FOTA Studio demo application 1.0.0" in data
    for seg in image.segments:
        assert seg.data.endswith(b"\xff" * 16)


def test_generated_image_is_deterministic() -> None:
    a = demo.generate_demo_image("2.0.0", 64, 99)
    b = demo.generate_demo_image("2.0.0", 64, 99)
    c = demo.generate_demo_image("2.0.0", 64, 100)
    assert a.sha256() == b.sha256() and a.segments == b.segments
    assert a.sha256() != c.sha256()
    with pytest.raises(ValueError):
        demo.generate_demo_image("x", 2000, 1)


def test_ensure_demo_seeds_a_new_workspace_once(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        assert demo.ensure_demo(ws) is True
        assert ws.get_setting(demo.DEMO_SEEDED_SETTING) is True
        eas = EaStore(ws)
        assert eas.exists(DEMO_EA_NAME)
        assert {m.serial for m in eas.list_machines()} == set(DEMO_MACHINES)
        first = eas.get_machine(DEMO_MACHINES[0])
        assert first.installed == {
            ecu.name: repo.installed_version
            for ecu, repo in zip(eas.get(DEMO_EA_NAME).ecus, DEMO_REPOSITORIES, strict=True)
        }
        assert demo.ensure_demo(ws) is False
    with Workspace.open(workspace_dir) as ws:
        assert demo.ensure_demo(ws) is False
        store = RepositoryStore(ws)
        repos = store.list_repositories()
        assert {(r.brand, r.model) for r in repos} == {
            (d.brand, d.model) for d in DEMO_REPOSITORIES
        }
        formats: set[str] = set()
        for d in DEMO_REPOSITORIES:
            info = store.get_repository(d.brand, d.model)
            assert info.description == d.description
            versions = store.list_versions(d.brand, d.model)
            assert {v.version for v in versions} == set(d.versions)
            for v in versions:
                kib = d.image_kib[d.versions.index(v.version)]
                assert v.size == kib * 1024
                assert v.notes
                formats.add(v.source_format)
                image = store.load_image(v)
                assert parse_app_header(image.data_bytes()[:APP_HEADER_SIZE]) == v.version
        assert formats == {"hex", "srec"}
        assert store.verify() == []


def test_demo_versions_sort_prerelease_first(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        demo.ensure_demo(ws)
        danfoss = DEMO_REPOSITORIES[2]
        versions = [
            v.version for v in RepositoryStore(ws).list_versions(danfoss.brand, danfoss.model)
        ]
        assert versions == ["2.0.0", "2.1.0", "2.2.0-rc.1"]


def test_user_workspace_is_never_seeded(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        RepositoryStore(ws).create_repository("Acme", "X1")
        assert demo.ensure_demo(ws) is False
        assert [r.brand for r in RepositoryStore(ws).list_repositories()] == ["Acme"]
        assert ws.get_setting(demo.DEMO_SEEDED_SETTING) is None


def test_deleted_demo_data_is_not_reseeded(workspace_dir: Path) -> None:
    with Workspace.open(workspace_dir) as ws:
        assert demo.ensure_demo(ws)
        with ws.transaction() as cur:
            cur.execute("DELETE FROM versions")
            cur.execute("DELETE FROM repositories")
        assert demo.ensure_demo(ws) is False
        assert RepositoryStore(ws).list_repositories() == []


def test_interrupted_seeding_is_completed(workspace_dir: Path) -> None:
    # A crash after the "pending" mark and part of the data: the next start finishes the job.
    first = DEMO_REPOSITORIES[0]
    with Workspace.open(workspace_dir) as ws:
        ws.set_setting("demo_seed_pending", True)
        RepositoryStore(ws).create_repository(first.brand, first.model, first.description)
    with Workspace.open(workspace_dir) as ws:
        assert demo.ensure_demo(ws) is True
        assert len(RepositoryStore(ws).list_repositories()) == len(DEMO_REPOSITORIES)
        assert ws.get_setting("demo_seed_pending") is None
        versions = RepositoryStore(ws).list_versions(first.brand, first.model)
        assert [v.version for v in versions] == list(first.versions)
