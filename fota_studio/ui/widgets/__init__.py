"""Qt widgets of the FOTA Studio main window."""
