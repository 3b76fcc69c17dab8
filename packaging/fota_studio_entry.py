"""Entry script of the frozen app: the same `fota_studio.cli.main` as `fota-studio`/main.py.

PyInstaller starts here on the main thread (which becomes the Qt GUI thread when no command is
given).
"""

import sys

from fota_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
