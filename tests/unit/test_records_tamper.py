"""Signed, pinned records (issue 14): every attack of the issue's Records list is detected by
`records verify` and the report; bundles verify elsewhere; the key's protection is stated; the
incremental verdict (issue 21) reads each entry once and catches what changed since."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from fota_studio.cli import main
from fota_studio.core.errors import WorkspaceError
from fota_studio.core.update_request import RequestStatus
from fota_studio.infra import record_signing
from fota_studio.infra.record_bundle import export_bundle, verify_bundle
from fota_studio.infra.record_verify import verify_workspace
from fota_studio.infra.requests_store import ENTRY_STEP, RequestsStore
from fota_studio.infra.workspace import DB_NAME, Workspace
from reliability import tamper
from tests.fakes.memory_keyring import MemoryKeyring


@pytest.fixture
def scenario(workspace_dir: Path) -> tamper.Scenario:
    return tamper.build_workspace(workspace_dir)


def _verify_cli(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--workspace", str(root), "records", "verify", *extra])
    return code, capsys.readouterr().out


def _verify_fails_after(
    attack: Callable[[tamper.Scenario], object],
    scenario: tamper.Scenario,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """Run `attack` on the scenario's workspace; `records verify` must then fail (exit 1).
    Its output."""
    attack(scenario)
    code, out = _verify_cli(scenario.root, capsys)
    assert code == 1, out
    return out


def test_untouched_workspace_verifies(
    scenario: tamper.Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _verify_cli(scenario.root, capsys)
    assert code == 0, out
    assert "records intact" in out and "8 entries (8 signed)" in out
    # No keyring in tests: the key sits in this user's config folder, never in the workspace
    # (write access to the workspace folder is not the key).
    assert "outside the workspace" in out and "UNPROTECTED" not in out
    assert not list(scenario.root.glob("*.pem"))


@pytest.mark.parametrize("attack", sorted(tamper.ATTACKS))
def test_attack_is_named_by_records_verify(
    attack: str, scenario: tamper.Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _verify_fails_after(tamper.ATTACKS[attack], scenario, capsys)
    assert "TAMPERED" in out and "intact" not in out.replace("TAMPERED", "")


def test_status_edit_names_the_field_and_the_report_says_not_verified(
    scenario: tamper.Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _verify_fails_after(tamper.status_failed_to_successful, scenario, capsys)
    assert "status is 'Successful' in the table but the signed record says 'Failed'" in out
    html_path = scenario.root / "r.html"
    base = ["--workspace", str(scenario.root), "records", "export"]
    assert main([*base, str(scenario.failed_request), "--output", str(html_path)]) == 0
    text = html_path.read_text(encoding="utf-8")
    assert "NOT VERIFIED: the table says Successful" in text
    assert "Record chain</b></td><td>intact" not in text and "TAMPERED" in text


def test_attackers_rehash_script_is_caught_by_signatures(
    scenario: tamper.Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    # The attacker's script (the reliability campaign's): edit the failed request's final
    # entry, recompute every later hash with the public formula, fix the head's last hash and
    # the table; no signing key.
    out = _verify_fails_after(tamper.rehash_chain, scenario, capsys)
    assert "signature invalid" in out and "head's signature is invalid" in out
    # The hash links alone (what main had) are consistent again: only the signatures say so.
    assert "link broken" not in out


def test_writing_after_truncation_is_refused(scenario: tamper.Scenario) -> None:
    tamper.delete_last_entry(scenario)
    with (
        Workspace.open(scenario.root) as ws,
        pytest.raises(WorkspaceError, match="head does not match"),
    ):
        RequestsStore(ws).append(scenario.other_request, ENTRY_STEP, {"step": "x"})


def test_random_db_pages_never_crash_repo_verify(
    scenario: tamper.Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "damaged" in _verify_fails_after(tamper.random_db_pages, scenario, capsys)
    code = main(["--workspace", str(scenario.root), "repo", "verify"])
    assert code != 0
    assert "Traceback" not in capsys.readouterr().err


def test_replaced_key_is_detected_by_the_pin(scenario: tamper.Scenario) -> None:
    # An attacker with a key of their own re-signs the whole chain and swaps the public key.
    with Workspace.open(scenario.root) as ws:
        assert verify_workspace(ws).ok  # pinned on this machine when the key was made
        record_signing._signers.clear()
        ws.set_setting(record_signing.KEY_SETTING, None)
        with ws.transaction() as cur:
            cur.execute("DELETE FROM settings WHERE key = ?", (record_signing.KEY_SETTING,))
            cur.execute("DELETE FROM record_head")
            cur.execute("UPDATE request_entries SET sig = NULL, state = NULL")
        problems = verify_workspace(ws).problems
    assert any("pinned record-signing key" in p for p in problems), problems


def test_bundle_verifies_elsewhere_and_detects_edits(
    scenario: tamper.Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "req.bundle.json"
    base = ["--workspace", str(scenario.root), "records"]
    assert main([*base, "export", str(scenario.failed_request), "--bundle", str(bundle)]) == 0
    key_file = tmp_path / "key.pem"
    assert main([*base, "export-key", "--output", str(key_file)]) == 0
    assert "BEGIN PUBLIC KEY" in capsys.readouterr().out
    # "Another machine": no workspace at all.
    code = main(["--workspace", str(tmp_path / "none"), "records", "verify", "--bundle",
                 str(bundle), "--key", str(key_file)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 bus log(s) re-hashed" in out
    data = bundle.read_text(encoding="utf-8")
    # Each edit an attacker could make to the file is named.
    edits = {
        "status": data.replace('"status": "Failed"', '"status": "Successful"', 1),
        "flash result": data.replace('\\"result\\": \\"failed\\"', '\\"result\\": \\"success\\"'),
        "entry removed": _drop_last_entry(data),
    }
    for what, edited in edits.items():
        assert edited != data, what
        rep = verify_bundle(edited.encode("utf-8"), key_file.read_text())
        assert rep.problems, what
    other = record_signing.Ed25519PrivateKey.generate().public_key()
    rep = verify_bundle(data.encode(), record_signing.public_raw(other).hex())
    assert any("not by the given key" in p for p in rep.problems)
    for junk in (b"", b"{}", b"[1]", b'{"format": "fota-studio/record-bundle/v1"}', b"\xff" * 9):
        assert verify_bundle(junk).problems


def _drop_last_entry(text: str) -> str:
    import json

    bundle = json.loads(text)
    bundle["entries"].pop()
    return json.dumps(bundle)


def test_passphrase_key_file(
    workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(record_signing.PASSPHRASE_ENV, "correct horse battery")
    with Workspace.open(workspace_dir) as ws:
        store = RequestsStore(ws)
        rid = tamper.build_workspace(workspace_dir).failed_request
        info = store.signer().info
        assert info.protection == record_signing.PROTECTION_PASSPHRASE
        pem = (workspace_dir / info.location).read_bytes()
        assert b"ENCRYPTED" in pem
    record_signing._signers.clear()
    monkeypatch.delenv(record_signing.PASSPHRASE_ENV)
    with (
        Workspace.open(workspace_dir) as ws,
        pytest.raises(WorkspaceError, match=record_signing.PASSPHRASE_ENV),
    ):
        RequestsStore(ws).append(rid, ENTRY_STEP, {"step": "x"})
    monkeypatch.setenv(record_signing.PASSPHRASE_ENV, "wrong")
    with (
        Workspace.open(workspace_dir) as ws,
        pytest.raises(WorkspaceError, match="wrong passphrase"),
    ):
        RequestsStore(ws).append(rid, ENTRY_STEP, {"step": "x"})
    code, out = _verify_cli(workspace_dir, capsys)  # verifying needs no passphrase
    assert code == 0 and "passphrase-encrypted" in out and "UNPROTECTED" not in out


def test_cached_verdict_is_incremental(scenario: tamper.Scenario) -> None:
    with Workspace.open(scenario.root) as ws:
        store = RequestsStore(ws)
        assert store.cached_verdict(scenario.failed_request).ok
        store.append(scenario.other_request, ENTRY_STEP, {"step": "verify_package"})
        verdict = store.cached_verdict(scenario.other_request)
        assert verdict.ok and verdict.entries == 9
    tamper.status_failed_to_successful(scenario)
    with Workspace.open(scenario.root) as ws:
        bad = RequestsStore(ws).cached_verdict(scenario.failed_request)
        assert any("status" in p for p in bad.problems)
        assert RequestsStore(ws).cached_verdict(scenario.other_request).ok
    tamper.delete_last_entry(scenario)
    with Workspace.open(scenario.root) as ws:
        assert not RequestsStore(ws).cached_verdict(scenario.other_request).ok


def test_records_verify_reads_each_entry_once(
    scenario: tamper.Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fota_studio.infra import record_verify

    seen: list[int] = []
    real = record_verify._entry

    def counting(r: sqlite3.Row) -> record_verify.EntryRow:
        seen.append(int(r["id"]))
        return real(r)

    # Counting wrapper only (the function still runs): the check is how often rows are parsed.
    monkeypatch.setattr(record_verify, "_entry", counting)
    with Workspace.open(scenario.root) as ws:
        assert verify_workspace(ws).ok
    assert sorted(seen) == list(range(1, 9)) and len(seen) == len(set(seen))


def test_rollback_to_an_older_copy_is_detected_with_a_later_bundle(
    scenario: tamper.Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    backup = tmp_path / "backup"
    shutil.copytree(scenario.root, backup)  # the older, self-consistent copy
    with Workspace.open(scenario.root) as ws:
        RequestsStore(ws).append(scenario.other_request, ENTRY_STEP, {"step": "verify_package"})
        bundle = export_bundle(ws, scenario.other_request, tmp_path / "later.bundle.json")
    code, out = _verify_cli(scenario.root, capsys, "--since", str(bundle))
    assert code == 0 and "still holds the 9 entries" in out, out
    shutil.rmtree(scenario.root)
    shutil.copytree(backup, scenario.root)  # roll the whole workspace back
    code, out = _verify_cli(scenario.root, capsys)
    assert code == 0  # consistent on its own: only a head seen later can tell
    code, out = _verify_cli(scenario.root, capsys, "--since", str(bundle))
    assert code == 1 and "rolled back" in out, out


def test_protect_key_moves_an_unprotected_key_into_a_passphrase_file(
    scenario: tamper.Scenario, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--workspace", str(scenario.root), "records", "protect-key"]
    with Workspace.open(scenario.root) as ws:
        before = record_signing.key_info(ws)
        assert before is not None
        key_file = record_signing.key_path(ws, before.location)
    assert before.protection == record_signing.PROTECTION_USER_FILE and key_file.is_file()
    # No keyring here (tests use the null backend): a clear refusal, nothing changed.
    assert main([*base, "--to", "keyring"]) == 1
    assert "no working OS keyring" in capsys.readouterr().err
    assert main([*base, "--to", "passphrase"]) == 1
    assert record_signing.PASSPHRASE_ENV in capsys.readouterr().err
    monkeypatch.setenv(record_signing.PASSPHRASE_ENV, "long enough passphrase")
    assert main([*base, "--to", "passphrase"]) == 0
    with Workspace.open(scenario.root) as ws:
        after = record_signing.key_info(ws)
        assert after is not None and after.fingerprint == before.fingerprint
        assert after.protection == record_signing.PROTECTION_PASSPHRASE
        assert b"ENCRYPTED" in (scenario.root / after.location).read_bytes()
        RequestsStore(ws).append(scenario.other_request, ENTRY_STEP, {"step": "x"})
    assert not key_file.exists()  # the user-folder copy is gone
    code, out = _verify_cli(scenario.root, capsys)
    assert code == 0 and "UNPROTECTED" not in out and "passphrase-encrypted" in out


def test_flash_record_linked_while_started_is_pinned_when_reported(workspace_dir: Path) -> None:
    """A request may name its flash record from the "started" row on (infra/flash_journal.py):
    the JSON changes until the job finishes, so the flash_record entry pins the final one."""
    from fota_studio.core.flash_record import FlashRecord
    from fota_studio.core.update_request import RequestStatus
    from fota_studio.infra.flash_journal import begin_flash_record, finish_flash_record
    from fota_studio.infra.requests_store import ENTRY_FLASH

    with Workspace.open(workspace_dir) as ws:
        store = RequestsStore(ws)
        rid = store.create(
            machine="Unit #1001", ecu="VCU", brand="B", model="M", version="2.0.0"
        ).id
        store.update(rid, status=RequestStatus.IN_PROGRESS, owner_pid=1)
        record = FlashRecord(ecu="VCU", machine="Unit #1001", version="2.0.0")
        fid, blf = begin_flash_record(ws, record)
        store.update(rid, flash_record_id=fid)
        tamper._write_blf(blf)
        record.result, record.error = "success", ""
        finish_flash_record(ws, fid, record, blf)
        store.update(rid, entry=(ENTRY_FLASH, {"flash_record_id": fid, "result": "success"}))
        assert verify_workspace(ws).ok
        assert store.cached_verdict(rid).ok
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    raw.execute(
        'UPDATE flash_records SET record = replace(record, \'"version": "2.0.0"\', '
        "'\"version\": \"2.0.1\"'), version = '2.0.1'"
    )
    raw.commit()
    raw.close()
    with Workspace.open(workspace_dir) as ws:
        problems = verify_workspace(ws).problems
    assert any("does not match the hash the signed record pinned" in p for p in problems)


def test_record_fuzz_targets_name_every_damage(tmp_path: Path) -> None:
    """reliability/fuzz.py's record verifier and bundle reader targets, a short run: every
    mutated database or bundle verifies or is rejected with a named problem, never a crash."""
    import random

    from reliability import fuzz

    targets = fuzz.record_targets(tmp_path)
    rng = random.Random(3)
    for target in targets:
        stats = fuzz.run_target(target, 150, rng)
        assert stats.crashes == [], (target.name, stats.crashes[:3])
        assert stats.rejected > 100, target.name  # the mutations really damage something


def test_key_lives_in_the_keyring_where_one_works(
    workspace_dir: Path, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tamper.build_workspace(workspace_dir)
    assert not list(workspace_dir.glob("record-signing-*.pem"))  # no key file at all
    [(service, user)] = memory_keyring.store
    assert service == "fota-studio" and user.startswith("record-signing:")
    code, out = _verify_cli(workspace_dir, capsys)
    assert code == 0 and "private key in the OS keyring" in out and "UNPROTECTED" not in out
    # Another machine (its keyring lacks the key) reads and verifies, but cannot write.
    memory_keyring.store.clear()
    record_signing._signers.clear()
    with Workspace.open(workspace_dir) as ws:
        assert verify_workspace(ws).ok
        with pytest.raises(WorkspaceError, match="not in this machine's keyring"):
            RequestsStore(ws).append(scenario.other_request, ENTRY_STEP, {"step": "x"})


def test_protect_key_moves_an_unprotected_key_into_the_keyring(
    scenario: tamper.Scenario, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(scenario.root) as ws:
        before = record_signing.key_info(ws)
        assert before is not None  # made while no keyring worked: in the user's folder
        key_file = record_signing.key_path(ws, before.location)
    assert before.protection == record_signing.PROTECTION_USER_FILE
    assert key_file.is_file()
    base = ["--workspace", str(scenario.root), "records", "protect-key", "--to", "keyring"]
    assert main(base) == 0
    assert not key_file.exists() and len(memory_keyring.store) == 1
    with Workspace.open(scenario.root) as ws:
        RequestsStore(ws).append(scenario.other_request, ENTRY_STEP, {"step": "x"})
    code, out = _verify_cli(scenario.root, capsys)
    assert code == 0 and "private key in the OS keyring" in out


RECORD_RACER = """
import sys, time
from pathlib import Path
from fota_studio.infra.workspace import Workspace
from fota_studio.infra.requests_store import RequestsStore
root, start = Path(sys.argv[1]), float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
with Workspace.open(root) as ws:
    store = RequestsStore(ws)
    for i in range(5):
        r = store.create(machine=f"M{i}", ecu="VCU", brand="B", model="X", version="1.0.0")
        store.append(r.id, "step", {"step": "verify_package", "state": "ok"})
