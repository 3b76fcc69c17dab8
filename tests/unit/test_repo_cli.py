"""`fota-studio repo ...` end to end through `cli.main`, plus one run of the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bincopy
import pytest

from fota_studio.cli import main
from fota_studio.core import package
from fota_studio.demo.catalog import DEMO_REPOSITORIES
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
VCU = DEMO_REPOSITORIES[0]


def _run(ws: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """Run the CLI; return (exit code, stdout, error lines on stderr)."""
    code = main(["--workspace", str(ws), "--log-level", "WARNING", *argv])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    return code, out, errors


def _repo_args(command: str, brand: str, model: str, version: str | None = None) -> list[str]:
    """argv for `repo <command>` on one repository (and one version when given)."""
    args = ["repo", command, "--brand", brand, "--model", model]
    return args if version is None else [*args, "--version", version]


def _hex_file(path: Path, address: int, data: bytes) -> Path:
    bf = bincopy.BinFile()
    bf.add_binary(data, address=address)
    path.write_text(bf.as_ihex())
    return path


def test_list_shows_demo_repositories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    code, out, errors = _run(ws, capsys, "repo", "list")
    assert code == 0 and not errors
    for repo in DEMO_REPOSITORIES:
        assert repo.brand in out and repo.model in out
    code, out, _ = _run(ws, capsys, "repo", "list", "--json")
    rows = json.loads(out)
    assert [(r["brand"], r["model"]) for r in rows] == sorted(
        (r.brand, r.model) for r in DEMO_REPOSITORIES
    )
    vcu = next(r for r in rows if r["model"] == VCU.model)
    assert vcu["version_count"] == len(VCU.versions) and vcu["latest"] == VCU.versions[-1]


def test_create_import_show_export_retire_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    code, out, _ = _run(ws, capsys, "repo", "create", "--brand", "Acme", "--model", "X1")
    assert code == 0 and "created repository Acme / X1" in out

    fw = _hex_file(tmp_path / "app.hex", 0x1_0000, bytes(range(256)) * 4)
    args = _repo_args("import", "Acme", "X1", "1.0.0")
    code, out, errors = _run(ws, capsys, *args, "--notes", "first", str(fw))
    assert code == 0 and not errors and "imported Acme / X1 1.0.0" in out

    code, out, errors = _run(ws, capsys, *args, str(fw))
    assert code == 1
    assert errors == [
        "error: version 1.0.0 already exists in Acme / X1; versions are immutable — "
        "import under a new version or retire the old one"
    ]

    binf = tmp_path / "app.bin"
    binf.write_bytes(b"\xaa" * 512)
    code, out, _ = _run(
        ws,
        capsys,
        *_repo_args("import", "Acme", "X1", "1.1.0"),
        *("--base-address", "0x20000", "--format", "bin", str(binf)),
    )
    assert code == 0 and "bin" in out

    code, out, _ = _run(ws, capsys, *_repo_args("show", "Acme", "X1"))
    assert code == 0 and "1.0.0" in out and "1.1.0" in out
    code, out, _ = _run(ws, capsys, *_repo_args("show", "Acme", "X1", "1.0.0"))
    assert code == 0
    assert "0x00010000-0x000103FF" in out and "first" in out and "CRC32" in out
    code, out, _ = _run(ws, capsys, *_repo_args("show", "Acme", "X1"), "--json")
    doc = json.loads(out)
    assert [v["version"] for v in doc["versions"]] == ["1.0.0", "1.1.0"]
    assert doc["versions"][1]["segments"] == [{"address": 0x20000, "length": 512}]

    out_file = tmp_path / "out.s19"
    code, out, _ = _run(
        ws,
        capsys,
        *_repo_args("export", "Acme", "X1", "1.0.0"),
        *("--format", "s19", "--output", str(out_file)),
    )
    assert code == 0 and out_file.read_bytes().startswith(b"S0")

    code, out, _ = _run(ws, capsys, *_repo_args("retire", "Acme", "X1", "1.0.0"))
    assert code == 0 and "retired" in out
    code, out, _ = _run(ws, capsys, "repo", "verify")
    assert code == 0 and out.startswith("ok:")

    with Workspace.open(ws) as w:
        v = RepositoryStore(w).get_version("Acme", "X1", "1.1.0")
        w.blobs.path(v.file_sha256).unlink()
    code, out, errors = _run(ws, capsys, "repo", "verify")
    assert code == 1 and "Acme / X1 1.1.0" in out and "missing" in out
    assert len(errors) == 1


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    bad = tmp_path / "bad.hex"
    bad.write_text(":10000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF01\n:00000001FF\n")
    code, _, errors = _run(ws, capsys, *_repo_args("import", "A", "B", "1"), "--create", str(bad))
    assert code == 1 and len(errors) == 1 and errors[0].startswith("error: bad.hex:1:")
    with Workspace.open(ws) as w:  # the failed import did not create the repository
        assert "B" not in {r.model for r in RepositoryStore(w).list_repositories()}
    code, _, errors = _run(ws, capsys, *_repo_args("show", "Nope", "None"))
    assert code == 1 and len(errors) == 1 and "TTC 2390" in errors[0]
    code, _, errors = _run(
        ws,
        capsys,
        *_repo_args("import", VCU.brand, VCU.model, "9.0.0"),
        *("--base-address", "zz", str(bad)),
    )
    assert code == 1 and errors == [
        "error: --base-address 'zz' is not a number (write it like 0x10000)"
    ]


def test_signed_package_policy_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    private_pem, public_pem = package.generate_signing_key()
    pub = tmp_path / "lab.pub.pem"
    pub.write_bytes(public_pem)
    assert _run(ws, capsys, "repo", "trust", "--name", "lab", str(pub))[0] == 0
    assert _run(ws, capsys, "repo", "require-signed", "on")[0] == 0
    fw = _hex_file(tmp_path / "app.hex", 0x1_0000, b"\x01\x02" * 300)
    code, _, errors = _run(
        ws, capsys, *_repo_args("import", VCU.brand, VCU.model, "4.0.0"), str(fw)
    )
    assert code == 1 and len(errors) == 1 and "signed" in errors[0]

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    pkg = tmp_path / "app-4.0.0.zip"
    pkg.write_bytes(
        package.build_package(
            fw.read_bytes(),
            "app.hex",
            brand=VCU.brand,
            model=VCU.model,
            version="4.0.0",
            signing_key=key,
            signer="lab",
        )
    )
    code, out, errors = _run(ws, capsys, "repo", "import", str(pkg))
    assert code == 0 and not errors and "valid" in out
    assert _run(ws, capsys, "repo", "require-signed", "off")[0] == 0
    with Workspace.open(ws) as w:
        assert RepositoryStore(w).require_signed_packages is False


PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def _run_entry_point(ws: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m fota_studio --workspace <ws> <argv>` in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [PYTHON, "-m", "fota_studio", "--workspace", str(ws), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


def test_entry_point_subprocess(tmp_path: Path) -> None:
    proc = _run_entry_point(tmp_path / "ws", "repo", "list")
    assert proc.returncode == 0, proc.stderr
    assert VCU.model in proc.stdout
    proc = _run_entry_point(tmp_path / "ws", *_repo_args("show", "Nope", "X"))
    assert proc.returncode == 1
    assert next(ln for ln in proc.stderr.splitlines() if ln.startswith("error:")).startswith(
        'error: no Software Repository "Nope / X"'
    )
