"""Qt models of the FOTA Studio main window."""
