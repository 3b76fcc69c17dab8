"""Damaged and foreign storage for the workspace tests and the reliability campaign's hostile
cases."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path


def scribble_btree_pages(db: Path, rng: random.Random, pages: int = 3) -> list[int]:
    """Overwrite the first 64 bytes (the b-tree page header and cell pointers) of `pages`
    random table/index pages of a SQLite file with random bytes; return their numbers.

    SQLite has no checksum over row contents, so bytes scribbled into a text value are
    undetectable by design; bytes over a page's structure must be reported.
    """
    data = bytearray(db.read_bytes())
    size = int.from_bytes(data[16:18], "big") or 65536
    btree = [
        n
        for n in range(2, len(data) // size + 1)
        if data[(n - 1) * size] in (0x02, 0x05, 0x0A, 0x0D)
    ]
    chosen = rng.sample(btree, min(pages, len(btree)))
    for n in chosen:
        at = (n - 1) * size
        data[at : at + 64] = rng.randbytes(64)
    db.write_bytes(bytes(data))
    return chosen


def newer_schema_database(folder: Path) -> Path:
    """A workspace database in `folder` as a newer FOTA Studio leaves it (schema version one
    above ours, a table we do not know); its path."""
    from fota_studio.infra.workspace import DB_NAME, SCHEMA_VERSION

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / DB_NAME
    raw = sqlite3.connect(db)
    try:
        raw.execute("CREATE TABLE future (x)")
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        raw.commit()
    finally:
        raw.close()
    return db
