"""Child processes the tests drive: a CLI flash followed on its progress bar and SIGKILLed at a
chosen percentage (tests and the reliability campaign share it), and interpreters started to
race each other at one moment. POSIX."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The percentage in the CLI's progress bar ("42.5 %").
PERCENT = re.compile(rb"(\d+\.\d) %")


def sigkill_at_percent(
    proc: subprocess.Popen[bytes], percent: float, timeout_s: float = 120.0
) -> float:
    """Follow `proc`'s progress bar (its stderr is a pipe) and SIGKILL it once it reaches
    `percent`; return the percentage reached. AssertionError with the stderr tail when the child
    ends first or does not get there within `timeout_s`."""
    return signal_at_percent(proc, percent, signal.SIGKILL, timeout_s)[0]


def signal_at_percent(
    proc: subprocess.Popen[bytes],
    percent: float,
    sig: signal.Signals,
    timeout_s: float = 120.0,
) -> tuple[float, bytes]:
    """Follow `proc`'s progress bar (its stderr is a pipe), send `sig` once it reaches
    `percent` and wait for the child to end; (the percentage reached, the stderr tail read
    until then). With SIGINT the child ends on its own (the CLI cancels at a safe point)."""
    assert proc.stderr is not None, "start the child with stderr=subprocess.PIPE"
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    reached, buf, deadline = 0.0, b"", time.monotonic() + timeout_s
    try:
        while reached < percent:
            tail = buf[-2000:].decode(errors="replace")
            assert proc.poll() is None, f"the child ended before {percent} %: {tail}"
            assert time.monotonic() < deadline, f"the child never reached {percent} %: {tail}"
            if sel.select(0.05):
                buf = (buf + os.read(proc.stderr.fileno(), 65536))[-4096:]
                found = PERCENT.findall(buf)
                if found:
                    reached = float(found[-1])
        proc.send_signal(sig)
        # Keep reading while it ends: a child blocked on a full stderr pipe would never end.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            chunk = os.read(proc.stderr.fileno(), 65536) if sel.select(0.05) else b""
            buf = (buf + chunk)[-8192:]
            if proc.poll() is not None and not chunk:
                break
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return reached, buf


#: This checkout: a child process imports fota_studio (and tests) from here.
REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with this checkout on PYTHONPATH (and `extra` set)."""
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), **extra)


def python_child(script: str, *argv: str, **pipes: Any) -> subprocess.Popen[str]:
    """This interpreter running `script` (`python -c`) with `argv`, text I/O, `child_env()`;
    `pipes`: the streams to pipe (stdin=/stdout=/stderr=subprocess.PIPE)."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *argv], text=True, env=child_env(), **pipes
    )


def start_together(
    script: str, first_arg: str, count: int = 4, delay_s: float = 3.0
) -> list[subprocess.Popen[str]]:
    """`count` `python_child`ren running `script` (argv: `first_arg`, then the wall-clock time
    `delay_s` from now at which to start racing, once every one has imported everything), with
    stdout and stderr piped."""
    start = str(time.time() + delay_s)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return [python_child(script, first_arg, start, **pipes) for _ in range(count)]


def end_child(proc: subprocess.Popen[str]) -> None:
    """Kill `proc` if it still runs, reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
