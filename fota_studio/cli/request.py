"""`fota-studio request`: create, list, show, start and cancel update requests headlessly.

`request create --machine M --ecu E --version V [--yes]` validates (blocks always refuse,
warnings need `--yes`), `request start ID` runs the workflow on the simulated machine
(`--simulate`, Checkpoint 1 answered by a scripted HMI over CANopen unless `--reject`) — real
adapters are driven from the GUI, where an operator can approve —, `request cancel ID` cancels a
request not yet approved. create/start/cancel/rerun change the workspace (and start/rerun the
machine): with an admin passphrase set they need it (`--passphrase-stdin` or a prompt), else exit
2 with "operator mode: ...". Runs on the main thread.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from typing import Any

from fota_studio.cli.busrun import (
    add_bus_options,
    bus_settings,
    final_line,
    open_runner,
    request_json,
)
from fota_studio.cli.common import (
    Command,
    add_group,
    arg,
    authorised_workspace,
    fail,
    open_workspace,
    print_table,
    succeed,
)
from fota_studio.cli.records import differing_rows, mark, print_differing_footer
from fota_studio.core.update_request import RequestStatus
from fota_studio.engine.bus_run import EXIT_CODES_TEXT, EXIT_REFUSED, exit_code_for
from fota_studio.engine.workflow import check_new_request, create_request
from fota_studio.infra.access import Action
from fota_studio.infra.requests_store import RequestsStore


def register(subparsers: Any) -> None:
    """Add the `request` command group."""
    request_id = arg("id", type=int)
    add_group(
        subparsers,
        "request",
        (
            Command(
                "create",
                _create,
                "create an update request (one version, ECU, machine)",
                args=(
                    arg("--machine", required=True),
                    arg("--ecu", required=True),
                    arg("--version", dest="fw_version", required=True),
                    arg("--yes", action="store_true", help="confirm the warnings"),
                ),
                changes_state=True,
            ),
            Command(
                "list",
                _list,
                "list requests",
                args=(
                    arg("--machine"),
                    arg("--ecu"),
                    arg("--status", choices=[s.value for s in RequestStatus]),
                ),
            ),
            Command("show", _show, "show one request", args=(request_id,)),
            Command(
                "start",
                _start,
                "run a Pending request (on a real bus with --interface, else on the simulator)",
                "Run a Pending update request. With --interface the request runs on that "
                "bus: the TCU node offers it through 0x5FF3, the machine HMI (and/or this terminal "
                "with --approval local|both) approves, the engine flashes, Checkpoint 2 comes from "
                "the built-in health checks and/or an OEM node. Without --interface it runs on a "
                "private simulated machine with a scripted HMI. Progress goes to stderr. Exit "
                "codes: " + EXIT_CODES_TEXT + ".",
                args=(
                    request_id,
                    arg(
                        "--reject",
                        action="store_true",
                        help="the scripted HMI rejects (simulated)",
                    ),
                    functools.partial(add_bus_options, required=False),
                    arg("--json", action="store_true", help="print the record as JSON on stdout"),
                    arg(
                        "--linger",
                        type=float,
                        default=2.0,
                        metavar="S",
                        help="with --interface: keep serving 0x5FF3 S seconds after the end, so "
                        "the machine HMI can read the final status, last_error and "
                        "installed_version (default 2)",
                    ),
                ),
                changes_state=True,
            ),
            Command(
                "cancel",
                _cancel,
                "cancel a request (only before operator approval)",
                args=(request_id,),
                changes_state=True,
            ),
            Command(
                "rerun",
                _rerun,
                "start a new attempt of a Failed/Cancelled request",
                args=(request_id,),
                changes_state=True,
            ),
        ),
        help="update requests: create, list, start, cancel",
        dest="request_cmd",
    )


def _create(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.REQUEST_CREATE) as ws:
        chk = check_new_request(ws, args.machine, args.ecu, args.fw_version)
        for issue in chk.issues:
            print(str(issue))
        if chk.blocked:
            return fail("request refused")
        if chk.warnings and not args.yes:
            return fail("confirm the warnings with --yes")
        req = create_request(ws, args.machine, args.ecu, args.fw_version, confirm=True)
    return succeed(f"created request #{req.id}: {req.label} ({req.status.value})")


def _list(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        store = RequestsStore(ws)
        store.recover_interrupted()
        reqs = store.list(machine=args.machine, ecu=args.ecu, status=args.status)
        differing = differing_rows(ws)
    print_table(
        ["!", "ID", "Machine", "ECU", "Version", "Status", "Step", "Attempt", "Error"],
        [
            [
                mark(r.id, differing),
                str(r.id),
                r.machine,
                r.ecu,
                r.version,
                r.status.value,
                r.step,
                str(r.attempt),
                r.error[:60],
            ]
            for r in reqs
        ],
    )
    if differing is not None:
        differing &= {r.id for r in reqs}  # the footer counts the rows shown (filters)
    print_differing_footer(differing)
    return 0


def _show(args: argparse.Namespace) -> int:
    from fota_studio.cli.records import _show as show_record

    return show_record(args)


def _start_on_bus(args: argparse.Namespace) -> int:
    """`request start ID --interface I …`: the request on a real bus (see engine/bus_run)."""
    with authorised_workspace(args, Action.REQUEST_START) as ws:
        store = RequestsStore(ws)
        store.recover_interrupted()
        req = store.get(args.id)
        if req.status is not RequestStatus.PENDING:
            again = "" if req.status is RequestStatus.SUCCESSFUL else "; `request rerun` first"
            status = req.status.value
            return fail(f"request #{req.id} is {status}, not Pending{again}", EXIT_REFUSED)
        settings = bus_settings(args, ws, req.machine, req.ecu)
        print(
            f"request #{req.id}: {req.label} on {settings.describe()}, approval {args.approval}, "
            f"verification {args.verification}",
            file=sys.stderr,
        )
        with open_runner(ws, req.machine, settings, args) as runner:
            final = runner.run(req.id)
            print(
                f"request #{final.id}: {final.status.value}; TCU serving the final state for "
                f"{args.linger:g} s",
                file=sys.stderr,
            )
            if args.linger > 0:
                threading.Event().wait(args.linger)
        if args.json:
            print(request_json(ws, final))
    print(final_line(final), file=sys.stderr if args.json else sys.stdout)
    return exit_code_for(final)


def _start(args: argparse.Namespace) -> int:
    if args.interface:
        return _start_on_bus(args)
    from fota_studio.demo.run import DemoScript, run_on_bench

    with authorised_workspace(args, Action.REQUEST_START) as ws:
        store = RequestsStore(ws)
        store.recover_interrupted()
        # Without --interface: the simulated machine, a scripted HMI answers Checkpoint 1, the
        # built-in health checks are Checkpoint 2 (no OEM node).
        script = DemoScript(approve=not args.reject, healthy=None)
        final = run_on_bench(ws, args.id, script=script).request
    print(final_line(final))
    return 0 if final.status == RequestStatus.SUCCESSFUL else 1


def _cancel(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.REQUEST_CANCEL) as ws:
        req = RequestsStore(ws).cancel(args.id, reason="cancelled from the command line")
    return succeed(f"request #{req.id}: {req.status.value}")


def _rerun(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.REQUEST_RERUN) as ws:
        req = RequestsStore(ws).rerun(args.id)
    return succeed(f"request #{req.id}: attempt {req.attempt}, {req.status.value}")
