"""`fota-studio selftest` (alias `--self-test`): prove an installed or frozen FOTA Studio works.

Runs, in a throw-away workspace, the checks a broken installation would fail: the version is
known without pyproject.toml, the bundled resources (EDS, EA schema, icons) are present, every
python-can backend we ship imports, our `fota_sim` interface opens (its entry point does not
survive freezing on its own), and a whole demo update on the simulated machine
(`run_headless_demo`: request, Checkpoint 1 over CANopen, flash of the VCU, Checkpoint 2) ends
Successful. Prints one verdict line, `SELF-TEST PASS: ...` or
`SELF-TEST FAIL: ...`; exit code 0 only on pass. No network access. Runs on the main thread.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fota_studio import __version__
from fota_studio.cli.common import Command, add_command, arg

EXIT_PASS = 0
EXIT_FAIL = 1

#: python-can backends the bundle must contain (imported by name at run time).
SHIPPED_BACKENDS = ("virtual", "socketcan", "pcan", "kvaser", "slcan", "udp_multicast")
#: Files under resources/ the app cannot run without.
REQUIRED_RESOURCES = (
    "fota_tcu.eds",
    "ea.schema.json",
    "icons/app.svg",
    "examples/excavator-x200.ea.yaml",
)


class SelfTestError(Exception):
    """One self-test step failed; the message says which and why."""


def register(subparsers: Any) -> None:
    """Add the `selftest` command."""
    add_command(
        subparsers,
        Command(
            "selftest",
            run,
            "check this installation: resources, CAN backends and a demo update (offline)",
            "Run a headless demo update on the simulated machine in a temporary "
            "workspace and print SELF-TEST PASS/FAIL.",
            args=(
                arg("-v", "--verbose", action="store_true", help="print every step"),
                arg("--keep", action="store_true", help="keep the temporary workspace"),
            ),
        ),
    )


def _check_version() -> str:
    if not __version__ or __version__.startswith("0+unknown"):
        raise SelfTestError("the application does not know its version (metadata missing)")
    return __version__


def _check_resources() -> Path:
    from fota_studio.core.resources import manual_path, resources_dir

    root = resources_dir()
    missing = [name for name in REQUIRED_RESOURCES if not (root / name).is_file()]
    if not manual_path().is_file():
        missing.append(str(manual_path()))
    if missing:
        raise SelfTestError(f"resources missing in {root}: {', '.join(missing)}")
    return root


def _check_backends() -> None:
    import logging

    import can

    # Vendor backends log "library unavailable" when imported without their driver: expected
    # here (the doctor reports drivers), so the self-test output stays its verdict.
    logging.disable(logging.WARNING)
    try:
        for name in SHIPPED_BACKENDS:
            module, _cls = can.interfaces.BACKENDS[name]
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise SelfTestError(f"python-can backend '{name}' ({module}): {exc}") from exc
    finally:
        logging.disable(logging.NOTSET)
    if "fota_sim" not in can.interfaces.VALID_INTERFACES:
        raise SelfTestError("python-can does not know the 'fota_sim' interface")
    bus = can.Bus(
        interface="fota_sim", channel=f"selftest-{uuid.uuid4().hex[:8]}", ignore_config=True
    )
    bus.shutdown()


def _run_update(ws_dir: Path, out: Callable[[str], Any]) -> str:
    """The demo update (`demo.run.run_demo` through the headless demo command); returns a
    short description of what was updated."""
    from fota_studio.cli.demo import run_headless_demo
    from fota_studio.infra.workspace import Workspace

    lines: list[str] = []

    def collect(text: str) -> None:
        lines.append(text)
        out(text)

    ws = Workspace.open(ws_dir)
    try:
        code = run_headless_demo(ws, out=collect)
    finally:
        ws.close()
    if code != 0:
        last = lines[-1] if lines else "no output"
        raise SelfTestError(f"demo update failed: {last}")
    return "demo update Successful (Checkpoint 1, flash, Checkpoint 2)"


def self_test(verbose: bool = False, keep: bool = False) -> tuple[bool, str]:
    """Run every step; returns (passed, verdict text without the PASS/FAIL prefix)."""
    started = time.monotonic()
    frozen = "frozen" if getattr(sys, "frozen", False) else "source"

    def out(text: str) -> None:
        if verbose:
            print(text, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="fota-selftest-"))
    try:
        version = _check_version()
        out(f"version {version} ({frozen})")
        res = _check_resources()
        out(f"resources in {res}")
        _check_backends()
        out("python-can backends and fota_sim ok")
        what = _run_update(tmp / "workspace", out)
    except SelfTestError as exc:
        return False, f"{exc} (fota-studio {__version__}, {frozen})"
    except Exception as exc:  # the verdict must name any failure, not a traceback
        return False, f"{type(exc).__name__}: {exc} (fota-studio {__version__}, {frozen})"
    finally:
        if keep:
            print(f"workspace kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    took = time.monotonic() - started
    return True, f"fota-studio {version} ({frozen}): {what} in {took:.1f} s"


def run(args: argparse.Namespace) -> int:
    """Run the `selftest` command; prints the one-line verdict."""
    passed, text = self_test(verbose=args.verbose, keep=args.keep)
    print(f"SELF-TEST {'PASS' if passed else 'FAIL'}: {text}", flush=True)
    return EXIT_PASS if passed else EXIT_FAIL
