"""Whether the tests may create a private network namespace (unshare -n) for bus tests."""

from __future__ import annotations

import shutil
import subprocess


def netns_unavailable_reason() -> str | None:
    """Why a private network namespace (for udp_multicast between processes) cannot be made
    here, or None when it can."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare/ip not installed"
    try:
        import msgpack  # noqa: F401
    except ImportError:
        return "udp_multicast needs msgpack"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot create a private network namespace: {probe.stderr.decode().strip()}"
    return None
