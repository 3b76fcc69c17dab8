"""Update-request store: creation, cancel/re-run rules, crash recovery, the tamper-evident hash
chain, and the `records` CLI (list, show, verify, export HTML and PDF)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from fota_studio.cli import main
from fota_studio.core.update_request import RequestStateError, RequestStatus, Step
from fota_studio.demo.seed import ensure_demo
from fota_studio.infra.requests_store import ENTRY_STEP, RequestsStore
from fota_studio.infra.workspace import DB_NAME, Workspace


@pytest.fixture
def store(workspace_dir: Path) -> RequestsStore:
    ws = Workspace.open(workspace_dir)
    ensure_demo(ws)
    yield RequestsStore(ws)
    ws.close()


def _new(store: RequestsStore, version: str = "3.2.0") -> int:
    return store.create(
        machine="Unit #1001",
        ecu="VCU",
        brand="TTControl",
        model="TTC 2390",
        version=version,
        installed_before="3.1.0",
        created_by="alice",
    ).id


def _request_through_every_step(workspace_dir: Path) -> int:
    """A request in a new demo workspace with every step recorded "ok"; its id."""
    with Workspace.open(workspace_dir) as ws:
        ensure_demo(ws)
        s = RequestsStore(ws)
        rid = _new(s)
        for step in Step:
            s.append(rid, ENTRY_STEP, {"step": step.value, "state": "ok"})
    return rid


def test_create_and_history(store: RequestsStore) -> None:
    rid = _new(store)
    req = store.get(rid)
    assert req.status is RequestStatus.PENDING and req.created_by == "alice"
    store.append(rid, ENTRY_STEP, {"step": Step.VERIFY_PACKAGE.value, "state": "ok"})
    kinds = [e.kind for e in store.entries(rid)]
    assert kinds == ["created", "step"]
    assert store.open_for_ecu("Unit #1001", "VCU")[0].id == rid
    assert store.verify_chain() == []


def test_cancel_rules(store: RequestsStore) -> None:
    rid = _new(store)
    store.update(rid, status=RequestStatus.IN_PROGRESS, approved=True)
    with pytest.raises(RequestStateError, match="approved"):
        store.cancel(rid)
    rid2 = _new(store, "3.2.1")
    assert store.cancel(rid2).status is RequestStatus.CANCELLED
    with pytest.raises(RequestStateError):
        store.cancel(rid2)


def test_interrupted_then_rerun(store: RequestsStore) -> None:
    rid = _new(store)
    # A pid that cannot be alive: the process that ran it is gone.
    store.update(rid, status=RequestStatus.IN_PROGRESS, step=Step.FLASH.value, owner_pid=2**22 + 7)
    recovered = store.recover_interrupted()
    assert [r.id for r in recovered] == [rid]
    req = store.get(rid)
    assert req.status is RequestStatus.FAILED and req.outcome == "interrupted"
    assert "flash" in req.error
    again = store.rerun(rid)
    assert again.status is RequestStatus.PENDING and again.attempt == 2
    assert [e.attempt for e in store.entries(rid)][-1] == 2
    with pytest.raises(RequestStateError):
        store.rerun(rid)  # Pending: nothing to re-run


def test_live_owner_is_not_interrupted(store: RequestsStore) -> None:
    import os

    rid = _new(store)
    store.update(rid, status=RequestStatus.IN_PROGRESS, owner_pid=os.getpid())
    assert store.recover_interrupted() == []


def test_tampering_is_detected(store: RequestsStore, workspace_dir: Path) -> None:
    rid = _new(store)
    store.append(rid, ENTRY_STEP, {"step": "flash", "state": "failed"})
    store.append(rid, ENTRY_STEP, {"step": "finalize", "state": "started"})
    assert store.verify_chain() == []
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    raw.execute(
        "UPDATE request_entries SET data = ? WHERE kind = 'step' AND data LIKE '%failed%'",
        ('{"state":"ok","step":"flash"}',),
    )
    raw.commit()
    problems = store.verify_chain()
    assert len(problems) == 1 and "edited" in problems[0]
    raw.execute("DELETE FROM request_entries WHERE id = (SELECT MIN(id) FROM request_entries)")
    raw.commit()
    raw.close()
    assert any("link broken" in p for p in store.verify_chain())


def test_records_cli(workspace_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rid = _request_through_every_step(workspace_dir)
    base = ["--workspace", str(workspace_dir), "records"]
    assert main([*base, "list"]) == 0
    assert "3.2.0" in capsys.readouterr().out
    assert main([*base, "show", str(rid)]) == 0
    assert "Checkpoint 2" in capsys.readouterr().out
    assert main([*base, "verify"]) == 0
    html_path = workspace_dir / "r.html"
    assert main([*base, "export", str(rid), "--format", "html", "--output", str(html_path)]) == 0
    text = html_path.read_text(encoding="utf-8")
    for title in ("Verify package", "Checkpoint 1", "Checkpoint 2", "Finalize"):
        assert title in text
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    raw.execute("UPDATE request_entries SET at = '2000-01-01' WHERE id = 2")
    raw.commit()
    raw.close()
    capsys.readouterr()
    assert main([*base, "verify"]) == 1
    assert "TAMPERED" in capsys.readouterr().out


def _stream(body: bytes) -> bytes:
    m = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S)
    if m is None:
        return b""
    raw = m.group(1)
    return zlib.decompress(raw) if b"/FlateDecode" in body[: m.start()] else raw


def _cmap(text: bytes) -> dict[int, str]:
    cmap: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            cmap[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be", "replace")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for a, b, rest in re.findall(
            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(\[[^\]]*\]|<[0-9A-Fa-f]+>)", block
        ):
            lo, hi = int(a, 16), int(b, 16)
            if rest.startswith(b"["):
                dsts = re.findall(rb"<([0-9A-Fa-f]+)>", rest)
                for code, dst in zip(range(lo, hi + 1), dsts, strict=False):
                    cmap[code] = bytes.fromhex(dst.decode()).decode("utf-16-be", "replace")
            else:
                first = int(rest[1:-1], 16)
                for i, code in enumerate(range(lo, hi + 1)):
                    cmap[code] = chr(first + i)
    return cmap


def pdf_text(data: bytes) -> str:
    """Text of a Qt-written PDF: per font, map glyph codes through its ToUnicode CMap."""
    objs = {int(n): body for n, body in re.findall(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}
    fonts: dict[bytes, dict[int, str]] = {}
    for name, num in re.findall(rb"/(F\d+) (\d+) 0 R", data):
        m = re.search(rb"/ToUnicode (\d+) 0 R", objs.get(int(num), b""))
        if m:
            fonts[name] = _cmap(_stream(objs[int(m.group(1))]))
    out: list[str] = []
    for body in objs.values():
        content = _stream(body) if b"stream" in body else b""
        if b"BT" not in content:
            continue
        cmap: dict[int, str] = {}
        for font, hexstr in re.findall(rb"/(F\d+) [\d.]+ Tf|<([0-9A-Fa-f]+)> Tj", content):
            if font:
                cmap = fonts.get(font, {})
                continue
            for i in range(0, len(hexstr), 4):
                out.append(cmap.get(int(hexstr[i : i + 4], 16), "?"))
    return "".join(out)


def test_pdf_export_names_every_step(workspace_dir: Path) -> None:
    rid = _request_through_every_step(workspace_dir)
    out = workspace_dir / "r.pdf"
    # In a child process: unit tests never load Qt themselves (the PDF export does).
    cmd = [sys.executable, "-m", "fota_studio", "--workspace", str(workspace_dir), "records"]
    done = subprocess.run(
        [*cmd, "export", str(rid), "--format", "pdf", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and b"/Type /Page" in data
    text = pdf_text(data)
    # Qt maps the space glyph to a tab, and a wrapped cell has no space at the break.
    text = "".join(text.split())
    for title in (
        "Verify package",
        "Signal update available",
        "Checkpoint 1: operator approval",
        "Bootloader transition, UDS reprogramming, ECU reset",
        "Checkpoint 2: ECU health",
        "Finalize",
    ):
        assert title.replace(" ", "") in text, title


def test_access_modes(workspace_dir: Path) -> None:
    from fota_studio.core.errors import ConfigurationError
    from fota_studio.infra.access import PASSPHRASE_SETTING, AccessControl, Mode

    with Workspace.open(workspace_dir) as ws:
        acc = AccessControl(ws)
        assert acc.mode is Mode.ENGINEERING  # nothing to protect yet
        acc.set_passphrase("correct horse")
        stored = ws.get_setting(PASSPHRASE_SETTING)
        assert "correct horse" not in str(stored) and stored["algorithm"] == "scrypt"
        with pytest.raises(ConfigurationError):
            acc.set_passphrase("another one", current="wrong guess")
        seen: list[Mode] = []
        acc.add_listener(seen.append)
        acc.enter_operator()
        assert acc.read_only
        assert not acc.enter_engineering("wrong guess") and acc.read_only
        assert acc.enter_engineering("correct horse") and not acc.read_only
        assert seen == [Mode.OPERATOR, Mode.ENGINEERING]
        assert AccessControl(ws).mode is Mode.OPERATOR  # a passphrase: start in operator mode
