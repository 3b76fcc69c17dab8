"""Benchmark: loading a big multi-segment firmware file, ours against intelhex and bincopy.

Generates (in a temp dir) an image of --size-mib MiB random data in 4 segments with gaps, writes
it as Intel HEX and as S-record (S3) with --record-bytes data bytes per record (default 16, like
the reference numbers in the library notes), then measures in ONE run, each measurement in its
own child process so peaks never mix:

- time: best of a few runs (one run for loaders slower than 2 s), without tracemalloc;
- peak RSS delta of the first of those runs: the kernel's peak-RSS mark (VmHWM) is reset
  through /proc/self/clear_refs once the input is in memory, so reading the file does not count;
- peak memory: tracemalloc peak of one run in a fresh child, started after the input is in
  memory (so the input bytes are not counted; intelhex reads its file itself). Skipped for
  intelhex: under tracemalloc it takes a minute, so its RSS delta stands in.

Every loader must end with one `bytes` per segment. Prints a table and, as the LAST line, one JSON
object with the ratios CI checks (targets: hex_speedup_vs_intelhex >= 8, hex_time_vs_minimal
<= 1.5, peak_mem_over_image <= 4). Run: `python bench/firmware_load.py [--size-mib N]`.
Single-threaded script; not imported by the application.
"""

from __future__ import annotations

import argparse
import binascii
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fota_studio.core import firmware  # noqa: E402

SLOW_LOADER_S = 2.0
NO_TRACEMALLOC = {"intelhex-hex"}
REPEATS = 3

# (label, loader, file suffix)
CASES = {
    "ours-hex": ("ours (HEX)", "hex"),
    "minimal-hex": ("minimal loop (HEX)", "hex"),
    "intelhex-hex": ("intelhex (HEX)", "hex"),
    "bincopy-hex": ("bincopy (HEX)", "hex"),
    "ours-srec": ("ours (S-record)", "s19"),
    "bincopy-srec": ("bincopy (S-record)", "s19"),
}


