"""`fota-studio repo ...`: manage Software Repositories from the command line.

Sub-commands: list, create, import, show, export, retire, verify, trust, untrust,
require-signed, allow-downgrade. Each opens the workspace (seeding the demo data into a new one),
runs one `RepositoryStore` / `TrustStore` operation and prints a short result; errors are
`FotaError`s that `cli.main` prints as one `error: ...` line. `--json` on list/show prints
machine-readable output. Every state-changing sub-command asks the one access check first
(`common.authorise`): with an admin passphrase set it needs the passphrase, else exits 2 with
"operator mode: ...". Main thread only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fota_studio.cli.common import (
    Arg,
    Command,
    add_group,
    arg,
    authorised_workspace,
    open_workspace,
    print_table,
    succeed,
)
from fota_studio.core import package
from fota_studio.core.errors import FotaError
from fota_studio.infra.access import Action
from fota_studio.infra.repository import RepositoryStore, VersionInfo
from fota_studio.infra.trust import TrustStore

EXIT_OK = 0
EXIT_PROBLEMS = 1


def register(subparsers: Any) -> None:
    """Add the `repo` command group to the top-level parser."""
    as_json = arg("--json", action="store_true", help="machine-readable output")
    version = arg("--version", dest="fw_version", required=True)
    add_group(
        subparsers,
        "repo",
        (
            Command("list", _cmd_list, "list repositories", args=(as_json,)),
            Command(
                "create",
                _cmd_create,
                "create an empty repository",
                args=(*_brand_model(), arg("--description", default="", help="what the ECU is")),
                changes_state=True,
            ),
            Command(
                "import",
                _cmd_import,
                "import a HEX/S19/BIN file or a firmware package as a new version",
                "Import a firmware file as a new immutable version. For a package, "
                "brand/model/version come from its manifest and must match when given.",
                args=(
                    *_brand_model(required=False),
                    arg("--version", dest="fw_version", help="version string, e.g. 1.2.0"),
                    arg("--notes", default="", help="release notes"),
                    arg("--base-address", help="load address of a binary file, e.g. 0x10000"),
                    arg(
                        "--format",
                        dest="fmt",
                        choices=["hex", "s19", "bin"],
                        help="file format (default: detect)",
                    ),
                    arg("--create", action="store_true", help="create the repository if missing"),
                    arg(
                        "--lenient",
                        action="store_true",
                        help="PDX/ODX-F: read a loose container in odxtools' non-strict mode and "
                        "report, per problem, what was ignored (a wrong checksum is refused "
                        "anyway)",
                    ),
                    arg(
                        "--session",
                        help="PDX/ODX-F: the flash session to import when there are several",
                    ),
                    arg("file", type=Path, metavar="FILE"),
                ),
                changes_state=True,
            ),
            Command(
                "show",
                _cmd_show,
                "show a repository's versions, or one version in detail",
                args=(
                    *_brand_model(),
                    arg("--version", dest="fw_version", help="show this version in detail"),
                    as_json,
                ),
            ),
            Command(
                "export",
                _cmd_export,
                "write a version as HEX, S19, BIN or a package",
                args=(
                    *_brand_model(),
                    version,
                    arg(
                        "--format",
                        dest="fmt",
                        required=True,
                        choices=["hex", "s19", "bin", "package"],
                    ),
                    arg("--output", required=True, type=Path, metavar="FILE"),
                    arg(
                        "--sign-key",
                        type=Path,
                        metavar="PRIVATE_KEY_PEM",
                        help="sign the package with this Ed25519 private key (re-signing a "
                        "version)",
                    ),
                    arg("--signer", default="", help="signer name written into the signature"),
                    arg(
                        "--allow-large-bin",
                        action="store_true",
                        help="write a binary even when its gaps make it much larger than the data",
                    ),
                    arg(
                        "--hardware-id",
                        action="append",
                        default=None,
                        metavar="HW",
                        help="package policy: an ECU hardware ID the image fits (repeatable)",
                    ),
                    arg(
                        "--bootloader-version",
                        action="append",
                        default=None,
                        metavar="BL",
                        help="package policy: a bootloader version the image fits (repeatable)",
                    ),
                    arg(
                        "--release-counter",
                        type=int,
                        metavar="N",
                        help="package policy: the release counter (an ECU refuses going below it)",
                    ),
                ),
            ),
            Command(
                "retire",
                _cmd_retire,
                "retire a version (kept, no longer offered)",
                args=(*_brand_model(), version),
                changes_state=True,
            ),
            Command(
                "verify", _cmd_verify, "re-hash every stored firmware file; exit 1 on problems"
            ),
            Command(
                "trust",
                _cmd_trust,
                "trust an Ed25519 public key as a package signer; without a key, list the "
                "trusted keys by fingerprint",
                "Trust is pinned to the key (its SHA-256 fingerprint), not to the name: "
                "replacing the key under a name makes what the old key signed unflashable.",
                args=(
                    arg("--name", help="signer name (with PUBLIC_KEY_PEM)"),
                    arg("public_key", type=Path, nargs="?", metavar="PUBLIC_KEY_PEM"),
                    arg("--list", action="store_true", help="list trusted keys and the trust log"),
                ),
                changes_state=True,
            ),
            Command(
                "untrust",
                _cmd_untrust,
                "revoke a trusted key (by name or fingerprint); what it signed becomes unflashable",
                args=(
                    arg("key", metavar="NAME_OR_FINGERPRINT"),
                    arg("--reason", default="", help="why (recorded in the trust log)"),
                ),
                changes_state=True,
            ),
            Command(
                "re-sign",
                _cmd_resign,
                "give an existing version the signature of a package re-signed by a trusted key",
                "The package must hold the same firmware file as the stored version; its "
                "signature and package policy replace the old ones (e.g. after a key was "
                "revoked).",
                args=(arg("package_file", type=Path, metavar="PACKAGE"),),
                changes_state=True,
            ),
            Command(
                "require-signed",
                _cmd_require_signed,
                "accept only signed packages (on) or any (off)",
                args=(arg("state", choices=["on", "off"]),),
                changes_state=True,
            ),
            Command(
                "allow-downgrade",
                _cmd_allow_downgrade,
                "store a downgrade allowance signed by a trusted key for one version",
                "A version whose release counter is below the installed one is refused "
                "unless an allowance signed by a trusted key covers it.",
                args=(
                    *_brand_model(),
                    version,
                    arg("--key", required=True, type=Path, metavar="PRIVATE_KEY_PEM"),
                    arg("--machine", default="", help="only for this machine (default: any)"),
                    arg("--ecu", default="", help="only for this ECU (default: any)"),
                    arg("--reason", default="", help="why (kept in the signed statement)"),
                ),
                changes_state=True,
            ),
        ),
        help="Software Repositories: list, import, show, export, retire, verify firmware",
        description="Software Repositories hold the firmware versions of one ECU type "
        "(Brand + Model).",
        dest="repo_command",
        metavar="<repo command>",
    )


def _brand_model(*, required: bool = True) -> tuple[Arg, Arg]:
    return (
        arg("--brand", required=required, help='ECU brand, e.g. "TTControl"'),
        arg("--model", required=required, help='ECU model, e.g. "TTC 2390"'),
    )


def _parse_address(text: str | None) -> int | None:
    """Parse a base address ("0x10000", "65536"); FotaError when it is not a number >= 0."""
    if text is None:
        return None
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise FotaError(
            f"--base-address {text!r} is not a number", hint="write it like 0x10000"
        ) from None
    if value < 0:
        raise FotaError(f"--base-address {text} is negative")
    return value


def _version_dict(v: VersionInfo) -> dict[str, Any]:
    d = asdict(v)
    d["segments"] = [{"address": a, "length": n} for a, n in v.segments]
    d["gaps"] = [{"start": s, "end": e} for s, e in v.gaps()]
    return d


def _fmt_size(n: int) -> str:
    return f"{n:,} B" if n < 1024 else f"{n / 1024:,.1f} KiB ({n:,} B)"


def _cmd_list(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        store = RepositoryStore(ws)
        repos = store.list_repositories()
        # One query for every repository's latest version: linear in repositories + versions.
        newest = store.latest_versions()
        latest = {r.id: newest[r.id].version if r.id in newest else "" for r in repos}
    if args.json:
        print(json.dumps([{**asdict(r), "latest": latest[r.id]} for r in repos], indent=2))
        return EXIT_OK
    if not repos:
        return succeed("no repositories (create one with `fota-studio repo create`)")
    print_table(
        ["BRAND", "MODEL", "VERSIONS", "LATEST", "DESCRIPTION"],
        [[r.brand, r.model, str(r.version_count), latest[r.id], r.description] for r in repos],
    )
    return EXIT_OK


def _cmd_create(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.REPO_CREATE) as ws:
        info = RepositoryStore(ws).create_repository(args.brand, args.model, args.description)
    return succeed(f"created repository {info.label}")


def _cmd_import(args: argparse.Namespace) -> int:
    from fota_studio.core.pdx import is_container_name

    if is_container_name(args.file.name):
        return _cmd_import_container(args)
    base = _parse_address(args.base_address)
    with authorised_workspace(args, Action.REPO_IMPORT) as ws:
        result = RepositoryStore(ws).import_file(
            args.brand,
            args.model,
            args.fw_version,
            args.file,
            notes=args.notes,
            base_address=base,
            fmt=args.fmt,
            create_repository=args.create,
        )
    v = result.version
    print(
        f"imported {v.label}: {v.source_format}, {len(v.segments)} segment(s), "
        f"{v.size:,} bytes, sha256 {v.sha256[:16]}…, {v.signature_state}"
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _cmd_import_container(args: argparse.Namespace) -> int:
    """`repo import FILE.pdx`: the container's blocks as a version, its checksums verified, its
    flash parameters listed as offered EA profile changes (never applied here)."""
    from fota_studio.infra.ea_store import EaStore
    from fota_studio.infra.pdx_import import import_container, offered_changes

    with authorised_workspace(args, Action.REPO_IMPORT) as ws:
        result, done = import_container(
            RepositoryStore(ws),
            args.file,
            brand=args.brand,
            model=args.model,
            version=args.fw_version,
            notes=args.notes,
            lenient=args.lenient,
            session=args.session,
            create_repository=args.create,
        )
        offers = offered_changes(EaStore(ws), result.version, done.container)
    v = result.version
    c = done.container
    print(
        f"imported {v.label} from {c.source_name} (FLASH {c.flash_name}, ECU-MEM {c.ecu_name}, "
        f"session {c.session_name or '-'}): {len(c.blocks)} data block(s), {v.size:,} bytes, "
        f"sha256 {v.sha256[:16]}…"
    )
    for block in c.blocks:
        print(f"  block {block.describe()}")
    for line in done.checksums.verified:
        print(f"  checksum verified: {line}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in done.problems:
        print(f"ignored: {problem}", file=sys.stderr)
    for (ea_name, ecu_name), changes in offers.items():
        print(f"offered changes to EA {ea_name!r} ECU {ecu_name} (NOT applied):")
        for ch in changes:
            print(f"  {ch.label}: {ch.current} -> {ch.proposed}   [{ch.source}]")
    if offers:
        print("review and accept them in the Repository panel (Import → EA profile changes)")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        store = RepositoryStore(ws)
        repo = store.get_repository(args.brand, args.model)
        if args.fw_version:
            version = store.get_version(args.brand, args.model, args.fw_version)
            if args.json:
                print(json.dumps(_version_dict(version), indent=2))
            else:
                _print_version(version)
            return EXIT_OK
        versions = store.list_versions(args.brand, args.model)
    if args.json:
        print(
            json.dumps({**asdict(repo), "versions": [_version_dict(v) for v in versions]}, indent=2)
        )
        return EXIT_OK
    print(f"{repo.label}  ({repo.description})" if repo.description else repo.label)
    print(f"created {repo.created_at}, {repo.version_count} version(s)")
    if not versions:
        return EXIT_OK
    print()
    print_table(
        ["VERSION", "STATE", "FORMAT", "SIZE", "SEGS", "SHA-256", "SIGNATURE", "IMPORTED", "BY"],
        [
            [
                v.version,
                "retired" if v.retired else "active",
                v.source_format,
                f"{v.size:,}",
                str(len(v.segments)),
                v.sha256[:16],
                v.signature_state
                + (f" ({v.signer}, {v.signer_fingerprint[:12]}…)" if v.signer else ""),
                v.imported_at,
                v.imported_by,
            ]
            for v in versions
        ],
    )
    return EXIT_OK


def _print_version(v: VersionInfo) -> None:
    lines = [
        ("Repository", f"{v.brand} / {v.model}"),
        ("Version", v.version + ("  (retired)" if v.retired else "")),
        ("Size", _fmt_size(v.size)),
        ("Image SHA-256", v.sha256),
        ("CRC32", f"0x{v.crc32:08X}"),
        ("File SHA-256", v.file_sha256),
        ("Source", f"{v.source_name} ({v.source_format})"),
        ("Signature", v.signature_state + (f" by {v.signer}" if v.signer else "")),
        ("Signing key", v.signer_fingerprint or "-"),
        ("Hardware IDs", ", ".join(v.hardware_ids) or "any"),
        ("Bootloaders", ", ".join(v.bootloader_versions) or "any"),
        ("Release counter", "-" if v.release_counter is None else str(v.release_counter)),
        ("Imported", f"{v.imported_at} by {v.imported_by}"),
    ]
    if v.base_address is not None:
        lines.append(("Base address", f"0x{v.base_address:08X}"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    print()
    print("Memory layout:")
    gaps = dict(v.gaps())
    for address, length in v.segments:
        print(f"  segment 0x{address:08X}-0x{address + length - 1:08X}  {_fmt_size(length)}")
        end = address + length
        if end in gaps:
            print(f"  gap     0x{end:08X}-0x{gaps[end] - 1:08X}  {_fmt_size(gaps[end] - end)}")
    print()
    print("Release notes:")
    for line in (v.notes or "(none)").splitlines():
        print(f"  {line}")


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FotaError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def _cmd_export(args: argparse.Namespace) -> int:
    signing_key = None
    policy_given = (
        args.hardware_id is not None
        or args.bootloader_version is not None
        or args.release_counter is not None
    )
    if args.fmt != "package" and (args.sign_key is not None or policy_given):
        raise FotaError("--sign-key and the package policy options apply only to --format package")
    if args.sign_key is not None:
        signing_key = package.load_signing_key(_read_file(args.sign_key, "signing key"))
        if not args.signer.strip():
            raise FotaError("--sign-key needs --signer NAME (the name readers see)")
    with open_workspace(args) as ws:
        store = RepositoryStore(ws)
        policy: dict[str, Any] | None = None  # None: the version's own package policy
        if policy_given:
            v = store.get_version(args.brand, args.model, args.fw_version)
            policy = {
                "hardware_ids": tuple(args.hardware_id or v.hardware_ids),
                "bootloader_versions": tuple(args.bootloader_version or v.bootloader_versions),
                "release_counter": (
                    v.release_counter if args.release_counter is None else args.release_counter
                ),
            }
        out = store.export(
            args.brand,
            args.model,
            args.fw_version,
            args.fmt,
            args.output,
            signing_key=signing_key,
            signer=args.signer.strip(),
            policy=policy,
            # Only a binary asks (policy options go with --format package, checked above).
            confirm_size=lambda _file, _data: bool(args.allow_large_bin),
        )
    return succeed(f"wrote {out}")


def _cmd_retire(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.REPO_RETIRE) as ws:
        v = RepositoryStore(ws).retire(args.brand, args.model, args.fw_version)
    return succeed(f"retired {v.label}")


def _cmd_verify(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        store = RepositoryStore(ws)
        problems, count = store.verify_counted()
    for line in problems:
        print(line)
    if problems:
        print(f"error: {len(problems)} problem(s) in {count} version(s)", file=sys.stderr)
        return EXIT_PROBLEMS
    return succeed(f"ok: {count} version(s) verified")


def _cmd_trust(args: argparse.Namespace) -> int:
    if args.list or args.public_key is None:
        if args.name:
            raise FotaError("--name goes with PUBLIC_KEY_PEM", hint="repo trust --name N KEY.pem")
        with open_workspace(args) as ws:
            trust = TrustStore(ws)
            keys = trust.keys()
            events = trust.events()
            required = trust.require_signed_packages
        print(f"require signed packages: {'on' if required else 'off'}")
        if not keys:
            print("no trusted keys (add one with `fota-studio repo trust --name N KEY.pem`)")
        else:
            print_table(
                ["NAME", "FINGERPRINT (SHA-256 of the raw public key)", "ADDED"],
                [[k.name, k.fingerprint, k.added_at] for k in keys],
            )
        if events:
            print()
            print("trust log:")
            for e in events:
                fp = f" {e.fingerprint}" if e.fingerprint else ""
                why = f": {e.reason}" if e.reason else ""
                print(f"  {e.at}  {e.by}  {e.action} {e.name}{fp}{why}")
        return EXIT_OK
    if not args.name:
        raise FotaError("repo trust KEY.pem needs --name NAME", hint="the signer's name")
    pem = _read_file(args.public_key, "public key")
    with authorised_workspace(args, Action.REPO_TRUST) as ws:
        key = TrustStore(ws).add(args.name, pem)
    return succeed(f"trusted signer {key.name!r}: key {key.fingerprint}")


def _cmd_untrust(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.REPO_UNTRUST) as ws:
        fp = TrustStore(ws).remove(args.key, reason=args.reason)
    return succeed(f"revoked key {fp}: what it signed can no longer be flashed until re-signed")


def _cmd_resign(args: argparse.Namespace) -> int:
    data = _read_file(args.package_file, "package")
    with authorised_workspace(args, Action.REPO_IMPORT) as ws:
        label = TrustStore(ws).apply_resigned_package(data, source=args.package_file.name)
    return succeed(f"re-signed {label}")


def _cmd_require_signed(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.REPO_POLICY) as ws:
        TrustStore(ws).set_require_signed(args.state == "on")
    return succeed(f"require signed packages: {args.state}")


def _cmd_allow_downgrade(args: argparse.Namespace) -> int:
    key = package.load_signing_key(_read_file(args.key, "signing key"))
    with authorised_workspace(args, Action.REPO_ALLOW_DOWNGRADE) as ws:
        v = RepositoryStore(ws).get_version(args.brand, args.model, args.fw_version)
        fp = TrustStore(ws).add_downgrade_allowance(
            key,
            brand=v.brand,
            model=v.model,
            version=v.version,
            machine=args.machine,
            ecu=args.ecu,
            reason=args.reason,
        )
    scope = f" on {args.machine or 'any machine'}, {args.ecu or 'any ECU'}"
    return succeed(f"downgrade to {v.label} allowed{scope} (signed by key {fp})")
