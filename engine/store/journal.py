"""The ingest journal: what ingest acknowledged, committed to SQLite before the acknowledgement.

The guarantee (docs/reliability.md): ``202 Accepted`` from ``POST /api/ingest`` (or ``{"ok": true}`` on
the WebSocket) is sent only after the whole batch is committed to the ``ingest_journal`` table of the
store's database (WAL mode). The store deletes a journal row in the same transaction that inserts its
message, so after a crash (``kill -9``) every row still in the journal is a message that was
acknowledged and not stored; the next start replays those through the pipeline, and each is stored
exactly once. ``synchronous=NORMAL`` survives a process crash; ``[ingest] journal_fsync = true`` also
survives a power cut, at the cost of one fsync per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from engine.store.errors import StoreError, store_error
from engine.store.schema import connect, transaction
from engine.types import ChatMessage, MessageError

T = TypeVar("T")

_FIELDS = ("room", "user", "text", "ts", "platform", "is_moderator", "gift_value", "msg_id")


def encode(msg: ChatMessage) -> str:
    """The message as the JSON stored in a journal row."""
    return json.dumps({f: getattr(msg, f) for f in _FIELDS}, ensure_ascii=False, separators=(",", ":"))


def decode(seq: int, payload: str) -> ChatMessage:
    """A journal row back into the message it was (with its ``seq``); raises MessageError if damaged."""
    try:
        data: Any = json.loads(payload)
        fields = {f: data[f] for f in _FIELDS}
    except (ValueError, KeyError, TypeError) as e:
        raise MessageError(f"journal row {seq} is damaged: {e}") from None
    return ChatMessage(**fields, seq=seq)


def journaled_rows(path: Path) -> int:
    """Rows waiting in the journal of the database at ``path`` (0 if there is none); read-only, no migration.

    Lets a start with ingest or the journal now switched off still replay what an earlier run
    acknowledged and did not store.
    """
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            has_table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ingest_journal'"
            ).fetchone()
            return int(conn.execute("SELECT COUNT(*) FROM ingest_journal").fetchone()[0]) if has_table else 0
    except sqlite3.Error:
        # Unreadable here means unreadable for the store too: its own open reports that clearly.
        return 0


class Journal:
    """Blocking journal on its own connection to the store's database; one thread at a time."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path | str, *, fsync: bool = False) -> Journal:
        """Open (creating and migrating if needed) the database at ``path``; raises StoreError."""
        p = Path(path).expanduser()
        conn, _ = connect(p)
        if fsync:
            conn.execute("PRAGMA synchronous=FULL")
        return cls(p, conn)

    def append(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """Commit ``messages`` in one transaction; return them carrying their journal ``seq``."""
        now = time.time()
        out: list[ChatMessage] = []
        try:
            with transaction(self._conn):
                for m in messages:
                    cur = self._conn.execute(
                        "INSERT INTO ingest_journal (received, payload) VALUES (?, ?)", (now, encode(m))
                    )
                    out.append(replace(m, seq=int(cur.lastrowid or 0)))
        except sqlite3.Error as e:
            raise store_error(self.path, "journal ingested messages", e) from e
        return out

    def pending(self, after: int = 0, up_to: int | None = None, limit: int = 1000) -> list[tuple[int, str]]:
        """Journal rows (id, payload) with ``after < id <= up_to``, oldest first."""
        hi = up_to if up_to is not None else 2**62
        try:
            rows = self._conn.execute(
                "SELECT id, payload FROM ingest_journal WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after, hi, limit),
            ).fetchall()
        except sqlite3.Error as e:
            raise store_error(self.path, "read the ingest journal", e) from e
        return [(int(r[0]), str(r[1])) for r in rows]

    def last_id(self) -> int:
        """The newest journal row id (0 when empty)."""
        try:
            row = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM ingest_journal").fetchone()
        except sqlite3.Error as e:
            raise store_error(self.path, "read the ingest journal", e) from e
        return int(row[0])

    def count(self) -> int:
        """Rows in the journal: acknowledged messages not stored yet."""
        try:
            return int(self._conn.execute("SELECT COUNT(*) FROM ingest_journal").fetchone()[0])
        except sqlite3.Error as e:
            raise store_error(self.path, "read the ingest journal", e) from e

    def discard(self, seq: int) -> None:
        """Delete one row (a damaged one that can never be replayed)."""
        try:
            with transaction(self._conn):
                self._conn.execute("DELETE FROM ingest_journal WHERE id = ?", (seq,))
        except sqlite3.Error as e:
            raise store_error(self.path, "discard a journal row", e) from e

    def close(self) -> None:
        """Close the connection (the store checkpoints the WAL)."""
        self._conn.close()


class AsyncJournal:
    """The journal for the event loop: every call runs on one dedicated thread."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._journal: Journal | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.appended = 0
        self.replayed = 0
        self.errors = 0
        self.last_error = ""

    @property
    def is_open(self) -> bool:
        return self._journal is not None

    async def _call(self, fn: Callable[[Journal], T]) -> T:
        journal = self._journal
        if journal is None or self._executor is None:
            raise StoreError(self.path, "journal ingested messages", "the ingest journal is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, journal)

    async def open(self) -> None:
        """Open the journal; raises StoreError (with the operator-facing reason) once."""
        if self._journal is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodcast-journal")
        try:
            self._journal = await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: Journal.open(self.path, fsync=self._fsync)
            )
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def append(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """Commit a batch; returns it with ``seq`` set. Raises StoreError (then nothing was journaled)."""
        try:
            out = await self._call(lambda j: j.append(messages))
        except StoreError as e:
            self.errors += 1
            self.last_error = str(e)
            raise
        self.appended += len(out)
        return out

    async def replay(self, submit: Callable[[ChatMessage], None], room_for_space: Callable[[], bool]) -> int:
        """Submit every row journaled before now, oldest first, when ``room_for_space()`` allows."""
        up_to = await self._call(lambda j: j.last_id())
        after, total = 0, 0
        while True:
            rows = await self._call(lambda j, a=after: j.pending(a, up_to, 500))  # type: ignore[misc]
            if not rows:
                return total
            for seq, payload in rows:
                try:
                    msg = decode(seq, payload)
                except MessageError:
                    await self._call(lambda j, s=seq: j.discard(s))  # type: ignore[misc]
                    self.errors += 1
                    continue
                submit(msg)
                total += 1
                self.replayed += 1
            after = rows[-1][0]
            while not room_for_space():  # noqa: ASYNC110 - polls a queue length, no event to wait on
                await asyncio.sleep(0.05)

    async def count(self) -> int:
        return await self._call(lambda j: j.count())

    async def close(self) -> None:
        journal, self._journal = self._journal, None
        executor, self._executor = self._executor, None
        if journal is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, journal.close)
        if executor is not None:
            executor.shutdown(wait=False)

    def stats(self) -> dict[str, object]:
        return {
            "appended": self.appended,
            "replayed": self.replayed,
            "errors": self.errors,
            "last_error": self.last_error,
        }
