"""Bilibili: the binary protocol, and the source against a local fake speaking it byte for byte."""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.config import SourceConfig
from engine.sources import bilibili_proto as bp
from engine.sources.base import SourceError
from engine.sources.bilibili import BilibiliSource, OpenPlatformAuth, wbi_mixin_key
from engine.sources.platforms import build_platform_source, readiness
from engine.types import ChatMessage
from tests import fake_bilibili as fb
from tests.waiting import until

FAST = 0.05


@dataclass
class Running:
    source: BilibiliSource
    fake: fb.FakeBilibili
    got: list[ChatMessage]
    backoff_calls: list[tuple[int, int]] = field(default_factory=list)


@pytest.fixture
async def web_room() -> AsyncIterator[Running]:
    fake = fb.FakeBilibili(greeting=[fb.brotli_frame(fb.log_in_notice())])
    async with fb.serve(fake):
        calls: list[tuple[int, int]] = []

        def backoff(retry: int, total: int) -> float:
            calls.append((retry, total))
            return FAST

        src = BilibiliSource(fb.SHORT_ID, room="shop1", url=fake.url, heartbeat=0.1, backoff=backoff)
        got: list[ChatMessage] = []
        task = asyncio.create_task(src.run(got.append))
        try:
            yield Running(src, fake, got, calls)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# --------------------------------------------------------------------------------------------- protocol


def test_packets_round_trip_through_both_compressions() -> None:
    inner = b"".join(fb.command(fb.danmu_msg(t)) for t in ("一", "二", "三"))
    frame = fb.packet(5, zlib.compress(inner), ver=2) + fb.brotli_frame(fb.danmu_msg("四"))
    frame += fb.packet(3, (42).to_bytes(4, "big"), ver=1)
    items = list(bp.decode(frame))
    assert all(isinstance(i, bp.Packet) for i in items)
    packets = [i for i in items if isinstance(i, bp.Packet)]
    assert [p.json()["info"][1] for p in packets[:4]] == ["一", "二", "三", "四"]
    assert packets[4].op == bp.OP_HEARTBEAT_REPLY and packets[4].popularity() == 42
    # The client's encoder writes the same header the fake packs by hand.
    assert bp.encode(bp.OP_HEARTBEAT, b"{}") == struct.pack(">IHHII", 18, 16, 1, 2, 1) + b"{}"


def test_a_corrupt_body_skips_one_packet_and_a_bad_header_ends_the_frame() -> None:
    bad_zlib = fb.packet(5, b"not zlib at all", ver=2)
    good = fb.command(fb.danmu_msg("还在"))
    items = list(bp.decode(bad_zlib + good))
    assert isinstance(items[0], bp.PacketError) and "zlib" in str(items[0])
    assert isinstance(items[1], bp.Packet) and items[1].json()["info"][1] == "还在"
    lying = struct.pack(">IHHII", 9999, 16, 0, 5, 0) + b"{}"
    items = list(bp.decode(lying + good))
    assert len(items) == 1 and isinstance(items[0], bp.PacketError)


def test_danmu_msg_fields_are_read_from_the_info_array() -> None:
    d = bp.Danmaku.from_web(fb.danmu_msg("主播好可爱", uid=7, uname="房管", admin=True, ts_ms=1700000000123))
    assert (d.text, d.uid, d.uname, d.is_admin, d.medal, d.medal_level) == (
        "主播好可爱",
        7,
        "房管",
        True,
        "小熊团",
        21,
    )
    assert d.ts == pytest.approx(1700000000.123)
    with pytest.raises(bp.PacketError):
        bp.Danmaku.from_web({"cmd": "DANMU_MSG", "info": [[], 5]})


def test_wbi_key_matches_the_published_example() -> None:
    # The worked example of bilibili-API-collect's WBI documentation.
    assert wbi_mixin_key(fb.IMG_URL, fb.SUB_URL) == "ea1db124af3c7062474693fa704f4ff8"


# ---------------------------------------------------------------------------------------- the source


