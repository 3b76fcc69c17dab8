"""Child processes the crash tests kill on purpose: run a CLI flash, follow its progress bar on
stderr, SIGKILL it at a chosen percentage (tests and the reliability campaign share it). POSIX."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time

#: The percentage in the CLI's progress bar ("42.5 %").
PERCENT = re.compile(rb"(\d+\.\d) %")


def sigkill_at_percent(
    proc: subprocess.Popen[bytes], percent: float, timeout_s: float = 120.0
) -> float:
    """Follow `proc`'s progress bar (its stderr is a pipe) and SIGKILL it once it reaches
    `percent`; return the percentage reached. AssertionError with the stderr tail when the child
    ends first or does not get there within `timeout_s`."""
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
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return reached
