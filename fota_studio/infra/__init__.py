"""Infrastructure: workspace storage (SQLite + blob store), settings files, keyring, logging."""
