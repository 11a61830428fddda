"""Search what a run stored for a string (a password that must not be there)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def stored_anywhere(folder: Path, secret: str) -> list[str]:
    """Every SQLite table (and other file) under ``folder`` whose content holds ``secret``."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if secret.encode() in data:
            found.append(str(path))
        elif data[:16] == b"SQLite format 3\x00":
            with sqlite3.connect(path) as db:
                for (table,) in db.execute("select name from sqlite_master where type='table'"):
                    if secret in repr(db.execute(f"select * from {table}").fetchall()):  # noqa: S608
                        found.append(f"{path}:{table}")
    return found