def make_image(size_mib: int, seed: int = 2026) -> firmware.FirmwareImage:
    """Random data in 4 segments (40/30/20/10 %) with gaps, one crossing into a new 16 MiB."""
    total = size_mib << 20
    rng = np.random.default_rng(seed)
    sizes = [total * 4 // 10, total * 3 // 10, total * 2 // 10]
    sizes.append(total - sum(sizes))
    addresses = [0x0800_0000]
    for size in sizes[:-1]:
        addresses.append(addresses[-1] + size + 0x1_2340)
    addresses[-1] = 0x2000_0000
    parts = [
        (a, rng.integers(0, 256, s, dtype=np.uint8).tobytes())
        for a, s in zip(addresses, sizes, strict=True)
    ]
    return firmware.FirmwareImage.from_segments(parts, start_address=0x0800_0101)


# ---------------------------------------------------------------------------- loaders (child)


def load_ours_hex(data: bytes, path: Path) -> list[bytes]:
    return [s.data for s in firmware.load_hex(data, source=path.name).segments]


def load_ours_srec(data: bytes, path: Path) -> list[bytes]:
    return [s.data for s in firmware.load_srec(data, source=path.name).segments]


def load_minimal_hex(data: bytes, path: Path) -> list[bytes]:
    """The smallest useful reader: split lines, unhexlify data records, no validation."""
    segments: list[bytes] = []
    parts: list[bytes] = []
    base = 0
    expected = -1
    for line in data.splitlines():
        kind = line[7:9]
        if kind == b"00":
            address = base + int(line[3:7], 16)
            chunk = binascii.a2b_hex(line[9:-2])
            if address != expected and parts:
                segments.append(b"".join(parts))
                parts = []
            parts.append(chunk)
            expected = address + len(chunk)
        elif kind == b"04":
            base = int(line[9:13], 16) << 16
    if parts:
        segments.append(b"".join(parts))
    return segments


def load_intelhex(data: bytes, path: Path) -> list[bytes]:
    import intelhex

    ih = intelhex.IntelHex(str(path))
    return [ih.tobinstr(start=a, end=b - 1) for a, b in ih.segments()]


def _bincopy(add: str) -> Callable[[bytes, Path], list[bytes]]:
    def load(data: bytes, path: Path) -> list[bytes]:
        import bincopy

        bf = bincopy.BinFile()
        getattr(bf, add)(data.decode("ascii"))
        return [bytes(s.data) for s in bf.segments]

    return load


LOADERS: dict[str, Callable[[bytes, Path], list[bytes]]] = {
    "ours-hex": load_ours_hex,
    "ours-srec": load_ours_srec,
    "minimal-hex": load_minimal_hex,
    "intelhex-hex": load_intelhex,
    "bincopy-hex": _bincopy("add_ihex"),
    "bincopy-srec": _bincopy("add_srec"),
}


def child(case: str, path: Path, measure: str) -> None:
    """Run one loader on one file; print {"time_s": ...} or {"peak_bytes": ...}."""
    loader = LOADERS[case]
    data = path.read_bytes()
    if case.startswith("bincopy"):
        import bincopy  # noqa: F401  (import cost is not load cost)
    if case.startswith("intelhex"):
        import intelhex  # noqa: F401
    if measure == "mem":
        tracemalloc.start()
        result = loader(data, path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(json.dumps({"peak_bytes": peak, "bytes": sum(len(r) for r in result)}))
        return
    best = float("inf")
    rss_before = _reset_peak_rss()
    rss_delta = 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        result = loader(data, path)
        best = min(best, time.perf_counter() - t0)
        if not rss_delta:
            rss_delta = _proc_status_bytes("VmHWM:") - rss_before
        del result
        if best > SLOW_LOADER_S:
            break
    print(json.dumps({"time_s": best, "rss_delta_bytes": max(rss_delta, 0)}))


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset the peak-RSS mark (Linux: write 5 to clear_refs); return the current RSS."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _proc_status_bytes("VmRSS:")


def run_child(case: str, path: Path, measure: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, str(path), measure],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------- parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=10)
    parser.add_argument("--record-bytes", type=int, default=16)
    parser.add_argument("--child", nargs=3, metavar=("CASE", "PATH", "MEASURE"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return

    image = make_image(args.size_mib)
    image_bytes = image.total_size
    with tempfile.TemporaryDirectory(prefix="fota-bench-") as tmp:
        files = {
            "hex": Path(tmp) / "app.hex",
            "s19": Path(tmp) / "app.s19",
        }
        files["hex"].write_bytes(firmware.to_hex(image, record_bytes=args.record_bytes))
        files["s19"].write_bytes(firmware.to_srec(image, record_bytes=args.record_bytes))
        del image
        print(
            f"image: {image_bytes / 2**20:.1f} MiB in 4 segments, {args.record_bytes}-byte "
            f"records; HEX {files['hex'].stat().st_size / 2**20:.1f} MiB, S-record "
            f"{files['s19'].stat().st_size / 2**20:.1f} MiB"
        )
        results: dict[str, dict[str, float]] = {}
        for case, (_label, suffix) in CASES.items():
            timing = run_child(case, files[suffix], "time")
            results[case] = {
                "time_s": timing["time_s"],
                "rss_delta_bytes": timing["rss_delta_bytes"],
                "peak_bytes": float("nan"),
            }
            if case in NO_TRACEMALLOC:
                continue
            memory = run_child(case, files[suffix], "mem")
            if int(memory["bytes"]) != image_bytes:
                raise SystemExit(f"{case} produced {memory['bytes']} bytes, not {image_bytes}")
            results[case]["peak_bytes"] = memory["peak_bytes"]

    ours = {"hex": results["ours-hex"], "s19": results["ours-srec"]}
    print(
        f"\n{'loader':22} {'time s':>8} {'time/ours':>10} {'tracemalloc':>12} {'x image':>8} "
        f"{'RSS delta':>10} {'x image':>8}"
    )
    for case, (label, suffix) in CASES.items():
        r = results[case]
        print(
            f"{label:22} {r['time_s']:8.3f} {r['time_s'] / ours[suffix]['time_s']:9.2f}x "
            f"{r['peak_bytes'] / 2**20:8.1f} MiB {r['peak_bytes'] / image_bytes:8.2f} "
            f"{r['rss_delta_bytes'] / 2**20:6.1f} MiB {r['rss_delta_bytes'] / image_bytes:8.2f}"
        )
    summary = {
        "size_mib": args.size_mib,
        "record_bytes": args.record_bytes,
        "hex_speedup_vs_intelhex": round(
            results["intelhex-hex"]["time_s"] / results["ours-hex"]["time_s"], 2
        ),
        "hex_time_vs_minimal": round(
            results["ours-hex"]["time_s"] / results["minimal-hex"]["time_s"], 3
        ),
        "hex_speedup_vs_bincopy": round(
            results["bincopy-hex"]["time_s"] / results["ours-hex"]["time_s"], 2
        ),
        "s19_speedup_vs_bincopy": round(
            results["bincopy-srec"]["time_s"] / results["ours-srec"]["time_s"], 2
        ),
        "peak_mem_over_image": round(
            max(results["ours-hex"]["peak_bytes"], results["ours-srec"]["peak_bytes"])
            / image_bytes,
            3,
        ),
        "peak_rss_over_image": round(
            max(results["ours-hex"]["rss_delta_bytes"], results["ours-srec"]["rss_delta_bytes"])
            / image_bytes,
            3,
        ),
        "times_s": {k: round(v["time_s"], 4) for k, v in results.items()},
        "tracemalloc_peak_mib": {
            k: round(v["peak_bytes"] / 2**20, 1)
            for k, v in results.items()
            if k not in NO_TRACEMALLOC
        },
        "rss_delta_mib": {k: round(v["rss_delta_bytes"] / 2**20, 1) for k, v in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
