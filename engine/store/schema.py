"""The SQLite schema, its versioned migrations, and opening a connection ready for writing."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final

from engine.emotions import EMOTIONS
from engine.store.errors import StoreError, store_error

# Frozen on purpose: a migration must not change when code elsewhere changes. If the labels in
# engine/emotions.py ever change, the import-time check below fails until a new migration is added.
SCHEMA_EMOTIONS: Final = ("happy", "excited", "angry", "sad", "anxious", "neutral")
if tuple(EMOTIONS) != SCHEMA_EMOTIONS:  # pragma: no cover - guards future edits
    raise ImportError("engine.emotions.EMOTIONS changed: add a store migration before changing the labels")

SCORE_COLUMNS: Final = tuple(f"s_{e}" for e in SCHEMA_EMOTIONS)
"""Per-message classifier scores, one column per emotion, in EMOTIONS order."""
COUNT_COLUMNS: Final = tuple(f"c_{e}" for e in SCHEMA_EMOTIONS)
"""Per-minute weighted counts, one column per emotion, in EMOTIONS order."""

_V1: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        ts REAL NOT NULL,
        user_hash TEXT NOT NULL,
        platform TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        text TEXT NOT NULL,
        norm_text TEXT NOT NULL,
        emotion TEXT NOT NULL,
        confidence REAL NOT NULL,
        {", ".join(f"{c} REAL NOT NULL" for c in SCORE_COLUMNS)},
        weight REAL NOT NULL,
        flood_reason TEXT NOT NULL,
        model_id TEXT NOT NULL,
        gift_value REAL NOT NULL,
        is_moderator INTEGER NOT NULL
    )""",
    "CREATE INDEX messages_room_ts ON messages (room, ts)",
    # Purge deletes by age across all rooms; without this it would scan the whole table every time.
    "CREATE INDEX messages_ts ON messages (ts)",
    f"""CREATE TABLE minutes (
        room TEXT NOT NULL,
        minute INTEGER NOT NULL,
        {", ".join(f"{c} REAL NOT NULL DEFAULT 0" for c in COUNT_COLUMNS)},
        messages INTEGER NOT NULL DEFAULT 0,
        flooded INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (room, minute)
    ) WITHOUT ROWID""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        values_json TEXT NOT NULL
    )""",
    "CREATE INDEX events_room_ts ON events (room, ts)",
)

# The ingest journal (engine/store/journal.py): acknowledged ingest messages not yet stored. A row is
# deleted in the same transaction that inserts its message, which is what makes replay exactly-once.
_V2: Final = (
    """CREATE TABLE ingest_journal (
        id INTEGER PRIMARY KEY,
        received REAL NOT NULL,
        payload TEXT NOT NULL
    )""",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2)
"""MIGRATIONS[n] takes a database from user_version n to n + 1."""
SCHEMA_VERSION: Final = len(MIGRATIONS)

SALT_KEY: Final = "user_hash_salt"
_BUSY_TIMEOUT_S: Final = 5.0


def connect(path: Path) -> tuple[sqlite3.Connection, bytes]:
    """Open (creating if needed) the database at ``path`` in WAL mode; return it and the user-hash salt."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise store_error(path, "create its directory", e) from e
    try:
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE), so a batch is exactly one.
        # check_same_thread=False because Store serialises access with its own lock.
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise store_error(path, "open", e) from e
    try:
        salt = _prepare(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn, salt


def _prepare(conn: sqlite3.Connection, path: Path) -> bytes:
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        # In WAL mode NORMAL survives application crashes; only a power cut can lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        with transaction(conn):
            _migrate(conn, path)
            salt = _salt(conn)
            # A write on every open: a read-only file opens without complaint and would only fail at the
            # first batch, long after start-up; better to say so now.
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_opened', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(time.time()),),
            )
    except sqlite3.Error as e:
        raise store_error(path, "open", e) from e
    if str(mode).lower() != "wal":
        raise StoreError(path, "open", f"SQLite refused WAL journal mode (got {mode!r}); use a local disk")
    return salt


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: BEGIN IMMEDIATE takes the write lock up front, so it cannot deadlock midway."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # SQLite has already rolled back by itself after some errors (SQLITE_FULL, SQLITE_IOERR); a failed
        # COMMIT (SQLITE_BUSY) leaves the transaction open, and the next batch must not start inside it.
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            path,
            "open",
            f"schema version {version} is newer than this moodcast ({SCHEMA_VERSION}); upgrade moodcast",
        )
    for n in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[n]:
            conn.execute(statement)
        # PRAGMA takes no parameters; n is an int from our own table.
        conn.execute(f"PRAGMA user_version = {n + 1}")


def _salt(conn: sqlite3.Connection) -> bytes:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (SALT_KEY,)).fetchone()
    if row is not None:
        return bytes.fromhex(row[0])
    salt = secrets.token_bytes(32)
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (SALT_KEY, salt.hex()))
    return salt
