"""StoreError: every storage failure, phrased so an operator knows which file and what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# SQLite's primary result codes (the low byte of an extended code), named by what an operator can fix.
_HINTS: dict[int, str] = {
    sqlite3.SQLITE_READONLY: "the database file or its directory is read-only for this user",
    sqlite3.SQLITE_CANTOPEN: "cannot open or create the file (can this user write to its directory?)",
    sqlite3.SQLITE_NOTADB: "the file is not a SQLite database; move it aside to start a new one",
    sqlite3.SQLITE_CORRUPT: "the database is corrupt; move it aside (and its -wal file) to start a new one",
    sqlite3.SQLITE_FULL: "the disk (or the database size limit) is full",
    sqlite3.SQLITE_IOERR: "the operating system reported an I/O error",
    sqlite3.SQLITE_BUSY: "another process holds a lock on the database",
    sqlite3.SQLITE_LOCKED: "the database is locked",
    sqlite3.SQLITE_PERM: "permission denied",
}


class StoreError(RuntimeError):
    """A storage failure; the text names the database path and the reason."""

    def __init__(self, path: Path | str, action: str, reason: str) -> None:
        super().__init__(f"SQLite store {path}: cannot {action}: {reason}")
        self.path = Path(path)
        self.action = action
        self.reason = reason


def store_error(path: Path | str, action: str, exc: BaseException) -> StoreError:
    """Translate an sqlite3 or OS error into a StoreError with an operator-facing hint."""
    detail = str(exc) or type(exc).__name__
    code = getattr(exc, "sqlite_errorcode", None)
    hint = _HINTS.get(code & 0xFF) if isinstance(code, int) else None
    if hint is None and isinstance(exc, PermissionError):
        hint = _HINTS[sqlite3.SQLITE_PERM]
    elif hint is None and isinstance(exc, (FileExistsError, NotADirectoryError)):
        hint = "a file is in the way where a directory should be"
    return StoreError(path, action, f"{hint} ({detail})" if hint else detail)
