"""The whole service on loopback: replay -> socket.io snapshots; HTTP ingest -> SQLite; bad input -> 4xx."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import socketio

from engine.classify.registry import ModelRegistry
from engine.config import Config, IngestConfig, SourceConfig, StoreConfig
from engine.emotions import EMOTIONS
from engine.normalise import normalise
from engine.store import Store
from moodcast.service import Service, build_app, build_service
from overlay.keys import OVERLAY_TOKENS
from tests.servers import run_app

TOKEN = "test-token-123"
LINES = [
    "大家好",
    "主播晚上好",
    "哈哈哈笑死我了",
    "这个颜色好看",
    "666666",
    "冲冲冲",
    "卧槽牛逼",
    "多少钱",
    "包邮吗",
    "好纠结啊买不买",
    "还有货吗急",
    "退钱",
    "骗子主播",
    "客服态度太差了",
    "唉又没抢到",
    "呜呜呜好可惜",
    "谢谢主播",
    "爱了爱了",
    "来了来了",
    "几号发货",
]


def service_config(tmp_path: Path, sources: tuple[SourceConfig, ...]) -> Config:
    return replace(
        Config(),
        base_dir=str(tmp_path),
        sources=sources,
        store=StoreConfig(path=str(tmp_path / "m.db"), flush_ms=50),
        ingest=IngestConfig(token_env="MOODCAST_TEST_TOKEN_UNUSED", token_file=str(tmp_path / "tok")),
    )


async def started(config: Config) -> tuple[Service, aiohttp.web.Application]:
    service = build_service(config)
    return service, build_app(service)


@pytest.fixture
def replay_file(tmp_path: Path) -> Path:
    p = tmp_path / "chat.jsonl"
    with p.open("w", encoding="utf-8") as f:
        for i in range(200):
            rec = {"t": i * 0.01, "user": f"viewer{i}", "text": LINES[i % len(LINES)] + f" {i}"}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return p


async def test_replay_reaches_socketio_with_counts_matching_the_file(
    tmp_path: Path, replay_file: Path
) -> None:
    src = SourceConfig(type="replay", room="e2e", path=str(replay_file), speed=0.0, loop=False)
    config = service_config(tmp_path, (src,))
    _service, app = await started(config)
    snapshots: list[dict[str, object]] = []
    got_all = asyncio.Event()
    client = socketio.AsyncClient(reconnection=False)

    async def on_any(data: dict[str, object]) -> None:
        snapshots.append(data)
        if data.get("total_messages") == 200:
            got_all.set()

    client.on("snapshot", on_any, namespace="/mood")
    client.on("mood", on_any, namespace="/mood")
    async with run_app(app) as base:
        token = app[OVERLAY_TOKENS].get_or_create("e2e")  # /mood reads a room only with its overlay token
        await client.connect(
            base, namespaces=["/mood"], auth={"room": "e2e", "token": token}, transports=["websocket"]
        )
        try:
            await asyncio.wait_for(got_all.wait(), timeout=20)
        finally:
            await client.disconnect()
    last = [s for s in snapshots if s.get("total_messages") == 200][-1]
    # The expected counts come from the same bundled model reading the file's texts directly.
    model = ModelRegistry().get(config.classifier.model)
    texts = [normalise(LINES[i % len(LINES)] + f" {i}") for i in range(200)]
    expected = [0] * len(EMOTIONS)
    for p in model.predict(texts):
        expected[EMOTIONS.index(p.emotion)] += 1
    longest = max(last["windows"], key=lambda w: w["seconds"])  # type: ignore[arg-type,index,return-value]
    assert longest["messages"] == 200  # type: ignore[index]
    assert [round(c) for c in longest["counts"]] == expected  # type: ignore[index]
    assert last["room"] == "e2e"
    assert len(last["recent"]) == 100  # type: ignore[arg-type]


async def test_http_ingest_lands_in_sqlite_and_bad_payloads_store_nothing(tmp_path: Path) -> None:
    config = service_config(tmp_path, ())
    (tmp_path / "tok").write_text(TOKEN)
    service, app = await started(config)
    service.sources.clear()  # no demo replay: only what we push
    good = {"messages": [{"room": "shop", "user": f"u{i}", "text": LINES[i]} for i in range(20)]}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with run_app(app) as base, aiohttp.ClientSession() as http:
        bad_cases: list[tuple[dict[str, str], bytes]] = [
            ({}, json.dumps(good).encode()),  # no token
            (auth, b'{"messages": [{"text": 5}]}'),
            (auth, b'{"messages": [{"text": "\xff\xfe"}]}'),
            (auth, b"x" * (10 * 1024 * 1024)),
            (auth, json.dumps({"messages": [*good["messages"], {"text": None}]}).encode()),
        ]
        for headers, body in bad_cases:
            async with http.post(
                f"{base}/api/ingest", data=body, headers={**headers, "Content-Type": "application/json"}
            ) as r:
                assert 400 <= r.status < 500, (r.status, body[:40])
                assert (await r.json())["error"]
        async with http.post(f"{base}/api/ingest", json=good, headers=auth) as r:
            assert r.status == 202
            assert (await r.json())["accepted"] == 20
        assert await service.pipeline.drain(timeout=10)
    # The app is shut down: the writer has flushed everything.
    store = Store.open(tmp_path / "m.db")
    try:
        assert store.count_messages() == 20
        assert store.rooms() == ["shop"]
        rows = store.recent_messages("shop", 50)
        assert {r.text for r in rows} == set(LINES[:20])
        assert all(r.emotion in EMOTIONS for r in rows)
    finally:
        store.close()


async def test_service_starts_with_demo_when_no_sources(tmp_path: Path) -> None:
    service = build_service(service_config(tmp_path, ()))
    assert [s.room for s in service.sources] == ["demo"]
