"""Read-only access to the moodcast database for reports: sessions, minutes, events, streamed messages.

A *session* is a stretch of chat in one room with no silence longer than ``[report] session_gap_minutes``
(default 10): what a team means by "one stream" when it sits down for 复盘. moodcast has no start/stop
events of its own (platforms do not send them reliably), and the minutes table, which is never purged,
shows exactly when a room was active. A session's id is its first minute in UTC, ``YYYYMMDD-HHMM``:
stable, sortable, and the same on every machine. A session is *finished* once its room has been quiet
for the gap (a stream that is still running has no final report).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from engine.store.rows import EVENT_COLUMNS, parse_event
from engine.store.schema import COUNT_COLUMNS
from engine.types import TriggerEvent

FETCH_ROWS: Final = 5000
"""Rows fetched per round trip when streaming messages: bounded memory, few Python-C crossings."""


class ReportError(Exception):
    """A report cannot be made: no database, unknown room or session, bad orders file; says what to do."""


@dataclass(frozen=True, slots=True)
class Session:
    """One stream in one room: [start, end) on whole minutes, with its message count."""

    room: str
    start: int
    end: int
    messages: int
    finished: bool

    @property
    def id(self) -> str:
        """``YYYYMMDD-HHMM`` of the first minute, in UTC."""
        return session_id(self.start)

    @property
    def minutes(self) -> int:
        return (self.end - self.start) // 60

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "start": self.start,
            "end": self.end,
            "minutes": self.minutes,
            "messages": self.messages,
            "finished": self.finished,
        }


def session_id(start: int) -> str:
    """The id of a session starting at Unix second ``start``."""
    return datetime.fromtimestamp(start, UTC).strftime("%Y%m%d-%H%M")


def parse_session_id(value: str) -> int:
    """Unix second of a session id's first minute; ReportError for anything else."""
    try:
        return int(datetime.strptime(value.strip(), "%Y%m%d-%H%M").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise ReportError(
            f"not a session id: {value!r} (expected YYYYMMDD-HHMM, see --list-sessions)"
        ) from None


class ReportDB:
    """A read-only connection to the database (never creates or migrates it, never blocks the writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise ReportError(f"no database at {path}: run moodcast first or pass --db / --config")
        try:
            # mode=ro: a report must never create, migrate or lock the live database for writing.
            self.conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            self.conn.execute("SELECT 1 FROM minutes LIMIT 1").fetchall()
        except sqlite3.Error as e:
            raise ReportError(f"cannot read {path}: {e}") from e

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ReportDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rooms(self) -> list[str]:
        """Rooms with stored minutes."""
        return [str(r[0]) for r in self.conn.execute("SELECT DISTINCT room FROM minutes ORDER BY room")]

    def sessions(
        self, room: str, gap_minutes: float, min_messages: int = 0, now: float | None = None
    ) -> list[Session]:
        """The room's sessions, oldest first (those with fewer than ``min_messages`` are left out)."""
        now = time.time() if now is None else now
        gap = max(60.0, gap_minutes * 60.0)
        rows = self.conn.execute(
            "SELECT minute, messages FROM minutes WHERE room = ? AND messages > 0 ORDER BY minute", (room,)
        ).fetchall()
        out: list[Session] = []
        start = prev = None
        count = 0

        def close() -> None:
            if start is not None and prev is not None and count >= min_messages:
                end = int(prev) + 60
                out.append(Session(room, int(start), end, count, now - end >= gap))

        for minute, messages in rows:
            # A gap is silence between the end of one active minute and the start of the next.
            if prev is not None and minute - (prev + 60) >= gap:
                close()
                start, count = None, 0
            if start is None:
                start = minute
            prev = minute
            count += int(messages)
        close()
        return out

    def minutes(
        self, room: str, start: int, end: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Every minute in [start, end), silent ones as zeros: starts, weighted counts (T x 6), messages."""
        T = max(0, (end - start) // 60)
        minutes = start + 60 * np.arange(T, dtype=np.int64)
        counts = np.zeros((T, len(COUNT_COLUMNS)), dtype=np.float64)
        messages = np.zeros(T, dtype=np.int64)
        sql = (
            f"SELECT minute, {', '.join(COUNT_COLUMNS)}, messages FROM minutes "
            "WHERE room = ? AND minute >= ? AND minute < ? ORDER BY minute"
        )
        for row in self.conn.execute(sql, (room, start, end)):
            i = (int(row[0]) - start) // 60
            if 0 <= i < T:
                counts[i] = row[1:-1]
                messages[i] = row[-1]
        return minutes, counts, messages

    def events(self, room: str, start: float, end: float) -> list[TriggerEvent]:
        """The room's trigger events in [start, end), oldest first."""
        sql = (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events "
            "WHERE room = ? AND ts >= ? AND ts < ? ORDER BY ts, id"
        )
        return [parse_event(r) for r in self.conn.execute(sql, (room, start, end))]

    def count_messages(self, room: str, start: float, end: float) -> int:
        """Stored message rows in [start, end) (fewer than the minutes say once retention purged some)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM messages WHERE room = ? AND ts >= ? AND ts < ?", (room, start, end)
        ).fetchone()
        return int(row[0])

    def stream_messages(self, room: str, start: float, end: float) -> Iterator[tuple[Any, ...]]:
        """(ts, text, emotion, confidence, weight, user_hash, id) in time order, fetched in chunks."""
        cur = self.conn.execute(
            "SELECT ts, text, emotion, confidence, weight, user_hash, id FROM messages "
            "WHERE room = ? AND ts >= ? AND ts < ? ORDER BY ts, id",
            (room, start, end),
        )
        while True:
            chunk = cur.fetchmany(FETCH_ROWS)
            if not chunk:
                return
            yield from chunk
