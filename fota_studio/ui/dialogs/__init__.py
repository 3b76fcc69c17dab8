"""Qt dialogs of the FOTA Studio main window."""
