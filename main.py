"""`python main.py`: starts FOTA Studio exactly like `fota-studio` and `python -m fota_studio`."""

from __future__ import annotations

import sys

from fota_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
