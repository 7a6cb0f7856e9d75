"""The SQLite store and its async writer, on real database files."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from engine.config import StoreConfig
from engine.emotions import EMOTIONS, INDEX
from engine.queues import DropOldestQueue
from engine.store import SCHEMA_VERSION, Store, StoreError, StoreWriter
from engine.types import ChatMessage, ClassifiedMessage, Prediction, TriggerEvent

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_040.0  # the start of a wall-clock minute
NOBODY = 65534


def classified(
    text: str = "主播太强了",
    *,
    room: str = "r1",
    user: str = "alice",
    ts: float = T0,
    emotion: str = "happy",
    weight: float = 1.0,
    flood_reason: str = "",
    platform: str = "bilibili",
) -> ClassifiedMessage:
    scores = tuple(0.75 if e == emotion else 0.05 for e in EMOTIONS)
    msg = ChatMessage.create(
        room=room, user=user, text=text, ts=ts, platform=platform, gift_value=1.5, msg_id=f"id-{ts}"
    )
    return ClassifiedMessage(
        msg, text.lower(), Prediction(emotion, 0.75, scores), weight, "fast-v1", flood_reason
    )


def event(ts: float = T0, *, room: str = "r1", kind: str = "alert") -> TriggerEvent:
    return TriggerEvent(
        room=room, ts=ts, kind=kind, message="负面情绪上升", values={"negative": 0.6, "spike": 3.5}
    )


def raw(path: Path) -> sqlite3.Connection:
    """A second, independent connection: what another process would see on disk."""
    return sqlite3.connect(path)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "moodcast.db")
    yield store
    store.close()


def set_page_limit(store: Store, pages: int | None) -> None:
    """Make the database "disk full" (SQLITE_FULL) at its current size (None), or allow ``pages``."""

    def apply(conn: sqlite3.Connection) -> None:
        limit = conn.execute("PRAGMA page_count").fetchone()[0] if pages is None else pages
        conn.execute(f"PRAGMA max_page_count = {int(limit)}")

    store._run("set page limit", apply)


# -- schema -----------------------------------------------------------------------------------------


def test_open_creates_directory_schema_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "var" / "nested" / "moodcast.db"
    store = Store.open(path)
    try:
        assert path.is_file()
        with raw(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert {"meta", "messages", "minutes", "events"} <= tables
            for table in ("messages", "events"):
                indexed = [
                    [c[2] for c in conn.execute(f"PRAGMA index_info({ix[1]})")]
                    for ix in conn.execute(f"PRAGMA index_list({table})")
                ]
                assert ["room", "ts"] in indexed, table
            minute_pk = [
                r[1] for r in sorted(conn.execute("PRAGMA table_info(minutes)"), key=lambda r: r[5]) if r[5]
            ]
            assert minute_pk == ["room", "minute"]
        assert store._run("read", lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 1  # NORMAL
    finally:
        store.close()
    # The close checkpoint leaves everything in the main file.
    assert (
        not (path.parent / "moodcast.db-wal").exists()
        or (path.parent / "moodcast.db-wal").stat().st_size == 0
    )


def test_reopen_keeps_data_and_salt(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with Store.open(path) as store:
        store.write_messages([classified(user="bob")])
        first = store.recent_messages("r1", 1)[0].user_hash
    with Store.open(path) as store:
        store.write_messages([classified(user="bob", ts=T0 + 1)])
        hashes = {m.user_hash for m in store.recent_messages("r1", 10)}
        assert store.count_messages() == 2
    assert hashes == {first}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    Store.open(path).close()
    with raw(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer") as info:
        Store.open(path)
    assert str(path) in str(info.value)


def test_corrupt_file_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not sqlite at all " * 200)
    with pytest.raises(StoreError, match="not a SQLite database") as info:
        Store.open(path)
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_file_where_directory_should_be_gives_store_error(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("oops")
    with pytest.raises(StoreError, match="directory") as info:
        Store.open(tmp_path / "var" / "m.db")
    assert str(tmp_path / "var" / "m.db") in str(info.value)


# -- read-only files and directories -----------------------------------------------------------------

# Imports first: the interpreter lives under /root, which the unprivileged user cannot read.
_PROBE = """
import os, sys
sys.path.insert(0, sys.argv[2])
from engine.store import Store, StoreError
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(int(sys.argv[3]))
    os.setuid(int(sys.argv[3]))