async def test_messages_arrive_intact_from_brotli_and_zlib_frames(web_room: Running) -> None:
    fake, src, got = web_room.fake, web_room.source, web_room.got
    await fake.wait_connections(1)
    await fake.push(
        fb.brotli_frame(
            fb.danmu_msg("主播好可爱", uname="快乐的小熊"),
            fb.danmu_msg("大家不要刷屏哦", uid=555, uname="房管阿星", admin=True),
            fb.danmu_msg("我是主播", uid=fb.OWNER_UID, uname="主播名", medal=None),
        )
    )
    await fake.push(
        fb.zlib_frame(
            fb.send_gift("牛哇牛哇", num=2, price=100),
            fb.send_gift("小心心", num=5, price=5000, coin="silver"),
            fb.super_chat("主播唱一首吧", price=30),
            fb.interact_word(),
        )
    )
    await until(lambda: len(got) >= 5, "five messages")
    await until(lambda: dict(src.state.signals).get("popularity") == 1234567, "heartbeat reply")
    texts = [m.text for m in got]
    assert texts == ["主播好可爱", "大家不要刷屏哦", "我是主播", "投喂 牛哇牛哇 x2", "主播唱一首吧"]
    assert [m.user for m in got[:3]] == ["快乐的小熊", "房管阿星", "主播名"]
    assert [m.is_moderator for m in got[:3]] == [False, True, True]  # room admin, and the streamer
    assert got[3].gift_value == pytest.approx(0.2)  # 2 x 100 gold coins = 0.2 CNY
    assert got[4].gift_value == 30.0
    assert {m.room for m in got} == {"shop1"} and {m.platform for m in got} == {"bilibili"}
    st = src.state
    assert st.status == "connected" and "7734200" in st.detail
    signals = dict(st.signals)
    assert signals["entries"] == 1 and signals["gifts"] == 2 and signals["super_chats"] == 1
    # What the client sent: the real room id behind short id 6, the token, protover 3, the buvid.
    auth = fake.auths[0]
    assert auth == {
        "uid": 0,
        "roomid": fb.REAL_ROOM,
        "protover": 3,
        "platform": "web",
        "type": 2,
        "key": fb.TOKEN,
        "buvid": fb.BUVID,
    }
    assert fake.heartbeats >= 1


async def test_masked_names_are_reported_in_health(web_room: Running) -> None:
    await web_room.fake.wait_connections(1)
    await until(lambda: web_room.source.state.names_masked, "names_masked")
    await web_room.fake.push(fb.brotli_frame(fb.danmu_msg("hi", uid=0, uname="快***")))
    await until(lambda: len(web_room.got) == 1, "a message")
    state = web_room.source.state.as_dict()
    assert state["names_masked"] is True and "names masked" in str(state["detail"])


async def test_a_dropped_connection_is_resumed_and_the_retry_count_resets(web_room: Running) -> None:
    fake, src, got = web_room.fake, web_room.source, web_room.got
    await fake.wait_connections(1)
    await fake.push(fb.brotli_frame(fb.danmu_msg("第一条")))
    await until(lambda: len(got) == 1, "first message")
    for n in (2, 3):
        await fake.drop()
        await fake.wait_connections(n)
        await fake.push(fb.zlib_frame(fb.danmu_msg(f"重连后 {n}")))
        await until(lambda n=n: len(got) == n, f"message after reconnect {n - 1}")
    assert [m.text for m in got] == ["第一条", "重连后 2", "重连后 3"]
    assert src.state.reconnects == 2 and src.state.status == "connected"
    # Each session delivered a good message, so each reconnect starts again at retry 0.
    assert web_room.backoff_calls == [(0, 0), (0, 1)]
    # Every reconnect fetched a fresh token first.
    assert sum(1 for r in fake.requests if r[0].endswith("getDanmuInfo")) == 3


async def test_a_malformed_frame_is_skipped_with_a_log_line(
    web_room: Running, caplog: pytest.LogCaptureFixture
) -> None:
    fake, src, got = web_room.fake, web_room.source, web_room.got
    await fake.wait_connections(1)
    caplog.set_level(logging.WARNING, logger="engine.sources.connector")
    await fake.push(struct.pack(">IHHII", 500, 16, 0, 5, 0) + b"truncated")  # length lies
    await fake.push(fb.packet(5, b"\x1b\x00garbage", ver=3))  # brotli that is not
    await fake.push(fb.command({"cmd": "DANMU_MSG", "info": "not a list"}))  # wrong shape
    await fake.push(fb.packet(5, b"{not json", ver=0))
    await fake.push(fb.brotli_frame(fb.danmu_msg("还活着")))
    await until(lambda: len(got) == 1, "the message after the bad frames")
    assert got[0].text == "还活着"
    assert src.state.errors == 4 and src.state.status == "connected" and src.state.reconnects == 0
    logged = [r.getMessage() for r in caplog.records if "skipped malformed" in r.getMessage()]
    assert len(logged) == 4 and "bad header" in logged[0]


async def test_auth_failure_is_reported() -> None:
    async with fb.serve(fb.FakeBilibili(reject_auth=True)) as fake:
        src = BilibiliSource(fb.REAL_ROOM, url=fake.url, backoff=lambda r, t: FAST)
        task = asyncio.create_task(src.run(lambda m: None))
        try:
            await until(lambda: src.state.status == "auth_failed", "auth_failed")
            assert "code -101" in src.state.detail and "retrying in" in src.state.detail
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_risk_control_shows_as_rate_limited_and_a_missing_room_stops() -> None:
    async with fb.serve(fb.FakeBilibili(rate_limit_danmu_info=True)) as fake:
        src = BilibiliSource(fb.SHORT_ID, url=fake.url, backoff=lambda r, t: FAST)
        task = asyncio.create_task(src.run(lambda m: None))
        try:
            await until(lambda: src.state.status == "rate_limited", "rate_limited")
            assert "-352" in src.state.detail
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        missing = BilibiliSource(424242, url=fake.url, backoff=lambda r, t: FAST)
        await asyncio.wait_for(missing.run(lambda m: None), 20)  # returns: nothing to retry
        assert missing.state.status == "error" and "does not exist" in missing.state.detail


