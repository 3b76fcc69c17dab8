"""Mutation fuzzing of every file reader FOTA Studio trusts with a user's file.

Targets (each `Target.run(data)` feeds one input): Intel HEX, S-record and raw binary loaders,
format detection, firmware packages (mutated zips plus crafted zip-slip names, compression bombs,
missing/extra manifest fields, bad signatures), EA YAML files, every trace-log reader of
infra/tracefile.py (ASC, BLF, TRC, CSV, candump .log; python-can's readers underneath) and the
TCU's EDS (`FotaLayout.load`). A target passes an input when it either loads it or raises a
`FotaError` with a message; any other exception is a crash, an input taking longer than
`INPUT_TIME_LIMIT_S` is a hang, and a reader writing into its folder is a violation.

`run_campaign(inputs_per_target, seed)` returns per-target counts; tests/unit/test_fuzz_*.py use
the same targets with hypothesis. Main thread of a script or test.
"""

from __future__ import annotations

import base64
import io
import json
import random
import shutil
import struct
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can

from fota_studio.core.ea_format import dump_ea_yaml, load_ea_yaml
from fota_studio.core.errors import FotaError
from fota_studio.core.firmware import (
    FirmwareImage,
    Segment,
    load_binary,
    load_hex,
    load_image,
    load_srec,
    to_hex,
    to_srec,
)
from fota_studio.core.package import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    build_package,
    generate_signing_key,
    load_signing_key,
    read_package,
)
from fota_studio.demo import catalog as demo_catalog
from fota_studio.infra.tracefile import read_log
from fota_studio.protocols.fota_objects import FotaLayout, default_eds_path

#: One input must be accepted or rejected within this much CPU time (a parser bomb otherwise).
INPUT_TIME_LIMIT_S = 5.0
#: Wall-clock bound for one input (a hang that burns no CPU still counts as slow).
INPUT_WALL_LIMIT_S = 30.0
#: Tokens spliced into text inputs: record starts, huge numbers, odd bytes, YAML/INI syntax.
TEXT_TOKENS = (
    b":",
    b"S3",
    b"S9",
    b":020000040000FA",
    b"FFFFFFFFFFFFFFFF",
    b"99999999999999999999",
    b"-1",
    b"\x00",
    b"\xff\xfe",
    b"\r",
    b"\n\n",
    b"[",
    b"]",
    b"=",
    b": ",
    b"- ",
    b"&a",
    b"*a",
    b"!!python/object:os.system",
    b"0x",
    b"nan",
    b"{",
    b"}",
    b"'",
    b'"',
    b"\t",
)


def mutate(data: bytes, rng: random.Random, max_ops: int = 6) -> bytes:
    """A random mutation of `data`: flips, insertions, deletions, splices, duplications, cuts."""
    buf = bytearray(data)
    for _ in range(rng.randrange(1, max_ops + 1)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif op == 2 and buf:
            del buf[pos : pos + rng.randrange(1, 64)]
        elif op == 3:
            buf[pos:pos] = rng.choice(TEXT_TOKENS)
        elif op == 4 and buf:
            start = rng.randrange(len(buf))
            chunk = buf[start : start + rng.randrange(1, 256)]
            buf[pos:pos] = chunk * rng.randrange(1, 4)
        elif op == 5:
            del buf[pos:]
        elif buf:
            i = rng.randrange(len(buf))
            buf[i] = rng.choice(b"0123456789ABCDEFabcdef:S\n ")
    return bytes(buf)


# -- seeds ---------------------------------------------------------------------------------


def sample_image() -> FirmwareImage:
    """A small two-segment image starting with the demo application header."""
    header = demo_catalog.app_header("1.2.3")
    body = header + bytes((i * 7) & 0xFF for i in range(0x200 - len(header)))
    base = demo_catalog.APP_REGION_START
    return FirmwareImage((Segment(base, body), Segment(base + 0x400, bytes(range(256)))))


def sample_hex() -> bytes:
    """A valid Intel HEX file of `sample_image`."""
    return to_hex(sample_image(), record_bytes=16)


def sample_srec() -> bytes:
    """A valid S-record file of `sample_image`."""
    return to_srec(sample_image(), record_bytes=16)


@dataclass
class PackageKit:
    """Seeds for the package target: a trusted key and a signed and an unsigned package."""

    private_pem: bytes
    public_pem: bytes
    signed: bytes
    unsigned: bytes

    @property
    def trusted(self) -> dict[str, bytes]:
        """The trusted-keys mapping readers get."""
        return {"fuzz-signer": self.public_pem}


def package_kit() -> PackageKit:
    """Build a signed and an unsigned package of `sample_hex`."""
    private_pem, public_pem = generate_signing_key()
    key = load_signing_key(private_pem)
    common: dict[str, Any] = {"brand": "Fuzz", "model": "Target", "version": "1.2.3"}
    signed = build_package(sample_hex(), "app.hex", signing_key=key, signer="fuzz-signer", **common)
    unsigned = build_package(sample_hex(), "app.hex", **common)
    return PackageKit(private_pem, public_pem, signed, unsigned)


def _zip(members: Sequence[tuple[str, bytes]], *, compress: bool = True) -> bytes:
    buf = io.BytesIO()
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=mode) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return buf.getvalue()


