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
import sys
import threading
from typing import Any

from fota_studio.cli.busrun import (
    ProgressPrinter,
    add_bus_options,
    bus_settings,
    request_json,
    run_options,
    terminal_approver,
)
from fota_studio.cli.common import (
    add_passphrase_option,
    authorise,
    fail,
    guarded,
    open_workspace,
    print_table,
)
from fota_studio.cli.records import differing_rows, mark, print_differing_footer
from fota_studio.core.update_request import RequestStatus
from fota_studio.engine.bus_run import EXIT_CODES_TEXT, EXIT_REFUSED
from fota_studio.engine.workflow import check_new_request, create_request
from fota_studio.infra.access import Action
from fota_studio.infra.requests_store import RequestsStore


def register(subparsers: Any) -> None:
    """Add the `request` command group."""
    p = subparsers.add_parser("request", help="update requests: create, list, start, cancel")
    sub = p.add_subparsers(dest="request_cmd", metavar="<action>", required=True)
    c = sub.add_parser("create", help="create an update request (one version, ECU, machine)")
    c.add_argument("--machine", required=True)
    c.add_argument("--ecu", required=True)
    c.add_argument("--version", dest="fw_version", required=True)
    c.add_argument("--yes", action="store_true", help="confirm the warnings")
    add_passphrase_option(c)
    c.set_defaults(func=guarded(_create))
    ls = sub.add_parser("list", help="list requests")
    ls.add_argument("--machine")
    ls.add_argument("--ecu")
    ls.add_argument("--status", choices=[s.value for s in RequestStatus])
    ls.set_defaults(func=_list)
    sh = sub.add_parser("show", help="show one request")
    sh.add_argument("id", type=int)
    sh.set_defaults(func=_show)
    st = sub.add_parser(
        "start",
        help="run a Pending request (on a real bus with --interface, else on the simulator)",
        description="Run a Pending update request. With --interface the request runs on that "
        "bus: the TCU node offers it through 0x5FF3, the machine HMI (and/or this terminal "
        "with --approval local|both) approves, the engine flashes, Checkpoint 2 comes from the "
        "built-in health checks and/or an OEM node. Without --interface it runs on a private "
        "simulated machine with a scripted HMI. Progress goes to stderr. Exit codes: "
        + EXIT_CODES_TEXT
        + ".",
    )
    st.add_argument("id", type=int)
    st.add_argument("--reject", action="store_true", help="the scripted HMI rejects (simulated)")
    add_bus_options(st, required=False)
    st.add_argument("--json", action="store_true", help="print the record as JSON on stdout")
    st.add_argument(
        "--linger",
        type=float,
        default=2.0,
        metavar="S",
        help="with --interface: keep serving 0x5FF3 S seconds after the end, so the machine "
        "HMI can read the final status, last_error and installed_version (default 2)",
    )
    add_passphrase_option(st)
    st.set_defaults(func=guarded(_start))
    ca = sub.add_parser("cancel", help="cancel a request (only before operator approval)")
    ca.add_argument("id", type=int)
    add_passphrase_option(ca)
    ca.set_defaults(func=guarded(_cancel))
    rr = sub.add_parser("rerun", help="start a new attempt of a Failed/Cancelled request")
    rr.add_argument("id", type=int)
    add_passphrase_option(rr)
    rr.set_defaults(func=guarded(_rerun))


def _create(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        authorise(args, ws, Action.REQUEST_CREATE)
        chk = check_new_request(ws, args.machine, args.ecu, args.fw_version)
        for issue in chk.issues:
            print(str(issue))
        if chk.blocked:
            return fail("request refused")
        if chk.warnings and not args.yes:
            return fail("confirm the warnings with --yes")
        req = create_request(ws, args.machine, args.ecu, args.fw_version, confirm=True)
    print(f"created request #{req.id}: {req.label} ({req.status.value})")
    return 0


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
    from fota_studio.engine.bus_run import BusRunner, exit_code_for

    with open_workspace(args) as ws:
        authorise(args, ws, Action.REQUEST_START)
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
        with BusRunner(
            ws,
            req.machine,
            settings,
            options=run_options(args),
            sink=ProgressPrinter(),
            local_approver=terminal_approver,
        ) as runner:
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
    print(
        f"request #{final.id}: {final.status.value}" + (f": {final.error}" if final.error else ""),
        file=sys.stderr if args.json else sys.stdout,
    )
    return exit_code_for(final)


def _start(args: argparse.Namespace) -> int:
    if args.interface:
        return _start_on_bus(args)
    from fota_studio.demo.run import DemoScript, run_on_bench

    with open_workspace(args) as ws:
        authorise(args, ws, Action.REQUEST_START)
        store = RequestsStore(ws)
        store.recover_interrupted()
        # Without --interface: the simulated machine, a scripted HMI answers Checkpoint 1, the
        # built-in health checks are Checkpoint 2 (no OEM node).
        script = DemoScript(approve=not args.reject, healthy=None)
        final = run_on_bench(ws, args.id, script=script).request
    print(
        f"request #{final.id}: {final.status.value}" + (f": {final.error}" if final.error else "")
    )
    return 0 if final.status == RequestStatus.SUCCESSFUL else 1


def _cancel(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        authorise(args, ws, Action.REQUEST_CANCEL)
        req = RequestsStore(ws).cancel(args.id, reason="cancelled from the command line")
    print(f"request #{req.id}: {req.status.value}")
    return 0


def _rerun(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        authorise(args, ws, Action.REQUEST_RERUN)
        req = RequestsStore(ws).rerun(args.id)
    print(f"request #{req.id}: attempt {req.attempt}, {req.status.value}")
    return 0
