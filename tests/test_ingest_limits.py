"""Ingest under pressure: per-client rate limit (429), over capacity (503), journal failure (503).

Each refusal carries Retry-After, and nothing of a refused batch is emitted: the client may retry it.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from aiohttp import web

from engine.ratelimit import RateLimiter, retry_after_header
from engine.sources.ingest import INGEST_KEY, add_ingest_routes
from engine.store.journal import AsyncJournal
from engine.types import ChatMessage
from tests.servers import run_app

TOKEN = "limits-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_refills_and_says_how_long_to_wait() -> None:
    clock = Clock()
    lim = RateLimiter(10, 20, clock=clock)
    assert lim.take("a", 20) == 0.0
    assert lim.take("a", 5) == 0.5  # empty: 5 more need half a second at 10/s
    assert lim.take("b", 5) == 0.0  # per key
    clock.t += 0.5
    assert lim.take("a", 5) == 0.0
    assert lim.take("a", 1000) > 0  # bigger than the bucket: needs a full bucket, not forever
    clock.t += 2.0
    assert lim.take("a", 1000) == 0.0
    assert RateLimiter(0, 0).take("x", 10**9) == 0.0  # 0 = off
    assert retry_after_header(0.01) == "1" and retry_after_header(2.2) == "3"


def test_rate_limiter_memory_is_bounded_by_its_key_cap() -> None:
    lim = RateLimiter(1, 1, max_keys=100)
    for i in range(10_000):
        lim.take(f"10.0.{i // 256}.{i % 256}")
    assert len(lim) == 100


async def _app(**kw: object) -> tuple[web.Application, list[ChatMessage]]:
    emitted: list[ChatMessage] = []
    app = web.Application()
    add_ingest_routes(
        app,
        token=TOKEN,
        emit=emitted.append,
        max_body_bytes=65536,
        max_batch=100,
        **kw,  # type: ignore[arg-type]
    )
    return app, emitted


async def test_rate_limited_client_gets_429_with_retry_after_and_nothing_is_emitted() -> None:
    app, emitted = await _app(limiter=RateLimiter(5, 10, clock=Clock()))
    body = json.dumps([{"text": f"m{i}"} for i in range(6)])
    async with run_app(app) as url, aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(f"{url}/api/ingest", data=body) as r:
            assert r.status == 202
        async with http.post(f"{url}/api/ingest", data=body) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "1"
            assert "rate limit" in (await r.json())["error"]
        async with http.ws_connect(f"{url}/api/ingest/ws") as ws:
            await ws.send_str(body)
            reply = await ws.receive_json()
            assert reply["ok"] is False and reply["retry_after"] >= 1
    assert len(emitted) == 6
    assert app[INGEST_KEY].stats()["rate_limited"] == 2


async def test_over_capacity_is_503_with_retry_after_not_a_silent_drop() -> None:
    full = {"on": True}
    app, emitted = await _app(overloaded=lambda: 2.0 if full["on"] else 0.0)
    async with run_app(app) as url, aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(f"{url}/api/ingest", json={"text": "冲"}) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "2"
        full["on"] = False  # the pipeline caught up: the retry goes through
        async with http.post(f"{url}/api/ingest", json={"text": "冲"}) as r:
            assert r.status == 202
    assert [m.text for m in emitted] == ["冲"]
    assert app[INGEST_KEY].stats()["overload_refused"] == 1


async def test_a_journal_that_cannot_commit_means_no_acknowledgement(tmp_path: Path) -> None:
    journal = AsyncJournal(tmp_path / "j.db")  # never opened: every append fails like a dead disk
    app, emitted = await _app(journal=journal)
    async with (
        run_app(app) as url,
        aiohttp.ClientSession(headers=AUTH) as http,
        http.post(f"{url}/api/ingest", json={"text": "冲"}) as r,
    ):
        assert r.status == 503 and "Retry-After" in r.headers
        assert "nothing was accepted" in (await r.json())["error"]
    assert emitted == []
    assert app[INGEST_KEY].stats()["journal_errors"] == 1


async def test_journaled_batches_are_emitted_with_their_journal_ids(tmp_path: Path) -> None:
    journal = AsyncJournal(tmp_path / "j.db")
    await journal.open()
    app, emitted = await _app(journal=journal)
    async with (
        run_app(app) as url,
        aiohttp.ClientSession(headers=AUTH) as http,
        http.post(f"{url}/api/ingest", json=[{"text": "a"}, {"text": "b"}]) as r,
    ):
        assert r.status == 202
    assert [m.seq for m in emitted] == [1, 2]
    assert await journal.count() == 2
    await journal.close()