try:
    Store.open(sys.argv[1]).close()
except StoreError as e:
    print(e)
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="moodcast-store-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def open_error(path: Path) -> str:
    """Open the store as a user without write permission; return the StoreError text ("" if it opened)."""
    if os.geteuid() != 0:
        try:
            Store.open(path).close()
        except StoreError as e:
            return str(e)
        return ""
    # Root writes through any file mode, so the check runs as "nobody", as a service account would.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), str(ROOT), str(NOBODY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_read_only_database_file_gives_store_error(shared_dir: Path) -> None:
    path = shared_dir / "m.db"
    Store.open(path).close()
    if os.geteuid() == 0:
        # The directory stays writable for the probing user: only the file's own mode is in the way.
        os.chown(shared_dir, NOBODY, NOBODY)
        os.chown(path, NOBODY, NOBODY)
    path.chmod(0o444)
    error = open_error(path)
    assert error.startswith(f"SQLite store {path}: cannot open:")
    assert "read-only" in error


def test_read_only_directory_gives_store_error(shared_dir: Path) -> None:
    locked = shared_dir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    new = locked / "m.db"
    error = open_error(new)
    assert error.startswith(f"SQLite store {new}: cannot open:")
    assert "directory" in error
    missing_parent = locked / "sub" / "m.db"
    error = open_error(missing_parent)
    assert error.startswith(f"SQLite store {missing_parent}: cannot create its directory:")
    assert "permission denied" in error


# -- round trips -------------------------------------------------------------------------------------


def test_messages_round_trip(db: Store) -> None:
    batch = [
        classified("哈哈哈", ts=T0 + 1, emotion="happy"),
        classified("气死我了", user="bob", ts=T0 + 2, emotion="angry", weight=0.0, flood_reason="user_burst"),
        classified("在吗", room="r2", user="carol", ts=T0 + 3, emotion="neutral", platform="twitch"),
    ]
    db.write_messages(batch)
    newest = db.recent_messages("r1", 10)
    assert [m.text for m in newest] == ["气死我了", "哈哈哈"]
    m = newest[0]
    assert (m.room, m.ts, m.platform, m.msg_id, m.norm_text) == (
        "r1",
        T0 + 2,
        "bilibili",
        f"id-{T0 + 2}",
        "气死我了",
    )
    assert (m.emotion, m.confidence, m.weight, m.flood_reason) == ("angry", 0.75, 0.0, "user_burst")
    assert m.scores == batch[1].prediction.scores
    assert (m.model_id, m.gift_value, m.is_moderator) == ("fast-v1", 1.5, False)
    assert len(m.user_hash) == 16
    assert db.recent_messages("r1", 1)[0].text == "气死我了"
    assert db.count_messages() == 3
    assert db.count_messages("r2") == 1
    assert db.count_messages("nowhere") == 0
    assert db.rooms() == ["r1", "r2"]


