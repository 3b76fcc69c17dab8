"""Who is at the keyboard: the OS user name that records, imports, locks and approvals name.

One helper for every place that writes "by whom" (update requests and their approvals, imported
versions, trust changes, flash records, lock files). Safe from any thread.
"""

from __future__ import annotations

import getpass

#: What is recorded when the OS cannot tell the user name (containers without a passwd entry).
UNKNOWN_USER = "unknown"


def current_user() -> str:
    """The OS user name, or "unknown" when the OS cannot tell."""
    try:
        return getpass.getuser()
    except Exception:  # getuser raises OSError/KeyError/ImportError without a login name
        return UNKNOWN_USER
