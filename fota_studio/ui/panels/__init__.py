"""Qt panels of the FOTA Studio main window."""
