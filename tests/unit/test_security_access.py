"""Roles on every path: with an admin passphrase set, the CLI refuses every state-changing
command without it (exit 2, "operator mode: ..."), accepts it from --passphrase-stdin, and the
attack of issue 14 (turn the signature policy off, trust an attacker key, replace the EA, flash
what that key signed) stops at its first step. The CLI runs in-process through `cli.main`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fota_studio.core.ea_format import dump_ea_yaml
from fota_studio.core.package import generate_signing_key
from fota_studio.infra.access import AccessControl, AccessDeniedError, Action, Mode
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.trust import TrustStore
from fota_studio.infra.workspace import Workspace
from tests.fakes.packages import vcu_flash_args, vcu_image_hex, vcu_package
from tests.helpers.cli import cli

PASSPHRASE = "correct horse battery"


def _run(
    ws: Path, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None
) -> tuple[int, str, str]:
    """Run the CLI on `ws`; with `stdin`, add --passphrase-stdin and give it those lines.
    Returns (exit code, stdout, stderr)."""
    mp = pytest.MonkeyPatch()
    mp.setattr("sys.stdin", io.StringIO(stdin if stdin is not None else ""))
    try:
        capsys.readouterr()
        code = cli(ws, *argv, *(() if stdin is None else ("--passphrase-stdin",)))
    finally:
        mp.undo()
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def protected(seeded_copy: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A copy of the demo workspace with signed packages required and a passphrase set."""
    ws_dir = seeded_copy
    code, _, err = _run(ws_dir, capsys, "repo", "require-signed", "on")
    assert code == 0, err
    code, _, err = _run(ws_dir, capsys, "access", "set-passphrase", stdin=PASSPHRASE + "\n")
    assert code == 0, err
    return ws_dir