"""


def test_processes_writing_the_first_records_at_once_share_one_key(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    root = tmp_path / "ws"
    # The workspace exists (schema, WAL) but has no key yet: the race is the first records.
    Workspace.open(root).close()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD_RACER, str(root), str(start)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    with Workspace.open(root) as ws:
        info = record_signing.key_info(ws)
        assert info is not None
        keys = list(record_signing.key_path(ws, info.location).parent.glob("*.pem"))
    assert len(keys) == 1  # the losers removed theirs
    with Workspace.open(root) as ws:
        rep = verify_workspace(ws)
        assert rep.ok, rep.problems
        assert rep.entries == 40 and rep.signed == 40


def test_entries_written_before_signing_keep_verifying(
    workspace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A workspace from before schema 3: unsigned entries with the old hash, no head."""
    from fota_studio.infra.requests_store import GENESIS_HASH, entry_hash

    with Workspace.open(workspace_dir) as ws, ws.transaction() as cur:
        cur.execute(
            "INSERT INTO update_requests(machine, ecu, brand, model, version, created_at, "
            "created_by, status, updated_at) VALUES ('M','VCU','B','X','1.0.0','t0','old',"
            "'Pending','t0')"
        )
        prev = GENESIS_HASH
        for i, kind in enumerate(("created", "step")):
            data = json.dumps({"i": i}, separators=(",", ":"))
            digest = entry_hash(prev, 1, 1, f"t{i}", kind, data)
            cur.execute(
                "INSERT INTO request_entries(request_id, attempt, at, kind, data, prev_hash, "
                "hash) VALUES (1, 1, ?, ?, ?, ?, ?)",
                (f"t{i}", kind, data, prev, digest),
            )
            prev = digest
    with Workspace.open(workspace_dir) as ws:
        RequestsStore(ws).update(1, status=RequestStatus.CANCELLED, outcome="cancelled")
    code, out = _verify_cli(workspace_dir, capsys)
    assert code == 0, out
    assert "2 entries written before record signing" in out and "3 entries (1 signed)" in out
    # The signed entries protect the old ones through the hash links.
    raw = sqlite3.connect(workspace_dir / DB_NAME)
    digest = entry_hash(GENESIS_HASH, 1, 1, "t0", "created", '{"i":7}')
    raw.execute("UPDATE request_entries SET data = '{\"i\":7}', hash = ? WHERE id = 1", (digest,))
    raw.commit()
    raw.close()
    code, out = _verify_cli(workspace_dir, capsys)
    assert code == 1 and "link broken" in out


