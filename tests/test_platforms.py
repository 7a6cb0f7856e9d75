"""Douyu against a local STT server; YouTube/TikTok adapters; backoff; health in service and doctor."""

from __future__ import annotations

import asyncio
import importlib.util
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from engine.config import Config, SourceConfig, parse_config
from engine.sources import build_source
from engine.sources.base import SourceError
from engine.sources.connector import jittered_backoff
from engine.sources.douyu import DouyuSource, decode_packets, encode_packet, stt_dumps, stt_loads
from engine.sources.tiktok import message_from_comment, message_from_gift
from engine.sources.youtube import message_from_item
from engine.types import ChatMessage
from moodcast.doctor import check_live_sources, check_sources
from tests.servers import run_app
from tests.waiting import until

# ------------------------------------------------------------------------------------------ backoff


def test_backoff_grows_caps_and_jitters() -> None:
    rng = random.Random(1)
    policy = jittered_backoff(base=1.0, cap=60.0, rng=rng.random)
    waits = [policy(r, r) for r in range(10)]
    assert all(0.5 * min(60, 2**r) <= w <= min(60, 2**r) for r, w in enumerate(waits))
    assert max(waits) <= 60.0 and len({round(w, 6) for w in waits}) == 10


# -------------------------------------------------------------------------------------------- Douyu


def test_stt_round_trips_escapes() -> None:
    fields = {"type": "chatmsg", "txt": "a/b@c 主播", "nn": "x@=y"}
    assert stt_loads(stt_dumps(fields)) == fields
    assert stt_dumps({"txt": "a/b"}) == "txt@=a@Sb/"
    buf = bytearray(encode_packet("type@=mrkl/"))
    assert buf[:12] == bytes.fromhex("14000000 14000000 b102 00 00".replace(" ", ""))
    assert list(decode_packets(buf)) == ["type@=mrkl/"] and not buf


