"""`python -m fota_studio`: the same entry point as the installed `fota-studio` command."""

from __future__ import annotations

import sys

from fota_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
