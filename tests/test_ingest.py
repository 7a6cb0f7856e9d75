"""The ingest endpoint over a real loopback server: auth, limits, validation, all-or-nothing, WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from engine.sources.ingest import INGEST_KEY, add_ingest_routes
from engine.types import ChatMessage
from tests.servers import run_app

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 64 * 1024
MAX_BATCH = 50


@dataclass
class Ingest:
    url: str
    session: aiohttp.ClientSession
    emitted: list[ChatMessage]
    app: web.Application

    async def post(
        self, body: bytes | str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, object]]:
        data = body.encode("utf-8") if isinstance(body, str) else body
        hdrs = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
        async with self.session.post(f"{self.url}/api/ingest", data=data, headers=hdrs) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def ingest() -> AsyncIterator[Ingest]:
    emitted: list[ChatMessage] = []
    app = web.Application()
    add_ingest_routes(
        app,
        token=TOKEN,
        emit=emitted.append,
        max_body_bytes=MAX_BODY,
        max_batch=MAX_BATCH,
        default_room="main",
    )
    async with run_app(app) as url, aiohttp.ClientSession() as session:
        yield Ingest(url, session, emitted, app)


async def test_accepts_one_object_a_list_and_a_messages_envelope(ingest: Ingest) -> None:
    assert await ingest.post(json.dumps({"text": "主播好", "user": "阿杰"})) == (202, {"accepted": 1})
    assert await ingest.post(json.dumps([{"text": "冲"}, {"text": "退钱", "room": "r2"}])) == (
        202,
        {"accepted": 2},
    )
    body = {
        "messages": [{"text": "还有货吗", "ts": 1_700_000_000_000, "is_moderator": True, "gift_value": 6.6}]
    }
    assert await ingest.post(json.dumps(body)) == (202, {"accepted": 1})
    got = ingest.emitted
    assert [m.text for m in got] == ["主播好", "冲", "退钱", "还有货吗"]
    assert [m.room for m in got] == ["main", "main", "r2", "main"]
    assert got[0].user == "阿杰" and got[0].platform == "ingest"
    assert got[3].ts == 1_700_000_000 and got[3].is_moderator and got[3].gift_value == 6.6
    assert ingest.app[INGEST_KEY].stats()["accepted"] == 4


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing token"),
        ({"Authorization": "Bearer wrong"}, "invalid token"),
        ({"Authorization": f"Basic {TOKEN}"}, "Bearer <token>"),
        ({"Authorization": "Bearer"}, "Bearer <token>"),
    ],
)
async def test_bad_or_missing_token_is_401(ingest: Ingest, headers: dict[str, str], error: str) -> None:
    status, body = await ingest.post(json.dumps({"text": "hi"}), headers=headers)
    assert status == 401
    assert error in str(body["error"])
    assert TOKEN not in str(body)
    assert ingest.emitted == []


async def test_token_in_query_is_not_accepted_for_post(ingest: Ingest) -> None:
    async with ingest.session.post(f"{ingest.url}/api/ingest?token={TOKEN}", json={"text": "hi"}) as resp:
        assert resp.status == 401
    assert ingest.emitted == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"text": "bad \xff\xfe"}', "not valid UTF-8"),
        (b'{"text": ', "invalid JSON"),
        (b'{"text": "x", "ts": NaN}', "invalid JSON"),
        (b"[" * 5000 + b"]" * 5000, "invalid JSON"),
        (b'"just a string"', "body must be a message object"),
        (b"[]", "empty batch"),
        (b'{"messages": []}', "empty batch"),
        (b'{"messages": {"text": "x"}}', "'messages' must be an array"),
        (b'{"text": 5}', "message.text must be a string"),
        (
            b'[{"text": "ok"}, {"text": "ok"}, {"text": "ok"}, {"text": ["x"]}]',
            "messages[3].text must be a string",
        ),
        (b'{"messages": [{"text": "ok"}, 7]}', "messages[1] must be a JSON object"),
        (b'[{"text": "ok"}, {"text": "  "}]', "messages[1].text must not be empty"),
        (b'[{"text": "ok", "user": {}}]', "messages[0].user must be a string"),
        (b'[{"text": "ok", "is_moderator": "yes"}]', "messages[0].is_moderator must be true or false"),
        (b'[{"text": "ok", "gift_value": -1}]', "messages[0].gift_value must be a non-negative number"),
        (b'[{"text": "ok", "room": ""}]', "messages[0].room must be a non-empty string"),
    ],
)
async def test_invalid_bodies_are_400_naming_the_problem_and_emit_nothing(
    ingest: Ingest, body: bytes, error: str
) -> None:
    status, reply = await ingest.post(body)
    assert status == 400
    assert error in str(reply["error"]), reply
    assert ingest.emitted == []


async def test_too_many_messages_is_rejected_whole(ingest: Ingest) -> None:
    status, reply = await ingest.post(json.dumps([{"text": f"m{i}"} for i in range(MAX_BATCH + 1)]))
    assert status == 400
    assert f"at most {MAX_BATCH}" in str(reply["error"])
    assert ingest.emitted == []
    assert await ingest.post(json.dumps([{"text": f"m{i}"} for i in range(MAX_BATCH)])) == (
        202,
        {"accepted": 50},
    )


async def test_ten_megabyte_body_is_413_by_content_length(ingest: Ingest) -> None:
    big = json.dumps({"text": "x" * (10 * 1024 * 1024)})
    status, reply = await ingest.post(big)
    assert status == 413
    assert "too large" in str(reply["error"])
    assert ingest.emitted == []


async def test_oversized_chunked_body_is_413_while_reading(ingest: Ingest) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    # A streamed body has no Content-Length, so the limit is enforced on the bytes as they arrive.
    async with ingest.session.post(f"{ingest.url}/api/ingest", data=chunks(), headers=AUTH) as resp:
        assert resp.status == 413
        assert "too large" in (await resp.json())["error"]
    assert ingest.emitted == []


async def test_unauthenticated_big_body_is_401_not_read(ingest: Ingest) -> None:
    status, _ = await ingest.post(b"x" * (10 * 1024 * 1024), headers={})
    assert status == 401


async def test_empty_token_never_authenticates() -> None:
    emitted: list[ChatMessage] = []
    app = web.Application()
    add_ingest_routes(app, token="", emit=emitted.append, max_body_bytes=MAX_BODY, max_batch=MAX_BATCH)
    async with run_app(app) as url, aiohttp.ClientSession() as session:
        for auth in ({"Authorization": "Bearer "}, {"Authorization": "Bearer x"}, {}):
            async with session.post(f"{url}/api/ingest", json={"text": "hi"}, headers=auth) as resp:
                assert resp.status == 401
    assert emitted == []


# ------------------------------------------------------------------------------------------- WebSocket


async def test_websocket_frames_are_answered_and_the_socket_stays_up(ingest: Ingest) -> None:
    async with ingest.session.ws_connect(f"{ingest.url}/api/ingest/ws", headers=AUTH) as ws:
        await ws.send_str(json.dumps({"text": "一"}))
        assert await ws.receive_json() == {"ok": True, "accepted": 1}
        await ws.send_str(json.dumps([{"text": "二"}, {"text": "三"}]))
        assert await ws.receive_json() == {"ok": True, "accepted": 2}
        await ws.send_str(json.dumps({"messages": [{"text": "四", "room": "r9"}]}))
        assert await ws.receive_json() == {"ok": True, "accepted": 1}

        await ws.send_str("{nope")
        reply = await ws.receive_json()
        assert reply["ok"] is False and "invalid JSON" in reply["error"]
        await ws.send_str(json.dumps([{"text": "ok"}, {"text": 1}]))
        reply = await ws.receive_json()
        assert reply == {"ok": False, "error": "messages[1].text must be a string"}
        await ws.send_bytes(b'{"text": "binary"}')
        reply = await ws.receive_json()
        assert reply["ok"] is False and "binary" in reply["error"]
        await ws.send_str(json.dumps({"text": "z" * (MAX_BODY + 10)}))
        reply = await ws.receive_json()
        assert reply["ok"] is False and "too large" in reply["error"]
        await ws.send_str(json.dumps([{"text": "m"}] * (MAX_BATCH + 1)))
        reply = await ws.receive_json()
        assert reply["ok"] is False and "too many" in reply["error"]

        await ws.send_str(json.dumps({"text": "五"}))
        assert await ws.receive_json() == {"ok": True, "accepted": 1}
    assert [m.text for m in ingest.emitted] == ["一", "二", "三", "四", "五"]
    assert ingest.emitted[3].room == "r9"


async def test_websocket_token_in_query(ingest: Ingest) -> None:
    async with ingest.session.ws_connect(f"{ingest.url}/api/ingest/ws?token={TOKEN}") as ws:
        await ws.send_str(json.dumps({"text": "hi"}))
        assert await ws.receive_json() == {"ok": True, "accepted": 1}


@pytest.mark.parametrize("suffix", ["", "?token=wrong"])
async def test_websocket_without_valid_token_is_refused_before_upgrade(ingest: Ingest, suffix: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await ingest.session.ws_connect(f"{ingest.url}/api/ingest/ws{suffix}")
    assert info.value.status == 401
    async with ingest.session.get(f"{ingest.url}/api/ingest/ws{suffix}") as resp:
        assert resp.status == 401
        assert "token" in (await resp.json())["error"]


async def test_open_websockets_are_closed_on_shutdown() -> None:
    app = web.Application()
    add_ingest_routes(app, token=TOKEN, emit=lambda _m: None, max_body_bytes=MAX_BODY, max_batch=MAX_BATCH)
    async with aiohttp.ClientSession() as session:
        async with run_app(app) as url:
            ws = await session.ws_connect(f"{url}/api/ingest/ws", headers=AUTH)
            assert app[INGEST_KEY].stats()["sockets"] == 1
        msg = await asyncio.wait_for(ws.receive(), timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        await ws.close()