def test_write_access_to_the_workspace_is_not_the_signing_key(
    scenario: tamper.Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a keyring the key used to sit unencrypted in the workspace folder, so anyone who
    could write the folder could re-sign an edited chain. It now lives in the user's config
    folder: the workspace alone (another user, a copied folder) can verify but not sign."""
    assert not list(scenario.root.rglob("*.pem"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "another-user"))
    record_signing._signers.clear()
    with (
        Workspace.open(scenario.root) as ws,
        pytest.raises(WorkspaceError, match="not in this user's config folder"),
    ):
        RequestsStore(ws).append(scenario.other_request, ENTRY_STEP, {"step": "x"})


def _list_rows(root: Path, capsys: pytest.CaptureFixture[str], *cmd: str) -> list[str]:
    capsys.readouterr()
    assert main(["--workspace", str(root), *cmd]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("cmd", [("records", "list"), ("request", "list")])
def test_lists_mark_a_status_the_signed_record_contradicts(
    cmd: tuple[str, ...], scenario: tamper.Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not any("NOT VERIFIED" in line for line in _list_rows(scenario.root, capsys, *cmd))
    tamper.status_failed_to_successful(scenario)
    lines = _list_rows(scenario.root, capsys, *cmd)
    [failed] = [ln for ln in lines if ln.split()[:2] == ["!", str(scenario.failed_request)]]
    assert "Successful" in failed
    [other] = [ln for ln in lines if ln.split()[:1] == [str(scenario.other_request)]]
    assert "Pending" in other  # untouched rows carry no mark
    assert (
        "! NOT VERIFIED: 1 row differs from the signed record — run `fota-studio records verify`"
        in lines
    )