def test_minutes_add_up_across_batches(db: Store) -> None:
    db.write_messages([classified(emotion="happy"), classified(ts=T0 + 30, emotion="angry")])
    db.write_messages(
        [
            classified(ts=T0 + 59.9, emotion="happy", weight=0.5, flood_reason="copy_flood"),
            classified(ts=T0 + 10, emotion="sad", weight=0.0, flood_reason="user_repeat"),
            classified(ts=T0 + 60, emotion="excited"),  # the next minute
        ]
    )
    db.write_messages([classified(ts=T0 + 5, emotion="happy")])
    first, second = db.minutes("r1")
    assert first.minute == int(T0) and second.minute == int(T0) + 60
    expected = [0.0] * 6
    expected[INDEX["happy"]], expected[INDEX["angry"]] = 2.5, 1.0
    assert first.counts == tuple(expected)
    assert first.messages == 5
    assert second.counts[INDEX["excited"]] == 1.0 and second.messages == 1
    assert db.flooded("r1") == 2
    assert db.flooded("r1", since=T0 + 60) == 0
    # since selects from the minute holding it; until is exclusive.
    assert [m.minute for m in db.minutes("r1", since=T0 + 30)] == [int(T0), int(T0) + 60]
    assert [m.minute for m in db.minutes("r1", since=T0 + 60)] == [int(T0) + 60]
    assert [m.minute for m in db.minutes("r1", until=T0 + 60)] == [int(T0)]
    assert db.minutes("r2") == []


def test_events_round_trip(db: Store) -> None:
    db.write_events([event(T0), event(T0 + 5, kind="calm"), event(T0 + 1, room="r2")])
    evs = db.events("r1")
    assert [e.kind for e in evs] == ["alert", "calm"]
    assert evs[0] == event(T0)
    assert dict(evs[0].values) == {"negative": 0.6, "spike": 3.5}
    assert [e.ts for e in db.events("r1", since=T0 + 1)] == [T0 + 5]
    assert [e.ts for e in db.events("r1", until=T0 + 5)] == [T0]
    # Rooms with only events are rooms too.
    assert db.rooms() == ["r1", "r2"]


def test_user_names_are_not_stored_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    secret = "Alice_Secret_User_42"
    with Store.open(path) as store:
        store.write_messages([classified(user=secret), classified(user=secret, platform="twitch", ts=T0 + 1)])
        on_bilibili, on_twitch = sorted(store.recent_messages("r1", 2), key=lambda m: m.ts)
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in blob
    assert secret.encode("utf-16-le") not in blob
    with raw(path) as conn:
        salt = bytes.fromhex(
            conn.execute("SELECT value FROM meta WHERE key = 'user_hash_salt'").fetchone()[0]
        )
    assert len(salt) == 32
    keyed = hmac.new(salt, f"bilibili\x00{secret}".encode(), hashlib.sha256).hexdigest()[:16]
    assert on_bilibili.user_hash == keyed
    assert on_twitch.user_hash != on_bilibili.user_hash
    # A different database has its own salt, so hashes cannot be joined across databases.
    with Store.open(tmp_path / "other.db") as other:
        other.write_messages([classified(user=secret)])
        assert other.recent_messages("r1", 1)[0].user_hash != on_bilibili.user_hash
    with Store.open(path) as store:
        store.write_messages([classified(user="", ts=T0 + 2)])
        assert store.recent_messages("r1", 1)[0].user_hash == ""


def test_purge_removes_old_detail_keeps_minutes_and_events(db: Store) -> None:
    now = T0 + 48 * 3600
    old = [classified(ts=T0 + i) for i in range(5)]
    fresh = [classified(ts=now - 60 + i) for i in range(3)]
    db.write_messages(old + fresh)
    db.write_events([event(T0), event(now - 10)])
    minutes_before = db.minutes("r1")
    assert db.purge(now, retention_hours=24) == 5
    assert db.count_messages() == 3
    assert all(m.ts >= now - 24 * 3600 for m in db.recent_messages("r1", 100))
    assert db.minutes("r1") == minutes_before
    assert len(db.events("r1")) == 2
    assert db.purge(now, retention_hours=24) == 0


def test_disk_full_gives_store_error_and_writes_nothing(db: Store) -> None:
    db.write_messages([classified()])
    set_page_limit(db, None)
    big = [classified("很长的弹幕" * 100, ts=T0 + i) for i in range(200)]
    with pytest.raises(StoreError, match="full") as info:
        db.write_messages(big)
    assert str(db.path) in str(info.value)
    # One transaction: neither the messages nor their minute counts went in.
    assert db.count_messages() == 1
    assert db.minutes("r1")[0].messages == 1
    set_page_limit(db, 1_000_000)
    db.write_messages(big)
    assert db.count_messages() == 201
    assert db.minutes("r1")[0].messages == 61  # T0 .. T0 + 59 plus the first one


