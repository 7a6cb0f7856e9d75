"""Store: the blocking SQLite store of messages, minute aggregates and trigger events."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from engine.store import rows
from engine.store.errors import StoreError, store_error
from engine.store.rows import EVENT_COLUMNS, MESSAGE_COLUMNS, MINUTE_COLUMNS, StoredMessage
from engine.store.schema import COUNT_COLUMNS, connect, transaction
from engine.types import ClassifiedMessage, MinuteCounts, TriggerEvent

T = TypeVar("T")

_INSERT_MESSAGE: Final = (
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})"
)
# Adding (not replacing) makes every batch an increment: nothing is held back in memory until shutdown.
_UPSERT_MINUTE: Final = (
    f"INSERT INTO minutes ({', '.join(MINUTE_COLUMNS)}) VALUES ({', '.join('?' * len(MINUTE_COLUMNS))}) "
    "ON CONFLICT (room, minute) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in (*COUNT_COLUMNS, "messages", "flooded"))
)
_INSERT_EVENT: Final = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
_SELECT_MESSAGE: Final = f"SELECT id, {', '.join(MESSAGE_COLUMNS)} FROM messages"
_SELECT_MINUTE: Final = f"SELECT minute, {', '.join(COUNT_COLUMNS)}, messages FROM minutes"
_SELECT_EVENT: Final = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
_PURGE_CHUNK: Final = 20_000
"""Rows deleted per transaction, so readers of the WAL never see one giant commit."""
_FAR_FUTURE: Final = 2.0**62


class Store:
    """The SQLite store; blocking, meant for one writer thread (reads are safe from any thread)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, salt: bytes) -> None:
        self.path = path
        self._conn = conn
        self._salt = salt
        # One connection shared by the writer thread and readers; sqlite3 objects are not thread-safe.
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def open(cls, path: Path | str) -> Store:
        """Open or create the database at ``path`` (and its directory); raises StoreError."""
        p = Path(path).expanduser()
        conn, salt = connect(p)
        return cls(p, conn, salt)

    # -- writes ---------------------------------------------------------------------------------

    def write_messages(self, batch: Sequence[ClassifiedMessage]) -> None:
        """Insert the messages and add them to their minutes, in one transaction."""
        if not batch:
            return
        try:
            message_rows = [rows.message_row(cm, self._salt) for cm in batch]
        except ValueError as e:
            raise StoreError(self.path, "write messages", f"invalid message: {e}") from e
        minute_rows = rows.minute_rows(batch)
        journaled = [(cm.message.seq,) for cm in batch if cm.message.seq]

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(_INSERT_MESSAGE, message_rows)
                conn.executemany(_UPSERT_MINUTE, minute_rows)
                # Same transaction: a journaled message is either stored and gone from the journal, or
                # neither, so the replay after a crash stores it exactly once.
                if journaled:
                    conn.executemany("DELETE FROM ingest_journal WHERE id = ?", journaled)

        self._run("write messages", write)

    def write_events(self, batch: Sequence[TriggerEvent]) -> None:
        """Insert the trigger events in one transaction."""
        if not batch:
            return
        event_rows = [rows.event_row(ev) for ev in batch]

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(_INSERT_EVENT, event_rows)

        self._run("write events", write)

    def purge(self, now: float, retention_hours: float) -> int:
        """Delete message detail older than ``retention_hours``; minutes and events are kept. Returns rows."""
        cutoff = now - retention_hours * 3600.0

        def delete(conn: sqlite3.Connection) -> int:
            total = 0
            while True:
                with transaction(conn):
                    cur = conn.execute(
                        "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE ts < ? LIMIT ?)",
                        (cutoff, _PURGE_CHUNK),
                    )
                total += cur.rowcount
                if cur.rowcount < _PURGE_CHUNK:
                    return total

        return self._run("purge old messages", delete)

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                # TRUNCATE leaves a single self-contained file behind for backups and copying.
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("PRAGMA optimize")
            except sqlite3.Error as e:
                raise store_error(self.path, "checkpoint on close", e) from e
            finally:
                self._conn.close()

    # -- reads ----------------------------------------------------------------------------------

    def recent_messages(self, room: str, limit: int = 100) -> list[StoredMessage]:
        """The room's newest ``limit`` messages, newest first."""
        sql = f"{_SELECT_MESSAGE} WHERE room = ? ORDER BY ts DESC, id DESC LIMIT ?"
        found = self._query("read messages", sql, (room, max(0, limit)))
        return [rows.parse_message(r) for r in found]

    def minutes(
        self, room: str, since: float | None = None, until: float | None = None
    ) -> list[MinuteCounts]:
        """The room's minutes from the one holding ``since`` up to ``until`` (exclusive), oldest first."""
        lo = rows.minute_of(since) if since is not None else -_FAR_FUTURE
        hi = until if until is not None else _FAR_FUTURE
        sql = f"{_SELECT_MINUTE} WHERE room = ? AND minute >= ? AND minute < ? ORDER BY minute"
        return [rows.parse_minute(r) for r in self._query("read minutes", sql, (room, lo, hi))]

    def flooded(self, room: str, since: float | None = None, until: float | None = None) -> int:
        """How many of the room's messages flood control down-weighted, over the minutes ``minutes`` reads."""
        lo = rows.minute_of(since) if since is not None else -_FAR_FUTURE
        hi = until if until is not None else _FAR_FUTURE
        sql = "SELECT COALESCE(SUM(flooded), 0) FROM minutes WHERE room = ? AND minute >= ? AND minute < ?"
        return int(self._query("read minutes", sql, (room, lo, hi))[0][0])

    def events(self, room: str, since: float | None = None, until: float | None = None) -> list[TriggerEvent]:
        """The room's trigger events with ``since <= ts < until``, oldest first."""
        lo = since if since is not None else -_FAR_FUTURE
        hi = until if until is not None else _FAR_FUTURE
        sql = f"{_SELECT_EVENT} WHERE room = ? AND ts >= ? AND ts < ? ORDER BY ts, id"
        return [rows.parse_event(r) for r in self._query("read events", sql, (room, lo, hi))]

    def rooms(self) -> list[str]:
        """Every room with stored minutes or events, sorted."""
        sql = "SELECT room FROM minutes UNION SELECT room FROM events ORDER BY room"
        return [str(r[0]) for r in self._query("read rooms", sql, ())]

    def count_messages(self, room: str | None = None) -> int:
        """Stored message rows, of one room or of all."""
        if room is None:
            found = self._query("count messages", "SELECT COUNT(*) FROM messages", ())
        else:
            found = self._query("count messages", "SELECT COUNT(*) FROM messages WHERE room = ?", (room,))
        return int(found[0][0])

    # -- plumbing -------------------------------------------------------------------------------

    def _query(self, action: str, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._run(action, lambda conn: conn.execute(sql, params).fetchall())

    def _run(self, action: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._closed:
                raise StoreError(self.path, action, "the store is closed")
            try:
                return fn(self._conn)
            except sqlite3.Error as e:
                raise store_error(self.path, action, e) from e

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
