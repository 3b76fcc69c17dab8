"""`fota-studio tcu`: the TCU bench headless, for an HMI team's rig or a CI job.

`tcu --machine M --interface I --channel C` serves object 0x5FF3 and heartbeats on that bus
(state persistent in the workspace) and runs the machine's update requests as they become
Pending (`fota-studio request create …` from another terminal), oldest first: offer through
0x5FF3, approval from the machine HMI (and/or this terminal), flash, Checkpoint 2, final status.
It runs until Ctrl+C (or `--once`: the Pending requests present at start, then exit with the
last request's exit code). Runs on the main thread.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from typing import Any

from fota_studio.cli.busrun import add_bus_options, bus_settings, final_line, open_runner
from fota_studio.cli.common import Command, add_command, arg, authorised_workspace
from fota_studio.engine.bus_run import EXIT_CODES_TEXT, EXIT_SUCCESSFUL, exit_code_for
from fota_studio.infra.access import Action

#: How often the workspace is looked at for new Pending requests.
POLL_PERIOD_S = 1.0


def register(subparsers: Any) -> None:
    """Add the `tcu` command."""
    add_command(
        subparsers,
        Command(
            "tcu",
            _run,
            "run the TCU node on a bus and the machine's update requests (headless bench)",
            "Serve the FOTA object 0x5FF3 and heartbeats on a real bus and run the "
            "machine's Pending update requests, oldest first, until Ctrl+C. Exit codes with "
            "--once: " + EXIT_CODES_TEXT + ".",
            args=(
                arg("--machine", required=True, metavar="SERIAL"),
                functools.partial(add_bus_options, required=True),
                arg(
                    "--once",
                    action="store_true",
                    help="run the Pending requests present now, then exit",
                ),
            ),
            changes_state=True,
        ),
    )


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    code = EXIT_SUCCESSFUL
    with authorised_workspace(args, Action.REQUEST_START) as ws:
        settings = bus_settings(args, ws, args.machine, "")
        with open_runner(ws, args.machine, settings, args) as runner:
            assert runner.tcu is not None
            print(
                f"TCU node 0x{runner.tcu.node_id:02X} on {settings.describe()} for "
                f'"{args.machine}"; waiting for Pending requests (Ctrl+C stops)',
                file=sys.stderr,
            )
            done: set[int] = set()
            try:
                while not stop.is_set():
                    pending = [r for r in runner.pending_requests() if r.id not in done]
                    if not pending and args.once:
                        break
                    for req in pending:
                        final = runner.run(req.id)
                        done.add(req.id)
                        code = exit_code_for(final)
                        print(final_line(final))
                    if args.once:
                        break
                    stop.wait(POLL_PERIOD_S)
            except KeyboardInterrupt:
                print("stopped", file=sys.stderr)
    return code
