"""Per-room model selection over HTTP (overlay/model_select.py) against a real server and a real pipeline."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine.config import ClassifierConfig, Config
from engine.pipeline import Pipeline
from engine.types import ChatMessage
from overlay.app import create_app
from overlay.model_select import model_select_setup
from tests.fake_model import FakeRegistry, KeywordModel
from tests.servers import run_app
from tests.waiting import running

ADMIN = "model-select-admin"
BEARER = {"Authorization": f"Bearer {ADMIN}"}


def _pipeline(*models: KeywordModel) -> tuple[Pipeline, FakeRegistry]:
    cfg = Config()
    cfg = replace(cfg, classifier=replace(ClassifierConfig(model="kw"), cache_size=0))
    reg = FakeRegistry(*(models or (KeywordModel("kw"), KeywordModel("kw2"))))
    return Pipeline(cfg, reg.get), reg


def _app(pipe: Pipeline, reg: FakeRegistry) -> web.Application:
    setup = model_select_setup(pipe, lambda: sorted(reg.models), reg.get)
    return create_app(pipe, pipe.config, extra_setup=[setup], admin_token=ADMIN)


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    kw: dict[str, Any] = {"headers": BEARER if headers is None else headers}
    if body is not None:
        kw["data" if isinstance(body, bytes) else "json"] = body
    async with http.request(method, url, **kw) as r:
        return r.status, await r.json()


async def test_switch_one_room_over_http_and_every_error_case() -> None:
    pipe, reg = _pipeline()
    async with run_app(_app(pipe, reg)) as base, aiohttp.ClientSession(base) as http:
        status, out = await _call(http, "GET", "/api/rooms/vip/model")
        assert (status, out) == (200, {"room": "vip", "model_id": "kw", "models": ["kw", "kw2"]})

        status, out = await _call(http, "POST", "/api/rooms/vip/model", {"model_id": "kw2"})
        assert status == 200 and out["model_id"] == "kw2"
        assert pipe.model_for("vip") == "kw2" and pipe.model_for("other") == "kw"
        assert pipe.stats()["room_models"] == {"vip": "kw2"}

        # Unknown model: 404 with the registry's message naming the model; nothing changes.
        status, out = await _call(http, "POST", "/api/rooms/vip/model", {"model_id": "nope"})
        assert status == 404 and "nope" in out["error"]
        assert pipe.model_for("vip") == "kw2"
        for bad in ({"model": "kw"}, {"model_id": 3}, {"model_id": " "}, ["kw"], b"{not json"):
            status, out = await _call(http, "POST", "/api/rooms/vip/model", bad)
            assert status == 400 and out["error"], bad
        status, out = await _call(http, "POST", "/api/rooms/%20/model", {"model_id": "kw"})
        assert status == 400 and "room" in out["error"]
        status, out = await _call(http, "POST", "/api/rooms/vip/model", b"x" * 5000)
        assert status == 413

        # Admins only: no credentials is 401, a wrong bearer token too.
        status, _ = await _call(http, "POST", "/api/rooms/vip/model", {"model_id": "kw"}, headers={})
        assert status == 401
        status, _ = await _call(http, "GET", "/api/rooms/vip/model", headers={"Authorization": "Bearer no"})
        assert status == 401
        assert pipe.model_for("vip") == "kw2"


async def test_switch_over_http_under_load_loses_no_message() -> None:
    m1, m2 = KeywordModel("kw"), KeywordModel("kw2")
    pipe, reg = _pipeline(m1, m2)
    got = pipe.classified.subscribe("test")
    async with running(pipe), run_app(_app(pipe, reg)) as base, aiohttp.ClientSession(base) as http:
        switch: asyncio.Task[tuple[int, Any]] | None = None
        for i in range(3000):
            pipe.submit(ChatMessage.create(room="vip", user=f"u{i}", text=f"哈哈{i}"))
            pipe.submit(ChatMessage.create(room="calm", user=f"u{i}", text=f"退钱{i}"))
            if i == 1000:
                switch = asyncio.create_task(_call(http, "POST", "/api/rooms/vip/model", {"model_id": "kw2"}))
            if i % 100 == 0:
                await asyncio.sleep(0)
        assert switch is not None
        status, out = await switch
        assert status == 200, out
        assert await pipe.drain(timeout=10)
    items = got.drain_nowait(20_000)
    assert len(items) == 6000
    by_room: dict[str, set[str]] = {}
    for c in items:
        by_room.setdefault(c.message.room, set()).add(c.model_id)
    assert by_room == {"vip": {"kw", "kw2"}, "calm": {"kw"}}
    assert m1.texts_seen + m2.texts_seen == 6000 and m2.texts_seen > 0
    assert pipe.stats()["dropped"] == 0


@pytest.mark.browser
async def test_dashboard_panel_switches_the_room_model(browser: Any, tmp_path: Path) -> None:
    pipe, reg = _pipeline()
    pipe.submit(ChatMessage.create(room="demo", user="u", text="哈哈"))
    page = await browser.new_page(viewport={"width": 1280, "height": 1200})
    try:
        async with running(pipe), run_app(_app(pipe, reg)) as base:
            assert await pipe.drain(timeout=5)
            await page.goto(f"{base}/dashboard?room=demo")
            await page.fill("#token", ADMIN)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#model-select-form[data-current='kw']", timeout=10_000)
            await page.select_option("#room-model", "kw2")
            await page.click("#room-model-apply")
            await page.wait_for_selector("#model-select-form[data-current='kw2']", timeout=10_000)
            assert "kw2" in (await page.text_content("#room-model-note") or "")
            assert pipe.model_for("demo") == "kw2" and pipe.model_for("other") == "kw"
    finally:
        await page.close()
