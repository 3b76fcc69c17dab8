"""Roles, signing-key and package-policy attacks of issue 14, as a careless second user or an
attacker at the keyboard (without the admin passphrase) would run them.

Each attack in `ATTACKS` gets a fresh demo workspace with the signed-packages policy on, one
trusted release key and an admin passphrase set (`build_workspace`), tries one thing through the
product's own entry points (`cli.main` in-process, or the one flash rule
`infra/trust.check_flashable`) and reports whether it was refused with nothing changed. A crash
counts as not refused. `campaign()` runs them all; `refused == cases` is the bar, and
`reliability/campaign.py` adds them to the tamper figures. Main thread of a script or test.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fota_studio.cli import main
from fota_studio.core.ea_format import dump_ea_yaml
from fota_studio.core.firmware import FirmwareImage, Segment, to_hex
from fota_studio.core.package import build_package, generate_signing_key, load_signing_key
from fota_studio.core.reference_ecu import APP_REGION_START, app_header
from fota_studio.infra.access import AccessControl
from fota_studio.infra.ea_store import EaStore
from fota_studio.infra.repository import RepositoryStore
from fota_studio.infra.trust import NotFlashableError, TrustStore, check_flashable
from fota_studio.infra.workspace import Workspace

PASSPHRASE = "campaign admin passphrase"
MACHINE = "Unit #1001"
ECU = "VCU"


@dataclass
class Bench:
    """A protected demo workspace: policy on, key "release" trusted, a passphrase set."""

    root: Path
    release_private: bytes
    brand: str
    model: str


def _image(version: str) -> bytes:
    head = app_header(version)
    body = head + bytes((i * 29) & 0xFF for i in range(0x400 - len(head)))
    return to_hex(FirmwareImage((Segment(APP_REGION_START, body),)))


def _package(b: Bench, version: str, private: bytes, **policy: object) -> bytes:
    return build_package(
        _image(version),
        "vcu.hex",
        brand=b.brand,
        model=b.model,
        version=version,
        signing_key=load_signing_key(private),
        signer="release",
        **policy,  # type: ignore[arg-type]
    )


def build_workspace(root: Path) -> Bench:
    """The protected workspace the attacks run against."""
    assert _cli(root, "repo", "list") == 0
    private, public = generate_signing_key()
    with Workspace.open(root) as ws:
        ecu = EaStore(ws).get(EaStore(ws).get_machine(MACHINE).ea_name or "").ecu(ECU)
        trust = TrustStore(ws)
        trust.add("release", public)
        trust.set_require_signed(True)
        AccessControl(ws).set_passphrase(PASSPHRASE)
    return Bench(root, private, ecu.brand, ecu.model)


def _cli(root: Path, *argv: str) -> int:
    """Run the CLI in-process with an empty stdin (no passphrase), output discarded."""
    old_in, old_out, old_err = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), io.StringIO(), io.StringIO()
    try:
        return main(["--log-level", "ERROR", "--workspace", str(root), *argv])
    finally:
        sys.stdin, sys.stdout, sys.stderr = old_in, old_out, old_err


def _refused(code: int) -> bool:
    return code == 2


def policy_off(b: Bench) -> bool:
    refused = _refused(_cli(b.root, "repo", "require-signed", "off"))
    with Workspace.open(b.root) as ws:
        return refused and TrustStore(ws).require_signed_packages


def trust_attacker_key(b: Bench) -> bool:
    _, public = generate_signing_key()
    key = b.root.parent / "mallory.pem"
    key.write_bytes(public)
    refused = _refused(_cli(b.root, "repo", "trust", "--name", "release", str(key)))
    with Workspace.open(b.root) as ws:
        return refused and list(TrustStore(ws).trusted_keys()) == ["release"]


def import_attacker_package(b: Bench) -> bool:
    mallory, _ = generate_signing_key()
    pkg = b.root.parent / "evil.zip"
    pkg.write_bytes(_package(b, "6.6.6", mallory))
    refused = _refused(_cli(b.root, "repo", "import", str(pkg)))
    with Workspace.open(b.root) as ws:
        versions = {v.version for v in RepositoryStore(ws).list_versions(b.brand, b.model)}
    return refused and "6.6.6" not in versions


def replace_ea(b: Bench) -> bool:
    with Workspace.open(b.root) as ws:
        store = EaStore(ws)
        ea = store.get(store.get_machine(MACHINE).ea_name or "")
    before = dump_ea_yaml(ea)
    ea.ecu(ECU).connection.bitrate_bps = 125_000
    evil = b.root.parent / "evil.yaml"
    evil.write_text(dump_ea_yaml(ea), encoding="utf-8")
    refused = _refused(_cli(b.root, "ea", "import", "--replace", str(evil)))
    with Workspace.open(b.root) as ws:
        return refused and dump_ea_yaml(EaStore(ws).get(ea.name)) == before


def flash_attacker_file(b: Bench) -> bool:
    with Workspace.open(b.root) as ws:
        store = EaStore(ws)
        ea_text = dump_ea_yaml(store.get(store.get_machine(MACHINE).ea_name or ""))
    ea_file = b.root.parent / "ea.yaml"
    ea_file.write_text(ea_text, encoding="utf-8")
    fw = b.root.parent / "evil.hex"
    fw.write_bytes(_image("6.6.6"))
    argv = ["flash", "--ecu", ECU, "--ea", str(ea_file), "--firmware", str(fw), "--dry-run"]
    return _refused(_cli(b.root, *argv))


def _not_flashable(b: Bench, version: str, **kw: object) -> bool:
    with Workspace.open(b.root) as ws:
        v = RepositoryStore(ws).get_version(b.brand, b.model, version)
        ecu = EaStore(ws).get(EaStore(ws).get_machine(MACHINE).ea_name or "").ecu(ECU)
        try:
            check_flashable(ws, v, ecu=ecu, machine=MACHINE, **kw)  # type: ignore[arg-type]
        except NotFlashableError:
            return True
    return False


def _import(b: Bench, data: bytes) -> None:
    with Workspace.open(b.root) as ws:
        RepositoryStore(ws).import_bytes(None, None, None, data, source_name="p.zip")


def replaced_key(b: Bench) -> bool:
    _import(b, _package(b, "7.0.0", b.release_private))
    _, other = generate_signing_key()
    with Workspace.open(b.root) as ws:  # an engineer (or attacker) swaps the key under the name
        TrustStore(ws).add("release", other)
    return _not_flashable(b, "7.0.0")


def revoked_key(b: Bench) -> bool:
    _import(b, _package(b, "7.0.0", b.release_private))
    with Workspace.open(b.root) as ws:
        TrustStore(ws).remove("release", reason="campaign")
    return _not_flashable(b, "7.0.0")


def wrong_hardware(b: Bench) -> bool:
    _import(b, _package(b, "7.0.0", b.release_private, hardware_ids=("HW 9.9",)))
    return _not_flashable(b, "7.0.0")


def downgrade(b: Bench) -> bool:
    _import(b, _package(b, "8.0.0", b.release_private, release_counter=8))
    _import(b, _package(b, "7.0.0", b.release_private, release_counter=7))
    return _not_flashable(b, "7.0.0", installed_version="8.0.0")


def forged_downgrade_allowance(b: Bench) -> bool:
    _import(b, _package(b, "8.0.0", b.release_private, release_counter=8))
    _import(b, _package(b, "7.0.0", b.release_private, release_counter=7))
    with Workspace.open(b.root) as ws:
        TrustStore(ws).add_downgrade_allowance(
            load_signing_key(b.release_private),
            brand=b.brand,
            model=b.model,
            version="7.0.0",
            machine="Unit #1002",
        )
        with ws.transaction() as cur:  # widen the allowance to every machine without the key
            cur.execute(
                "UPDATE downgrade_allowances SET statement = replace(statement, "
                '\'"machine":"Unit #1002"\', \'"machine":""\')'
            )
    return _not_flashable(b, "7.0.0", installed_version="8.0.0")


ATTACKS: dict[str, Callable[[Bench], bool]] = {
    "require-signed off": policy_off,
    "trust an attacker key": trust_attacker_key,
    "import attacker package": import_attacker_package,
    "ea import --replace": replace_ea,
    "flash an attacker file": flash_attacker_file,
    "key replaced under name": replaced_key,
    "key revoked": revoked_key,
    "wrong hardware ID": wrong_hardware,
    "downgrade, no allowance": downgrade,
    "forged allowance": forged_downgrade_allowance,
}


@dataclass(frozen=True)
class CaseResult:
    """One attack: refused (nothing changed) or not, and a traceback if it crashed."""

    name: str
    refused: bool
    crash: str = ""


@dataclass
class AccessReport:
    """The campaign's figures."""

    cases: int = 0
    refused: int = 0
    results: list[CaseResult] = field(default_factory=list)


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fota-access-") as tmp:
        yield Path(tmp)


def run_case(name: str, folder: Path) -> CaseResult:
    """Build a fresh protected workspace in `folder` and run attack `name` on it."""
    try:
        bench = build_workspace(folder / "ws")
        return CaseResult(name, bool(ATTACKS[name](bench)))
    except Exception:  # a crash is not a refusal
        return CaseResult(name, False, crash=traceback.format_exc(limit=3))


def campaign() -> AccessReport:
    """Run every attack once, each in its own workspace."""
    rep = AccessReport()
    with _folder() as tmp:
        for i, name in enumerate(ATTACKS):
            res = run_case(name, tmp / f"case{i}")
            rep.cases += 1
            rep.refused += int(res.refused)
            rep.results.append(res)
    return rep


if __name__ == "__main__":
    report = campaign()
    for r in report.results:
        state = "refused" if r.refused else "NOT REFUSED"
        sys.stdout.write(f"{r.name:<26} {state} {r.crash[-200:]}\n")
    sys.stdout.write(f"access attacks: {report.refused} of {report.cases} refused\n")