def test_invalid_prediction_gives_store_error(db: Store) -> None:
    bad = ClassifiedMessage(
        ChatMessage.create(room="r1", user="u", text="x", ts=T0),
        "x",
        Prediction("joy", 1.0, (1.0,)),
        1.0,
        "m",
    )
    with pytest.raises(StoreError, match="invalid message"):
        db.write_messages([bad])
    assert db.count_messages() == 0


def test_closed_store_refuses_politely(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count_messages()


# -- the writer --------------------------------------------------------------------------------------


def queues(size: int = 10_000) -> tuple[DropOldestQueue[ClassifiedMessage], DropOldestQueue[TriggerEvent]]:
    return DropOldestQueue(size, "store-messages"), DropOldestQueue(size, "store-events")


async def until(predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Poll the writer's counters (it has no events to wait on) until ``predicate`` holds."""
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def count(path: Path) -> tuple[int, int]:
    with Store.open(path) as store:
        return store.count_messages(), len(store.events("r1"))


async def test_writer_batches_by_size(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    msgs, evs = queues()
    for i in range(25):
        msgs.put_nowait(classified(ts=T0 + i))
    writer = StoreWriter(path, StoreConfig(batch_size=10, flush_ms=20), msgs, evs)
    task = asyncio.create_task(writer.run())
    await until(lambda: writer.stats()["written_messages"] == 25)
    assert writer.stats()["batches"] == 3  # 10 + 10 + 5
    await writer.close()
    await task
    assert count(path) == (25, 0)


async def test_writer_flushes_a_lone_message_after_flush_ms(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    msgs, evs = queues()
    writer = StoreWriter(path, StoreConfig(batch_size=500, flush_ms=30), msgs, evs)
    task = asyncio.create_task(writer.run())
    await until(lambda: writer.stats()["open"] is True)
    msgs.put_nowait(classified())
    evs.put_nowait(event())
    await until(lambda: writer.stats()["written_messages"] == 1 and writer.stats()["written_events"] == 1, 5)
    # Visible to another connection while the writer is still running.
    assert count(path) == (1, 1)
    await writer.close()
    await task


async def test_cancelled_writer_drains_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    msgs, evs = queues()
    writer = StoreWriter(path, StoreConfig(batch_size=50, flush_ms=5000), msgs, evs)
    task = asyncio.create_task(writer.run())
    await until(lambda: writer.stats()["open"] is True)
    for i in range(1000):
        msgs.put_nowait(classified(ts=T0 + i / 10))
    for i in range(30):
        evs.put_nowait(event(T0 + i))
    await asyncio.sleep(0)  # let the writer take a first batch, so some items are in flight
    # How an aiohttp cleanup_ctx stops a background task.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writer.stats()["written_messages"] == 1000
    assert writer.stats()["lost_messages"] == 0
    assert count(path) == (1000, 30)
    async with asyncio.timeout(1):  # every item was marked done
        await msgs.join()
        await evs.join()
    with Store.open(path) as store:
        assert sum(m.messages for m in store.minutes("r1")) == 1000


class SlowStore(Store):
    """A real store whose message writes take a while, so a cancellation lands mid-write."""

    entered = threading.Event()

    def write_messages(self, batch: Sequence[ClassifiedMessage]) -> None:
        SlowStore.entered.set()
        time.sleep(0.2)
        super().write_messages(batch)


async def test_cancel_during_a_write_neither_loses_nor_doubles(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    msgs, evs = queues()
    SlowStore.entered.clear()
    writer = StoreWriter(path, StoreConfig(batch_size=100, flush_ms=1), msgs, evs, opener=SlowStore.open)
    task = asyncio.create_task(writer.run())
    for i in range(250):
        msgs.put_nowait(classified(ts=T0 + i))
    await until(SlowStore.entered.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (writer.stats()["written_messages"], writer.stats()["batches"]) == (250, 3)
    assert count(path) == (250, 0)


async def test_close_without_run_flushes_queued_items(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "m.db"
    msgs, evs = queues()
    for i in range(120):
        msgs.put_nowait(classified(ts=T0 + i))
    evs.put_nowait(event())
    writer = StoreWriter(path, StoreConfig(batch_size=50), msgs, evs)
    await writer.close()
    assert msgs.empty() and evs.empty()
    assert count(path) == (120, 1)
    assert writer.stats()["open"] is False


class FlakyStore(Store):
    """A real store whose first ``failures`` message writes fail, as a busy or briefly full disk would."""

    failures = 0

    def write_messages(self, batch: Sequence[ClassifiedMessage]) -> None:
        if FlakyStore.failures > 0:
            FlakyStore.failures -= 1
            raise StoreError(self.path, "write messages", "the database is locked (simulated)")
        super().write_messages(batch)


async def test_transient_write_error_is_retried_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    msgs, evs = queues()
    FlakyStore.failures = 2
    writer = StoreWriter(
        path, StoreConfig(flush_ms=5), msgs, evs, opener=FlakyStore.open, retry_delays_s=(0.01, 0.01, 0.01)
    )
    task = asyncio.create_task(writer.run())
    for i in range(10):
        msgs.put_nowait(classified(ts=T0 + i))
    await until(lambda: writer.stats()["written_messages"] == 10)
    stats = writer.stats()
    assert stats["write_errors"] == 2
    assert stats["lost_messages"] == 0
    assert "simulated" in str(stats["last_error"])
    await writer.close()
    await task
    assert count(path) == (10, 0)


async def test_disk_full_batch_is_counted_lost_and_writer_continues(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    msgs, evs = queues()
    opened: list[Store] = []

    def open_full(p: Path) -> Store:
        store = Store.open(p)
        set_page_limit(store, None)
        opened.append(store)
        return store

    writer = StoreWriter(
        path, StoreConfig(flush_ms=5), msgs, evs, opener=open_full, retry_delays_s=(0.01, 0.01)
    )
    task = asyncio.create_task(writer.run())
    for i in range(200):
        msgs.put_nowait(classified("很长的弹幕" * 100, ts=T0 + i))
    await until(lambda: writer.stats()["lost_messages"] == 200)
    stats = writer.stats()
    assert stats["write_errors"] == 3  # the first try and two retries
    assert "full" in str(stats["last_error"])
    assert not task.done()
    # Space comes back: the writer is still running and the next batch lands.
    set_page_limit(opened[0], 1_000_000)
    msgs.put_nowait(classified(ts=T0 + 500))
    evs.put_nowait(event())
    await until(lambda: writer.stats()["written_messages"] == 1 and writer.stats()["written_events"] == 1)
    await writer.close()
    await task
    assert count(path) == (1, 1)
    assert writer.stats()["lost_messages"] == 200


async def test_writer_purges_old_detail(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with Store.open(path) as store:
        store.write_messages([classified(ts=T0), classified(ts=T0 + 7200)])
    msgs, evs = queues()
    cfg = StoreConfig(retention_hours=1.0)
    writer = StoreWriter(path, cfg, msgs, evs, clock=lambda: T0 + 7200 + 1, purge_every_s=0.05)
    task = asyncio.create_task(writer.run())
    await until(lambda: writer.stats()["purged_messages"] == 1)
    await writer.close()
    await task
    assert count(path) == (1, 0)


async def test_writer_open_failure_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file, not a directory")
    path = tmp_path / "var" / "m.db"
    msgs, evs = queues()
    writer = StoreWriter(path, StoreConfig(), msgs, evs)
    with pytest.raises(StoreError, match="cannot create its directory"):
        await writer.run()
    assert str(path) in str(writer.stats()["last_error"])
    await writer.close()  # already finished: returns at once