def _members(pkg: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(pkg)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def crafted_packages(kit: PackageKit) -> list[tuple[str, bytes]]:
    """Hand-made hostile packages: zip slip, bombs, manifest field faults, signature faults."""
    m = _members(kit.signed)
    manifest = json.loads(m[MANIFEST_NAME])
    image = m["app.hex"]
    out: list[tuple[str, bytes]] = []
    for evil in ("../evil.hex", "/abs/evil.hex", "..\\evil.hex", "a/../../evil.hex", "C:evil.hex"):
        bad = dict(manifest, image=evil)
        out.append(
            (f"zip slip {evil}", _zip([(MANIFEST_NAME, json.dumps(bad).encode()), (evil, image)]))
        )
    # 128 MiB of zeros deflate to ~130 KiB: the reader must stop while decompressing.
    man = json.dumps(manifest).encode()
    out.append(("compression bomb", _bomb_zip(man, 128 << 20)))
    out.append(("lying size header", _bomb_zip(man, 128 << 20, declared=1000)))
    out.append(
        ("huge manifest", _zip([(MANIFEST_NAME, b" " * (2 << 20) + b"{}"), ("app.hex", image)]))
    )
    for key in list(manifest):
        missing = {k: v for k, v in manifest.items() if k != key}
        out.append(
            (
                f"missing {key}",
                _zip([(MANIFEST_NAME, json.dumps(missing).encode()), ("app.hex", image)]),
            )
        )
        wrong = dict(manifest, **{key: [1, {"x": None}]})
        out.append(
            (
                f"wrong type {key}",
                _zip([(MANIFEST_NAME, json.dumps(wrong).encode()), ("app.hex", image)]),
            )
        )
    extra = dict(manifest, unexpected_field="x")
    out.append(
        ("extra field", _zip([(MANIFEST_NAME, json.dumps(extra).encode()), ("app.hex", image)]))
    )
    out.append(("extra member", _zip([*m.items(), ("readme.txt", b"hi")])))
    # Central-directory fields zipfile refuses with NotImplementedError / RuntimeError (a
    # fuzzing find): "version needed to extract" 14.8, and the encrypted flag.
    for label, offset, value in (("zip version 14.8", 6, 148), ("encrypted flag", 8, 1)):
        patched = bytearray(kit.signed)
        cd = patched.find(b"PK\x01\x02")
        while cd >= 0:
            patched[cd + offset : cd + offset + 2] = value.to_bytes(2, "little")
            cd = patched.find(b"PK\x01\x02", cd + 4)
        out.append((label, bytes(patched)))
    sig = json.loads(m[SIGNATURE_NAME])
    for name, bad_sig in (
        ("bad signature bytes", dict(sig, signature=base64.b64encode(b"\x00" * 64).decode())),
        ("wrong algorithm", dict(sig, algorithm="rsa")),
        ("signature not base64", dict(sig, signature="***")),
    ):
        members = dict(m)
        members[SIGNATURE_NAME] = json.dumps(bad_sig).encode()
        out.append((name, _zip(list(members.items()))))
    # Trust is by key, not by signer name (issue 14): a package signed by a key nobody trusted,
    # even under the trusted signer's name, is refused.
    other_key = load_signing_key(generate_signing_key()[0])
    out.append(
        (
            "untrusted key, trusted name",
            build_package(
                sample_hex(),
                "app.hex",
                signing_key=other_key,
                signer="fuzz-signer",
                brand="Fuzz",
                model="Target",
                version="1.2.3",
            ),
        )
    )
    tampered = dict(m)
    tampered["app.hex"] = image.replace(b":10", b":11", 1)
    out.append(("tampered image", _zip(list(tampered.items()))))
    man2 = dict(manifest, version="6.6.6")
    resigned = dict(m)
    resigned[MANIFEST_NAME] = json.dumps(man2).encode()
    out.append(("tampered manifest", _zip(list(resigned.items()))))
    out.append(("duplicate member", _dup_zip(m)))
    return out


def _bomb_zip(manifest: bytes, size: int, declared: int | None = None) -> bytes:
    """A zip whose image member is `size` zero bytes (deflated), optionally declaring another
    uncompressed size in its local and central headers (a lying header)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_NAME, manifest)
        with zf.open("app.hex", "w") as member:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                member.write(chunk)
    data = bytearray(buf.getvalue())
    if declared is not None:
        name = b"app.hex"
        for magic, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
            idx = data.find(magic)
            while idx >= 0 and data[idx + name_at : idx + name_at + len(name)] != name:
                idx = data.find(magic, idx + 4)
            struct.pack_into("<I", data, idx + size_at, declared)
    return bytes(data)


def _dup_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr("app.hex", b":00000001FF\n")
    return buf.getvalue()


def sample_ea_yaml() -> bytes:
    """The demo EA as YAML."""
    return dump_ea_yaml(demo_catalog.demo_architecture()).encode("utf-8")


def sample_logs(folder: Path) -> dict[str, bytes]:
    """A short valid log in every format the trace reader supports (mf4 skipped: slow)."""
    msgs = [
        can.Message(
            timestamp=1_700_000_000.0 + i * 0.001,
            arbitration_id=0x7E0 + (i % 3),
            data=bytes([i & 0xFF] * (i % 9)),
            is_extended_id=i % 5 == 0,
            channel=0,
        )
        for i in range(40)
    ]
    out = {}
    for suffix in (".asc", ".blf", ".trc", ".csv", ".log"):
        path = folder / f"seed{suffix}"
        with can.Logger(str(path)) as writer:
            for msg in msgs:
                writer.on_message_received(msg)
        out[suffix] = path.read_bytes()
        path.unlink()
    return out


# -- targets -------------------------------------------------------------------------------


@dataclass
class Target:
    """One fuzz target: seeds to mutate, crafted inputs and the function under test."""

    name: str
    seeds: list[bytes]
    feed: Callable[[bytes], object]
    crafted: list[tuple[str, bytes]] = field(default_factory=list)
    #: How a seed becomes an input (the generic byte mutator unless the target needs its own).
    mutator: Callable[[bytes, random.Random], bytes] = mutate


@dataclass
class TargetStats:
    """Counts of one target."""

    name: str
    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    crashes: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    max_seconds: float = 0.0


def make_targets(folder: Path) -> list[Target]:
    """Every target; trace/EDS inputs are written as files under `folder`."""
    kit = package_kit()
    logs = sample_logs(folder)
    eds = default_eds_path().read_bytes()

    def feed_package(data: bytes) -> object:
        for required in (True, False):
            try:
                read_package(
                    data, source="fuzz.zip", trusted_keys=kit.trusted, require_signature=required
                )
            except FotaError:
                if not required:
                    raise
        return None

    def feed_binary(data: bytes) -> object:
        base = int.from_bytes(data[:5].ljust(5, b"\0"), "big") if data else None
        return load_binary(data, base, source="fuzz.bin")

    def feed_file(suffix: str, fn: Callable[[Path], object]) -> Callable[[bytes], object]:
        def feed(data: bytes) -> object:
            path = folder / f"input{suffix}"
            path.write_bytes(data)
            try:
                return fn(path)
            finally:
                path.unlink()

        return feed

    def read_all(path: Path) -> object:
        return [batch for batch in read_log(path)]

    targets = [
        Target("intel_hex", [sample_hex()], lambda d: load_hex(d, source="fuzz.hex")),
        Target("s_record", [sample_srec()], lambda d: load_srec(d, source="fuzz.s19")),
        Target("binary", [bytes(range(256)) * 4], feed_binary),
        Target(
            "detect+load", [sample_hex(), sample_srec()], lambda d: load_image(d, source="fuzz")
        ),
        Target("package", [kit.signed, kit.unsigned], feed_package, crafted_packages(kit)),
        Target(
            "ea_yaml",
            [sample_ea_yaml()],
            lambda d: load_ea_yaml(d.decode("utf-8", "replace"), "fuzz.yaml"),
        ),
        Target("eds", [eds], feed_file(".eds", lambda p: FotaLayout.load(p))),
    ]
    for suffix, seed in logs.items():
        targets.append(Target(f"trace{suffix}", [seed], feed_file(suffix, read_all)))
    from reliability.fuzz_hostile import hostile_targets

    return targets + hostile_targets()


def record_targets(folder: Path) -> list[Target]:
    """The record verifier (a mutated workspace.db) and the bundle reader (a mutated bundle).

    Seeds come from reliability/tamper.py's workspace (a failed flash with BLF bus log); an
    input is accepted when it verifies, rejected when verification names a problem.
    """

    from fota_studio.core.errors import WorkspaceError
    from fota_studio.infra.record_bundle import export_bundle, verify_bundle
    from fota_studio.infra.record_verify import verify_workspace
    from fota_studio.infra.workspace import DB_NAME, Workspace
    from reliability import tamper

    seed_ws = folder / "records-seed"
    scenario = tamper.build_workspace(seed_ws)
    with Workspace.open(seed_ws) as ws:
        bundle = export_bundle(ws, scenario.failed_request, folder / "seed.bundle").read_bytes()
    db = (seed_ws / DB_NAME).read_bytes()
    blobs = seed_ws / "blobs"

    def feed_bundle(data: bytes) -> object:
        rep = verify_bundle(data)
        if rep.problems:
            raise WorkspaceError("; ".join(rep.problems)[:300])
        return rep

    def feed_db(data: bytes) -> object:
        root = folder / "records-input"
        root.mkdir()
        try:
            (root / DB_NAME).write_bytes(data)
            shutil.copytree(blobs, root / "blobs")
            with Workspace.open(root) as ws:
                rep = verify_workspace(ws)
            if rep.problems:
                raise WorkspaceError("; ".join(rep.problems)[:300])
            return rep
        finally:
            shutil.rmtree(root, ignore_errors=True)

    return [Target("record_db", [db], feed_db), Target("record_bundle", [bundle], feed_bundle)]


def feed_one(target: Target, data: bytes, stats: TargetStats, label: str = "") -> None:
    """Feed one input and count it (accepted / rejected with FotaError / crash / slow)."""
    stats.inputs += 1
    t0, c0 = time.monotonic(), time.thread_time()
    try:
        target.feed(data)
        stats.accepted += 1
    except FotaError as exc:
        if not str(exc).strip():
            stats.crashes.append(f"{label}: FotaError without a message ({type(exc).__name__})")
        stats.rejected += 1
    except Exception as exc:  # anything else is a crash of the reader
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        stats.crashes.append(
            f"{label or data[:40]!r}: {type(exc).__name__}: {str(exc)[:120]} "
            f"at {Path(tb.filename).name}:{tb.lineno}"
        )
    dt, cpu = time.monotonic() - t0, time.thread_time() - c0
    stats.max_seconds = max(stats.max_seconds, cpu)
    # Slow = the reader itself worked too long (CPU time of this thread), or the input kept
    # it waiting far longer than that: a loaded machine stretches wall time, not CPU time.
    if cpu > INPUT_TIME_LIMIT_S or dt > INPUT_WALL_LIMIT_S:
        stats.slow.append(f"{label}: {cpu:.1f} s CPU, {dt:.1f} s wall")


def run_target(target: Target, n: int, rng: random.Random) -> TargetStats:
    """Feed the seeds, the crafted inputs and `n` mutations to one target."""
    stats = TargetStats(target.name)
    for seed in target.seeds:
        feed_one(target, seed, stats, "seed")
    for label, data in target.crafted:
        feed_one(target, data, stats, label)
    for i in range(n):
        data = target.mutator(rng.choice(target.seeds), rng)
        feed_one(target, data, stats, f"mutation {i}")
    return stats


#: Mutations per target in the full campaign (`make reliability`), sized by each target's cost
#: measured on this machine (ms per input in brackets) so the fuzzing totals > 100,000 inputs
#: in about 7 minutes on one core: cheap text readers get many, PyYAML/jsonschema-bound EA
#: targets and the python-can text log readers fewer. `python -m reliability.fuzz --scale 0.05`
#: runs 5 % of it and prints the extrapolated full time.
FULL_INPUTS: dict[str, int] = {
    "intel_hex": 15_000,  # 0.14
    "s_record": 6_000,  # 2.9
    "binary": 15_000,  # 0.02
    "detect+load": 15_000,  # 0.2
    "package": 10_000,  # 0.25
    "ea_yaml": 2_000,  # 49
    "eds": 3_000,  # 4.2
    "trace.asc": 2_500,  # 9.8
    "trace.blf": 8_000,  # 0.3
    "trace.trc": 2_500,  # 7.5
    "trace.csv": 2_500,  # 9.5
    "trace.log": 2_500,  # 6.1
    "record_db": 3_000,  # 3.8
    "record_bundle": 10_000,  # 0.1
    "ea_depth": 1_200,  # 100
    "ea_numbers": 500,  # 180
    "version_text": 30_000,  # 0.02
}
#: Mutations of a target missing from FULL_INPUTS (a new one) in the full campaign.
DEFAULT_FULL_INPUTS = 2_000


def inputs_for(name: str, inputs_per_target: int | None, scale: float = 1.0) -> int:
    """Mutations for one target: `inputs_per_target` when given, else its FULL_INPUTS x scale."""
    if inputs_per_target is not None:
        return inputs_per_target
    return max(1, round(FULL_INPUTS.get(name, DEFAULT_FULL_INPUTS) * scale))


def run_campaign(
    inputs_per_target: int | None = None, seed: int = 1, *, scale: float = 1.0
) -> list[TargetStats]:
    """Fuzz every target; returns the stats per target. Checks nothing is written beside.

    `inputs_per_target` mutations each (a quick run), or None for the full campaign's
    per-target FULL_INPUTS, multiplied by `scale`.
    """
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="fota-fuzz-") as tmp:
        folder = Path(tmp)
        targets = make_targets(folder)
        results = [
            run_target(t, inputs_for(t.name, inputs_per_target, scale), rng) for t in targets
        ]
        from reliability.tamper import private_user_state

        with private_user_state(folder / "records-user"):
            records = record_targets(folder / "records-user")
            results += [
                run_target(t, inputs_for(t.name, inputs_per_target, scale), rng) for t in records
            ]
        shutil.rmtree(folder / "records-user", ignore_errors=True)
        leftovers = sorted(p.name for p in folder.iterdir())
        if leftovers:
            results[0].crashes.append(f"files left beside the inputs: {leftovers}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m reliability.fuzz [--scale S | --inputs N]`: run the file fuzzing, print each
    target's counts and time, and (with --scale) the extrapolated time of the full campaign."""
    import argparse
    import logging
    import sys

    parser = argparse.ArgumentParser(description="FOTA Studio file fuzzing")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of FULL_INPUTS")
    parser.add_argument("--inputs", type=int, help="mutations per target instead")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    t0 = time.monotonic()
    stats = run_campaign(args.inputs, scale=args.scale)
    seconds = time.monotonic() - t0
    for st in stats:
        sys.stdout.write(
            f"{st.name:<14} inputs {st.inputs:>6}  rejected {st.rejected:>6}  crashes "
            f"{len(st.crashes) + len(st.slow)}  slowest {st.max_seconds * 1000:.0f} ms\n"
        )
    total = sum(st.inputs for st in stats)
    crashes = sum(len(st.crashes) + len(st.slow) for st in stats)
    full = sum(inputs_for(st.name, None) for st in stats)
    line = f"fuzz: {total} inputs, {crashes} crashes, {seconds:.0f} s"
    if args.inputs is None and args.scale < 1.0:
        line += f"; full campaign: ~{full} inputs, ~{seconds / args.scale / 60:.1f} min"
    sys.stdout.write(line + "\n")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