# ------------------------------------------------------------------------------------ open platform


def _open_auth(code: str = fb.AUTH_CODE) -> OpenPlatformAuth:
    return OpenPlatformAuth(code, fb.APP_ID, fb.ACCESS_KEY_ID, fb.ACCESS_KEY_SECRET)


async def test_open_platform_signs_starts_heartbeats_and_reads() -> None:
    async with fb.serve() as fake:
        src = BilibiliSource(
            url=fake.url, open_auth=_open_auth(), app_heartbeat=0.05, backoff=lambda r, t: FAST
        )
        got: list[ChatMessage] = []
        task = asyncio.create_task(src.run(got.append))
        try:
            await fake.wait_connections(1)
            await fake.push(fb.brotli_frame(fb.open_dm("开放平台弹幕")))
            await until(lambda: len(got) == 1 and fake.open_heartbeats >= 2, "message and app heartbeats")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert got[0].text == "开放平台弹幕" and got[0].user == "开放平台用户"
        assert fake.bad_signatures == 0 and fake.open_ended == 1
        _path, _query, headers, body = next(r for r in fake.requests if r[0] == "/v2/app/start")
        assert body == f'{{"code":"{fb.AUTH_CODE}","app_id":{fb.APP_ID}}}'.encode()
        assert headers["x-bili-signature-method"] == "HMAC-SHA256" and len(headers["Authorization"]) == 64
        assert fake.auths[0]["key"] == "open-key-xyz"  # the auth body was sent exactly as given
        assert src.state.names_masked is False


async def test_open_platform_wrong_code_is_an_auth_failure() -> None:
    async with fb.serve() as fake:
        src = BilibiliSource(url=fake.url, open_auth=_open_auth("WRONG"), backoff=lambda r, t: FAST)
        task = asyncio.create_task(src.run(lambda m: None))
        try:
            await until(lambda: src.state.status == "auth_failed", "auth_failed")
            assert "7007" in src.state.detail
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_config_builds_the_open_platform_from_environment_variables() -> None:
    cfg = SourceConfig(type="bilibili", room="r", auth_code_env="MY_CODE", app_id=fb.APP_ID)
    env = {"MY_CODE": fb.AUTH_CODE, "MOODCAST_BILIBILI_APP_KEY": "k", "MOODCAST_BILIBILI_APP_SECRET": "s"}
    src = build_platform_source(cfg, env)
    assert isinstance(src, BilibiliSource) and src.room == "r"
    with pytest.raises(SourceError, match="MOODCAST_BILIBILI_APP_SECRET is not set"):
        build_platform_source(cfg, {"MY_CODE": "x", "MOODCAST_BILIBILI_APP_KEY": "k"})
    check = readiness(cfg, {})
    assert check.status == "fail" and "MY_CODE" in check.fix
    web = readiness(SourceConfig(type="bilibili", channel="6"), {})
    assert web.status == "warn" and "mask" in web.detail


async def test_without_brotli_the_client_asks_for_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bp, "brotli_available", lambda: False)
    async with fb.serve() as fake:
        src = BilibiliSource(fb.SHORT_ID, url=fake.url, backoff=lambda r, t: FAST)
        got: list[ChatMessage] = []
        task = asyncio.create_task(src.run(got.append))
        try:
            await fake.wait_connections(1)
            await fake.push(fb.zlib_frame(fb.danmu_msg("zlib 也行")))
            await until(lambda: len(got) == 1, "a zlib message")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert fake.auths[0]["protover"] == 2 and got[0].text == "zlib 也行"


async def test_the_service_reads_a_bilibili_room_and_reports_its_health(tmp_path: Path) -> None:
    """The whole service: config -> source -> pipeline -> store, and /healthz shows the source's health."""
    import aiohttp

    from engine.config import parse_config
    from moodcast.service import build_app, build_service
    from tests.servers import run_app

    async with fb.serve(fb.FakeBilibili(greeting=[fb.brotli_frame(fb.log_in_notice())])) as fake:
        toml = (
            f'[store]\npath = "{tmp_path / "m.db"}"\n[ingest]\ntoken_file = "{tmp_path / "tok"}"\n'
            f'[[sources]]\ntype = "bilibili"\nroom = "shop1"\nchannel = "6"\nurl = "{fake.url}"\n'
        )
        service = build_service(parse_config(toml, base_dir=str(tmp_path)))
        async with run_app(build_app(service)) as url, aiohttp.ClientSession() as http:
            await fake.wait_connections(1)
            await fake.push(fb.brotli_frame(fb.danmu_msg("太好看了"), fb.danmu_msg("冲冲冲")))
            await until(lambda: service.pipeline.counters.classified >= 2, "two classified messages")
            async with http.get(f"{url}/healthz") as resp:
                stats = (await resp.json())["stats"]
    health = stats["sources"]["bilibili:6"]
    assert health["status"] == "connected" and health["messages"] == 2 and health["room"] == "shop1"
    assert health["names_masked"] is True and health["platform"] == "bilibili"
