"""`fota-studio trace`: inspect and convert CAN log files headless (scripts and CI).

`trace info FILE` prints frames, channels, duration, frames per ID and the FD / remote / error /
Tx counts; `trace convert IN OUT [--format F] [--allow-loss]` rewrites a log in another format
through the same readers and writers as the Trace panel. A conversion into a format that cannot
hold every frame (see `infra.tracefile.CAPABILITIES`) writes nothing and exits 3 naming what
would be lost, unless `--allow-loss`, which prints "wrote N of M frames (left out: …)"; N is
always the number of frames in the file. Runs on the main thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can
import numpy as np

from fota_studio.cli.common import Command, add_group, arg, succeed
from fota_studio.infra.tracefile import (
    CAPABILITIES,
    FORMATS,
    LossyFormatError,
    TraceFileError,
    read_log,
    write_log,
)
from fota_studio.protocols.decode.frames import (
    FLAG_ERROR,
    FLAG_EXTENDED,
    FLAG_FD,
    FLAG_REMOTE,
    FLAG_TX,
    batch_messages,
)

EXIT_LOSS = 3
"""`trace convert`: the output format cannot hold every frame and --allow-loss was not given."""


def register(subparsers: Any) -> None:
    """Add the `trace` command group."""
    add_group(
        subparsers,
        "trace",
        (
            Command(
                "info",
                _info,
                "frames, channels, duration, frames per ID of a log",
                args=(
                    arg("file", type=Path),
                    arg("--json", action="store_true", help="one JSON object on stdout"),
                    arg("--ids", type=int, default=20, help="IDs listed (most frequent first)"),
                ),
            ),
            Command(
                "convert",
                _convert,
                "rewrite a log in another format",
                "Rewrite a CAN log in another format. Exit codes: 0 written (every frame, or "
                "with --allow-loss what the format holds), 1 unreadable input or unwritable "
                f"output, {EXIT_LOSS} the format cannot hold every frame (nothing written).",
                args=(
                    arg("input", type=Path),
                    arg("output", type=Path),
                    arg(
                        "--format",
                        choices=[s.lstrip(".") for s in FORMATS],
                        help="output format (default: from the output file's suffix)",
                    ),
                    arg(
                        "--allow-loss",
                        action="store_true",
                        help="write what the format can hold and say what was left out",
                    ),
                ),
            ),
        ),
        help="CAN log files: info, convert",
        description="Inspect and convert CAN log files (" + ", ".join(FORMATS) + ").",
        dest="trace_cmd",
    )


def _messages(path: Path, names: list[str]) -> Iterator[can.Message]:
    for batch in read_log(path, channel_names=names):
        yield from batch_messages(batch, names)


def _info(args: argparse.Namespace) -> int:
    path: Path = args.file
    names: list[str] = []
    frames = 0
    first: float | None = None
    last: float | None = None
    counts: Counter[str] = Counter()
    per_id: Counter[tuple[int, bool]] = Counter()
    per_channel: Counter[int] = Counter()
    for batch in read_log(path, channel_names=names):
        n = len(batch)
        if not n:
            continue
        frames += n
        ts = batch.timestamp
        lo, hi = float(ts.min()), float(ts.max())
        first = lo if first is None else min(first, lo)
        last = hi if last is None else max(last, hi)
        flags = batch.flags
        counts["fd"] += int(((flags & FLAG_FD) != 0).sum())
        counts["remote"] += int(((flags & FLAG_REMOTE) != 0).sum())
        counts["error"] += int(((flags & FLAG_ERROR) != 0).sum())
        counts["tx"] += int(((flags & FLAG_TX) != 0).sum())
        ext = (flags & FLAG_EXTENDED) != 0
        keys, key_counts = np.unique(
            batch.ids.astype(np.uint64) | (ext.astype(np.uint64) << np.uint64(32)),
            return_counts=True,
        )
        for key, c in zip(keys.tolist(), key_counts.tolist(), strict=True):
            per_id[(key & 0xFFFFFFFF, bool(key >> 32))] += c
        chans, chan_counts = np.unique(batch.channel, return_counts=True)
        for ch, c in zip(chans.tolist(), chan_counts.tolist(), strict=True):
            per_channel[ch] += c
    duration = (last - first) if first is not None and last is not None else 0.0
    ids = [
        {"id": f"0x{i:08X}" if ext else f"0x{i:03X}", "extended": ext, "frames": c}
        for (i, ext), c in per_id.most_common()
    ]
    channels = {
        (names[ch] if ch < len(names) else str(ch)): c for ch, c in sorted(per_channel.items())
    }
    info: dict[str, Any] = {
        "file": str(path),
        "format": FORMATS[path.suffix.lower()],
        "frames": frames,
        "channels": channels,
        "first_timestamp": first,
        "duration_s": round(duration, 6),
        "fd_frames": counts["fd"],
        "remote_frames": counts["remote"],
        "error_frames": counts["error"],
        "tx_frames": counts["tx"],
        "distinct_ids": len(per_id),
        "frames_per_id": ids,
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"file:      {path}  ({info['format']})")
    print(f"frames:    {frames:,}")
    chan_text = ", ".join(f"{k} {v:,}" for k, v in channels.items()) or "none"
    print(f"channels:  {chan_text}")
    print(f"duration:  {duration:.3f} s")
    print(
        f"kinds:     {counts['fd']:,} FD, {counts['remote']:,} remote, {counts['error']:,} "
        f"error, {counts['tx']:,} Tx"
    )
    print(f"IDs:       {len(per_id):,} distinct")
    for row in ids[: max(0, args.ids)]:
        print(f"  {row['id']:>12}  {row['frames']:>10,}")
    if len(ids) > args.ids > 0:
        print(f"  … {len(ids) - args.ids:,} more (--ids N or --json for all)")
    return 0


def _convert(args: argparse.Namespace) -> int:
    src: Path = args.input
    dst: Path = args.output
    suffix = f".{args.format}" if args.format else dst.suffix.lower()
    if suffix not in CAPABILITIES:
        print(
            f"error: {dst}: unknown output format '{suffix or '(none)'}'; give --format "
            + "|".join(s.lstrip(".") for s in FORMATS),
            file=sys.stderr,
        )
        return 1
    if not src.exists():
        print(f"error: {src}: no such file", file=sys.stderr)
        return 1
    # The writer picks the format by suffix: write under the right suffix, then rename.
    target = dst if dst.suffix.lower() == suffix else dst.with_name(f".{dst.name}.conv{suffix}")
    names: list[str] = []
    try:
        report = write_log(target, _messages(src, names), allow_loss=args.allow_loss)
    except LossyFormatError as exc:
        print(
            f"error: {FORMATS[suffix]} cannot hold every frame of {src.name}: "
            f"{exc.report.loss_text()}; nothing was written (choose BLF, ASC or MF4, or "
            "--allow-loss)",
            file=sys.stderr,
        )
        return EXIT_LOSS
    except TraceFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if target != dst:
        os.replace(target, dst)
    return succeed(f"{report.summary()} to {dst}")
