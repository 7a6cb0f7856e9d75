"""Faults at the service level: the SQLite disk full mid-run, an unusable store at start, an overlay that
is offline for a while. (kill -9 + restart: tests/test_durability.py; OBS killed and restarted:
tests/test_obs_real.py; a platform's network cut and restored: tests/test_bilibili.py with
tests/fake_bilibili.py.)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from engine.config import AggregateConfig, Config, StoreConfig
from tests.servers import run_app

ROOT = Path(__file__).resolve().parent.parent
ADMIN, INGEST = "faults-admin-token", "faults-ingest-token"


def _limit_pages(conn: sqlite3.Connection, pages: int | None) -> None:
    limit = conn.execute("PRAGMA page_count").fetchone()[0] if pages is None else pages
    conn.execute(f"PRAGMA max_page_count = {int(limit)}")


async def _until(pred: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _total(svc: Any, room: str) -> int:
    snap = svc.pipeline.latest(room)
    return int(snap.total_messages) if snap is not None else -1


@pytest.fixture
async def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, web.Application]]:
    monkeypatch.setenv("MOODCAST_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("MOODCAST_INGEST_TOKEN", INGEST)
    from moodcast.service import build_app, build_service

    cfg = replace(
        Config(),
        base_dir=str(tmp_path),
        store=StoreConfig(path="f.db", flush_ms=20),
        aggregate=replace(AggregateConfig(), snapshot_hz=10.0),
    )
    svc = build_service(cfg, with_sources=False)
    yield svc, build_app(svc)


async def test_disk_full_mid_run_refuses_ingest_keeps_serving_and_recovers(
    service: tuple[Any, web.Application],
) -> None:
    svc, app = service
    auth = {"Authorization": f"Bearer {INGEST}"}
    big = [{"room": "r", "text": "很长的弹幕" * 300, "id": f"a{i}"} for i in range(50)]
    async with run_app(app) as base, aiohttp.ClientSession(base) as http:
        async with http.post("/api/ingest", json=big, headers=auth) as r:
            assert r.status == 202
        await _until(lambda: svc.writer.stats()["written_messages"] == 50)
        # The disk fills up: both the journal's and the store's connection hit SQLITE_FULL.
        store, journal = svc.writer._store, svc.journal._journal
        store._run("limit", lambda c: _limit_pages(c, None))
        _limit_pages(journal._conn, None)
        # Keep pushing: SQLite reuses the pages the first batch's journal rows freed, then it is full.
        acked = 50
        for k in range(20):
            batch = [{"room": "r", "text": "很长的弹幕" * 300, "id": f"x{k}-{i}"} for i in range(80)]
            async with http.post("/api/ingest", json=batch, headers=auth) as r:
                if r.status == 202:
                    acked += 80
                    continue
                assert r.status == 503, await r.text()
                assert "Retry-After" in r.headers
                assert "full" in (await r.json())["error"]  # says why: not a bare 500
                break
        else:
            pytest.fail("the journal never reported the disk full")
        async with http.get("/healthz") as r:
            health = await r.json()
        assert health["ok"] is True and health["stats"]["ingest"]["journal_errors"] == 1
        async with http.post("/predict", json={"input_data": "退钱"}) as r:
            assert r.status == 200  # everything that does not write keeps working
        # Space comes back: the next batch is acknowledged and stored; nothing acknowledged was lost.
        store._run("limit", lambda c: _limit_pages(c, 1_000_000))
        _limit_pages(journal._conn, 1_000_000)
        again = [{**m, "id": f"b{i}"} for i, m in enumerate(big)]
        async with http.post("/api/ingest", json=again, headers=auth) as r:
            assert r.status == 202
        acked += 50
        await _until(lambda: svc.writer.stats()["written_messages"] >= 100)
        # Acknowledged while the store could not write: counted lost for this run, but still journaled, so
        # the next start stores them (tests/test_durability.py): each acked message is stored or journaled.
        await asyncio.sleep(0.5)
        stored = svc.writer.stats()["written_messages"]
        assert stored + journal.count() == acked
        assert svc.writer.stats()["lost_messages"] == journal.count()


def test_unusable_store_at_start_is_one_clear_error_not_a_crash_loop(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the store's directory should be")
    (tmp_path / "c.toml").write_text('[server]\nport = 0\n[store]\npath = "blocked/m.db"\n')
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "moodcast.cli", "run", "--config", "c.toml", "--no-sources"],
        cwd=tmp_path,
        env={**os.environ, "MOODCAST_INGEST_TOKEN": INGEST, "MOODCAST_ADMIN_TOKEN": ADMIN},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "moodcast: cannot start: SQLite store" in done.stderr
    assert "blocked/m.db" in done.stderr and "directory" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert time.monotonic() - started < 60  # it stopped; it did not sit retrying


async def test_overlay_offline_for_a_while_gets_the_current_state_on_reconnect(
    service: tuple[Any, web.Application],
) -> None:
    """An overlay drops off while chat flows, and on reconnect receives a full, current snapshot."""
    from overlay import keys

    svc, app = service
    token = app[keys.OVERLAY_TOKENS].get_or_create("live")
    auth = {"Authorization": f"Bearer {INGEST}"}
    got: list[dict[str, Any]] = []

    async with run_app(app) as base, aiohttp.ClientSession(base) as http:

        async def push(n: int, start: int) -> None:
            batch = [
                {"room": "live", "user": f"u{i}", "text": f"好看 {i}", "id": str(i)}
                for i in range(start, start + n)
            ]
            async with http.post("/api/ingest", json=batch, headers=auth) as r:
                assert r.status == 202

        client = socketio.AsyncClient(reconnection=False)
        client.on("snapshot", lambda data: got.append(data), namespace="/mood")
        await push(10, 0)
        await _until(lambda: _total(svc, "live") == 10)
        await client.connect(
            base, namespaces=["/mood"], auth={"room": "live", "token": token}, transports=["websocket"]
        )
        await _until(lambda: bool(got))
        assert got[-1]["total_messages"] == 10
        await client.disconnect()  # the overlay goes away (OBS closed, network gone)...
        for k in range(10):  # ...while the room keeps talking
            await push(20, 10 + 20 * k)
        await _until(lambda: _total(svc, "live") == 210)
        got.clear()
        client = socketio.AsyncClient(reconnection=False)
        client.on("snapshot", lambda data: got.append(data), namespace="/mood")
        await client.connect(
            base, namespaces=["/mood"], auth={"room": "live", "token": token}, transports=["websocket"]
        )
        await _until(lambda: bool(got))
        first = got[0]
        await client.disconnect()
    # The first thing it hears is the whole current state, not a delta since it left.
    assert first["room"] == "live" and first["total_messages"] == 210
    texts = {m["text"] for m in first["recent"]}
    assert "好看 209" in texts and "好看 0" not in texts  # the heatmap shows the latest chat (100 of it)
    assert len(first["recent"]) == 100