def test_access_status_and_passphrase_lifecycle(
    seeded_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws_dir = seeded_copy
    code, out, _ = _run(ws_dir, capsys, "access", "status")
    assert code == 0 and "not set" in out and "repo trust" in out
    code, _, err = _run(ws_dir, capsys, "access", "set-passphrase", stdin="short\n")
    assert code == 1 and "at least 8" in err
    code, _, _ = _run(ws_dir, capsys, "access", "set-passphrase", stdin=PASSPHRASE + "\n")
    assert code == 0
    code, out, _ = _run(ws_dir, capsys, "access", "status")
    assert "admin passphrase: set" in out
    # changing it needs the current one
    code, _, err = _run(ws_dir, capsys, "access", "set-passphrase", stdin="guess1234\nnewpass123\n")
    assert code == 2 and "operator mode:" in err
    code, _, _ = _run(
        ws_dir, capsys, "access", "set-passphrase", stdin=f"{PASSPHRASE}\nnew passphrase 2\n"
    )
    assert code == 0
    with Workspace.open(ws_dir) as ws:
        assert AccessControl(ws).verify("new passphrase 2")
    code, _, _ = _run(ws_dir, capsys, "access", "clear-passphrase", stdin="new passphrase 2\n")
    assert code == 0
    with Workspace.open(ws_dir) as ws:
        assert not AccessControl(ws).has_passphrase()


def test_policy_cannot_be_switched_off_without_the_passphrase(
    protected: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(protected, capsys, "repo", "require-signed", "off")
    assert code == 2
    assert "operator mode: repo require-signed needs the admin passphrase" in err
    assert "--passphrase-stdin" in err
    with Workspace.open(protected) as ws:
        assert TrustStore(ws).require_signed_packages
    code, _, err = _run(protected, capsys, "repo", "require-signed", "off", stdin="wrong one\n")
    assert code == 2 and "wrong" in err
    code, _, _ = _run(protected, capsys, "repo", "require-signed", "off", stdin=PASSPHRASE + "\n")
    assert code == 0
    with Workspace.open(protected) as ws:
        assert not TrustStore(ws).require_signed_packages


def test_attacker_key_cannot_be_trusted_and_its_package_never_flashes(
    protected: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private_pem, public_pem = generate_signing_key()
    key_file = tmp_path / "mallory.pem"
    key_file.write_bytes(public_pem)
    code, _, err = _run(protected, capsys, "repo", "trust", "--name", "release", str(key_file))
    assert code == 2 and "operator mode: repo trust" in err
    with Workspace.open(protected) as ws:
        assert TrustStore(ws).keys() == []
    pkg = tmp_path / "evil.zip"
    pkg.write_bytes(vcu_package("6.6.6", private_pem))
    code, _, err = _run(protected, capsys, "repo", "import", str(pkg))
    assert code == 2 and "operator mode: repo import" in err
    code, _, err = _run(protected, capsys, *vcu_flash_args("6.6.6"))
    assert code == 1 and "no version" in err
    # the HEX itself through --ea/--firmware: refused as well
    ea_file = tmp_path / "ea.yaml"
    with Workspace.open(protected) as ws:
        store = EaStore(ws)
        ea_file.write_text(dump_ea_yaml(store.get(store.list()[0].name)))
    fw = tmp_path / "evil.hex"
    fw.write_bytes(vcu_image_hex("6.6.6"))
    code, _, err = _run(
        protected,
        capsys,
        "flash",
        "--ecu",
        "VCU",
        "--ea",
        str(ea_file),
        "--firmware",
        str(fw),
        "--simulate",
        "--no-progress",
    )
    assert code == 2 and "operator mode: flash of a file" in err


def test_ea_replace_and_assign_need_the_passphrase(
    protected: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(protected) as ws:
        store = EaStore(ws)
        name = store.list()[0].name
        ea = store.get(name)
        before = dump_ea_yaml(ea)
    ea.ecus[0].connection.bitrate_bps = 125_000  # a hostile edit
    evil = tmp_path / "evil.yaml"
    evil.write_text(dump_ea_yaml(ea))
    code, _, err = _run(protected, capsys, "ea", "import", "--replace", str(evil))
    assert code == 2 and "operator mode: ea import" in err
    code, _, err = _run(protected, capsys, "ea", "assign", "--machine", "Unit #9", "--ea", name)
    assert code == 2 and "operator mode: ea assign" in err
    with Workspace.open(protected) as ws:
        assert dump_ea_yaml(EaStore(ws).get(name)) == before
        assert "Unit #9" not in {m.serial for m in EaStore(ws).list_machines()}
    code, _, err = _run(
        protected, capsys, "ea", "import", "--replace", str(evil), stdin=PASSPHRASE + "\n"
    )
    assert code == 0, err


@pytest.mark.parametrize(
    "argv",
    [
        ("repo", "create", "--brand", "Acme", "--model", "X"),
        ("repo", "retire", "--brand", "TTControl", "--model", "TTC 2390", "--version", "3.1.0"),
        ("repo", "untrust", "release"),
        ("request", "create", "--machine", "Unit #1001", "--ecu", "VCU", "--version", "3.2.0"),
        ("request", "cancel", "1"),
        ("request", "start", "1"),
        ("request", "rerun", "1"),
        # It writes a request and the machine's installed version (it once needed nothing).
        ("demo", "--headless"),
    ],
)
def test_every_state_changing_command_is_refused(
    protected: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    with Workspace.open(protected) as ws:
        before = ws.read("SELECT COUNT(*) AS n FROM repositories")[0]["n"]
    code, _, err = _run(protected, capsys, *argv)
    assert code == 2, err
    assert err.startswith("error: operator mode: ")
    with Workspace.open(protected) as ws:
        assert ws.read("SELECT COUNT(*) AS n FROM repositories")[0]["n"] == before
        assert ws.read("SELECT COUNT(*) AS n FROM update_requests")[0]["n"] == 0
        assert not RepositoryStore(ws).get_version("TTControl", "TTC 2390", "3.1.0").retired


def test_read_only_commands_need_no_passphrase(
    protected: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (("repo", "list"), ("ea", "list"), ("records", "list"), ("repo", "trust")):
        code, _, err = _run(protected, capsys, *argv)
        assert code == 0, (argv, err)


def test_one_access_check_below_ui_and_cli(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ws") as ws:
        access = AccessControl(ws)
        assert access.allows(Action.RAW_TRANSMIT)  # no passphrase: nothing to protect
        access.set_passphrase(PASSPHRASE)
        access = AccessControl(ws)
        assert access.mode is Mode.OPERATOR
        for action in Action:
            with pytest.raises(AccessDeniedError, match=f"operator mode: {action.value}"):
                access.require(action)
        assert access.enter_engineering(PASSPHRASE)
        access.require(Action.FAULT_INJECTION)


def test_damaged_passphrase_hash_matches_nothing(tmp_path: Path) -> None:
    from fota_studio.infra.access import PASSPHRASE_SETTING

    with Workspace.open(tmp_path / "ws") as ws:
        AccessControl(ws).set_passphrase(PASSPHRASE)
        stored = dict(ws.get_setting(PASSPHRASE_SETTING))
        for damage in ({"salt": "zz"}, {"n": 3}, {"hash": None}, {"n": 2**40}):
            ws.set_setting(PASSPHRASE_SETTING, {**stored, **damage})
            access = AccessControl(ws)
            assert access.mode is Mode.OPERATOR
            assert not access.enter_engineering(PASSPHRASE)
