"""Faults: ``kill -9`` of a real ``moodcast run`` during a busy ingest stream, then a restart.

The guarantee under test (docs/reliability.md): every message acknowledged with 202 is stored exactly
once, whether the process lives or dies after the acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from engine.config import Config, StoreConfig
from engine.store.journal import AsyncJournal, Journal, decode, encode
from engine.types import ChatMessage

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "durability-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    conf = tmp / "d.toml"
    # A long store flush keeps thousands of acknowledged messages journaled but not stored at the kill.
    conf.write_text(
        f'[server]\nport = {port}\n[store]\npath = "d.db"\nflush_ms = 3000\nbatch_size = 20000\n'
        "[bot]\nenabled = false\n"
    )
    env = {**os.environ, "MOODCAST_INGEST_TOKEN": TOKEN, "MOODCAST_ADMIN_TOKEN": "durability-admin"}
    return subprocess.Popen(
        [sys.executable, "-m", "moodcast.cli", "run", "--config", str(conf), "--no-sources"],
        cwd=tmp,
        env=env,
        stdout=(tmp / "server.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            assert proc.poll() is None, "the server exited during start-up"
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise AssertionError("server did not start")


def _journal_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM ingest_journal").fetchone()[0])


@pytest.mark.slow
async def test_kill_9_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path, port)
    acked: list[str] = []
    sent: list[str] = []
    await _wait_up(base, proc)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def sender(http: aiohttp.ClientSession, worker: int) -> None:
        i = 0
        while True:
            ids = [f"w{worker}-{i}-{k}" for k in range(50)]
            i += 1
            body = {
                "messages": [
                    {"room": "r", "user": f"u{k}", "text": f"好看 {m}", "id": m} for k, m in enumerate(ids)
                ]
            }
            sent.extend(ids)
            try:
                async with http.post(f"{base}/api/ingest", json=body, headers=headers) as r:
                    if r.status == 202:
                        acked.extend(ids)
            except aiohttp.ClientError:
                return  # the server is gone: whatever was not acknowledged may or may not be kept

    async with aiohttp.ClientSession() as http:
        workers = [asyncio.create_task(sender(http, w)) for w in range(4)]
        while len(acked) < 3000:  # noqa: ASYNC110 - polls the senders' progress
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests are in flight on four connections
        await asyncio.wait(workers, timeout=10)
    assert proc.wait(10) == -signal.SIGKILL

    db = tmp_path / "d.db"
    in_journal = _journal_rows(db)
    assert in_journal > 0, "the kill came when nothing was pending: the test proved nothing"

    proc = _start(tmp_path, port)
    try:
        await _wait_up(base, proc)
        deadline = time.monotonic() + 60
        while _journal_rows(db) and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.2)
        assert _journal_rows(db) == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = Counter(str(r[0]) for r in conn.execute("SELECT msg_id FROM messages"))
    missing = [m for m in acked if stored[m] != 1]
    assert not missing, f"{len(missing)} acknowledged messages not stored exactly once, e.g. {missing[:3]}"
    assert all(n == 1 for n in stored.values()), "a message was stored twice"
    assert set(stored) <= set(sent)
    log = (tmp_path / "server.log").read_text()
    assert f"replayed {in_journal} acknowledged messages" in log


def test_journal_rows_round_trip_and_are_deleted_with_their_message(tmp_path: Path) -> None:
    from engine.store import Store
    from engine.types import ClassifiedMessage, Prediction

    msg = ChatMessage.create(
        room="直播间", user="u", text="退钱！\t骗子", ts=1.5e9, gift_value=2.5, msg_id="x"
    )
    assert decode(7, encode(msg)) == ChatMessage(**{**_fields(msg), "seq": 7})
    path = tmp_path / "j.db"
    journal = Journal.open(path)
    [journaled] = journal.append([msg])
    assert journaled.seq > 0 and journal.count() == 1
    store = Store.open(path)
    pred = Prediction("angry", 0.9, (0.0, 0.0, 0.9, 0.0, 0.0, 0.1))
    store.write_messages([ClassifiedMessage(journaled, "退钱", pred, 1.0, "fast")])
    assert journal.count() == 0 and store.count_messages() == 1
    journal.close()
    store.close()


def _fields(msg: ChatMessage) -> dict[str, object]:
    return {f: getattr(msg, f) for f in ChatMessage.__dataclass_fields__}


async def test_journal_replay_skips_damaged_rows(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal.open(path)
    journal.append([ChatMessage.create(room="r", user="u", text="one")])
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO ingest_journal (received, payload) VALUES (0, '{not json')")
    journal.close()
    aj = AsyncJournal(path)
    await aj.open()
    got: list[ChatMessage] = []
    assert await aj.replay(got.append, lambda: True) == 1
    assert [m.text for m in got] == ["one"] and aj.errors == 1
    assert await aj.count() == 1  # the good row stays until its message is stored
    await aj.close()


def test_journal_open_on_a_read_only_database_is_a_clear_error(tmp_path: Path) -> None:
    from engine.store import StoreError

    (tmp_path / "not-a-dir").write_text("x")
    with pytest.raises(StoreError, match="not-a-dir"):
        Journal.open(tmp_path / "not-a-dir" / "j.db")
    assert Config(store=StoreConfig(path="x.db")).ingest.journal is True


@pytest.mark.parametrize("off", ["[ingest]\nenabled = false\n", "[ingest]\njournal = false\n"])
async def test_journaled_messages_are_stored_even_when_ingest_is_switched_off(
    tmp_path: Path, off: str
) -> None:
    # A crash left acknowledged rows in the journal; the operator then turns ingest (or the journal) off.
    from engine.config import parse_config
    from moodcast.service import build_app, build_service
    from tests.servers import run_app
    from tests.waiting import until

    db = tmp_path / "m.db"
    journal = Journal.open(db)
    journal.append(
        [ChatMessage.create(room="r", user=f"u{i}", text=f"好看 {i}", msg_id=f"m{i}") for i in range(5)]
    )
    journal.close()
    token = tmp_path / "tok"
    toml = f'[store]\npath = "{db}"\nflush_ms = 50\n{off}token_file = "{token}"\n[bot]\nenabled = false\n'
    service = build_service(parse_config(toml, base_dir=str(tmp_path)), with_sources=False)
    async with run_app(build_app(service)) as url, aiohttp.ClientSession() as http:
        await until(lambda: _journal_rows(db) == 0, "the journal to be replayed and stored")
        async with http.get(f"{url}/healthz") as r:
            ingest = (await r.json())["stats"].get("ingest")
        # Ingest itself runs as configured: off, or on without journaling new batches.
        assert ingest is None if "enabled = false" in off else ingest["journal"] is None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = sorted(str(r[0]) for r in conn.execute("SELECT msg_id FROM messages WHERE room = 'r'"))
    assert stored[:5] == [f"m{i}" for i in range(5)]