async def test_douyu_reads_chat_across_split_and_batched_packets() -> None:
    logins: list[dict[str, str]] = []

    def pkt(fields: dict[str, str]) -> bytes:
        return encode_packet(stt_dumps(fields), msg_type=690)

    async def danmu(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        buf = bytearray()
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            buf += msg.data
            for body in decode_packets(buf):
                assert isinstance(body, str)
                fields = stt_loads(body)
                logins.append(fields)
                if fields["type"] == "loginreq":
                    await ws.send_bytes(pkt({"type": "loginres", "userid": "0", "roomgroup": "0"}))
                elif fields["type"] == "joingroup":
                    chat = pkt(
                        {"type": "chatmsg", "rid": "9999", "uid": "1", "nn": "鱼丸/粉", "txt": "主播好厉害"}
                    )
                    mod = pkt(
                        {
                            "type": "chatmsg",
                            "rid": "9999",
                            "uid": "2",
                            "nn": "房管",
                            "txt": "注意文明",
                            "rg": "4",
                        }
                    )
                    junk = bytes.fromhex("ffffff7f") + b"x" * 8
                    await ws.send_bytes(chat[:7])  # a packet split across two frames
                    await ws.send_bytes(chat[7:] + pkt({"type": "uenter", "nn": "路人"}) + mod)
                    await ws.send_bytes(junk)
                    await ws.send_bytes(pkt({"type": "chatmsg", "nn": "c", "txt": "坏包之后"}))
        return ws

    app = web.Application()
    app.router.add_get("/", danmu)
    async with run_app(app) as url:
        src = DouyuSource("9999", room="dy", url=url.replace("http", "ws") + "/", backoff=lambda r, t: 0.05)
        got: list[ChatMessage] = []
        task = asyncio.create_task(src.run(got.append))
        try:
            await until(lambda: len(got) == 3, "three chat messages")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert logins[0] == {"type": "loginreq", "roomid": "9999"}
    assert logins[1] == {"type": "joingroup", "rid": "9999", "gid": "-9999"}
    assert [(m.user, m.text, m.is_moderator) for m in got] == [
        ("鱼丸/粉", "主播好厉害", False),
        ("房管", "注意文明", True),
        ("c", "坏包之后", False),
    ]
    assert src.state.errors == 1 and dict(src.state.signals)["entries"] == 1


# ------------------------------------------------------------------------- YouTube and TikTok adapters


def test_youtube_items_map_to_messages() -> None:
    # Attribute names as pytchat 0.5.5's default processor sets them.
    author = SimpleNamespace(name="Amy", isChatModerator=True, isChatOwner=False)
    item = SimpleNamespace(
        type="superChat",
        message="love it",
        author=author,
        amountValue=5.0,
        currency="$",
        timestamp=1700000000500,
        id="yt1",
    )
    msg = message_from_item(item, room="yt")
    assert (
        msg is not None and msg.is_moderator and msg.gift_value == pytest.approx(36.0) and msg.msg_id == "yt1"
    )
    assert msg.ts == pytest.approx(1700000000.5)
    plain = SimpleNamespace(type="textMessage", message="", author=author, timestamp=0, id="")
    assert message_from_item(plain, room="yt") is None


def test_tiktok_events_map_to_messages() -> None:
    # Field names as TikTokLive 7's CommentEvent / GiftEvent carry them.
    user = SimpleNamespace(nickname="Lily", unique_id="lily01")
    comment = SimpleNamespace(
        content="so pretty", user=user, user_identity=SimpleNamespace(is_moderator_of_anchor=True)
    )
    msg = message_from_comment(comment, room="tt")
    assert msg is not None and (msg.user, msg.text, msg.is_moderator) == ("Lily", "so pretty", True)
    gift = SimpleNamespace(value=0.05, user=user, gift=SimpleNamespace(name="Rose"), repeat_count=10)
    g = message_from_gift(gift, room="tt")
    assert g is not None and g.gift_value == pytest.approx(0.36) and g.text == "送出 Rose x10"
    assert message_from_gift(SimpleNamespace(value=None), room="tt") is None  # mid-streak


@pytest.mark.parametrize(
    ("kind", "module", "extra"), [("youtube", "pytchat", "youtube"), ("tiktok", "TikTokLive", "tiktok")]
)
def test_missing_client_library_says_how_to_install(kind: str, module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    cfg = SourceConfig(type=kind, channel="abc")  # type: ignore[arg-type]
    with pytest.raises(SourceError, match=rf"moodcast\[{extra}\]"):
        build_source(cfg, Path("."))


def test_platform_sources_are_configured_in_config_toml() -> None:
    cfg = parse_config('[[sources]]\ntype = "twitch"\nroom = "t"\nchannel = "Shop"\nreconnect_max = 5.0\n')
    src = build_source(cfg.sources[0], Path("."))
    assert src.name == "twitch:shop" and src.room == "t" and src.state.platform == "twitch"
    with pytest.raises(SourceError, match=r"sources\.channel"):
        build_source(SourceConfig(type="douyu"), Path("."))


# ------------------------------------------------------------------------------------- health surfaces


def test_service_health_reaches_pipeline_stats() -> None:
    from moodcast.service import build_service

    cfg = parse_config('[[sources]]\ntype = "bilibili"\nroom = "b"\nchannel = "6"\n')
    service = build_service(cfg)
    health = service.health()
    assert health["bilibili:6"]["status"] == "starting" and health["bilibili:6"]["room"] == "b"
    stats = service.pipeline.stats()
    assert stats["sources"] == health


def test_doctor_reports_platform_readiness_and_live_health() -> None:
    cfg = parse_config('[[sources]]\ntype = "bilibili"\nroom = "b"\nchannel = "abc"\n')
    [bad] = check_sources(cfg)
    assert bad.status == "fail" and "room id" in bad.detail

    def fetch(url: str) -> dict[str, Any]:
        assert url == "http://127.0.0.1:8750/healthz"
        return {
            "ok": True,
            "stats": {
                "sources": {
                    "bilibili:6": {
                        "status": "connected",
                        "detail": "connected to room 7734200",
                        "messages": 3,
                        "names_masked": True,
                        "reconnects": 2,
                    },
                    "twitch:shop": {"status": "auth_failed", "detail": "auth failed: login refused"},
                }
            },
        }

    masked, refused = check_live_sources(Config(), fetch)
    assert masked.status == "warn" and "cookie_env" in masked.fix and "2 reconnects" in masked.detail
    assert refused.status == "fail" and refused.name == "live twitch:shop"

    def down(url: str) -> dict[str, Any]:
        raise ConnectionRefusedError

    [idle] = check_live_sources(Config(), down)
    assert idle.status == "ok" and "not running" in idle.detail


# ----------------------------------------------------------------------------- example companion client


EXAMPLE_CLIENT = Path(__file__).resolve().parent.parent / "examples" / "ingest_client.py"


async def test_example_ingest_client_pushes_chat_into_the_real_endpoint() -> None:
    import io
    import runpy

    from engine.sources.ingest import add_ingest_routes

    client = runpy.run_path(str(EXAMPLE_CLIENT))
    got: list[ChatMessage] = []
    app = web.Application()
    add_ingest_routes(app, token="tok", emit=got.append, max_body_bytes=1 << 20, max_batch=100)
    lines = '抖音来的弹幕\n\n{"text": "带用户名", "user": "u1", "gift_value": 1.5}\n{"text": 5}\n'
    async with run_app(app) as url:
        accepted = await asyncio.to_thread(
            client["run"],
            io.StringIO(lines),
            f"{url}/api/ingest",
            "tok",
            room="dy1",
            platform="douyin",
            batch_size=1,
        )
    # The last line is invalid (text must be a string): moodcast answers 400, the client reports and moves on.
    assert accepted == 2
    assert [(m.room, m.platform, m.text, m.user, m.gift_value) for m in got] == [
        ("dy1", "douyin", "抖音来的弹幕", "", 0.0),
        ("dy1", "douyin", "带用户名", "u1", 1.5),
    ]
