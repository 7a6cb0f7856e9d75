"""A local Bilibili that speaks the real protocol: HTTP room setup, open platform, binary WebSocket.

Bilibili cannot be reached from tests, so this aiohttp app stands in for ``api.live.bilibili.com``,
``api.bilibili.com``, ``live-open.biliapi.com`` and the danmaku servers, all under one base URL. It
packs its frames by hand with ``struct``, ``zlib`` and ``brotli`` (not with the client's encoder), checks
the client's WBI signature and open-platform HMAC headers with its own code, and replies with JSON in
the shapes recorded from the real services (DANMU_MSG's ``info`` array, SEND_GIFT, SUPER_CHAT_MESSAGE,
INTERACT_WORD, LOG_IN_NOTICE). The test drives it: push frames, drop connections, reject auth.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import struct
import time
import urllib.parse
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import brotli
from aiohttp import WSMsgType, web

from tests.servers import run_app

SHORT_ID = 6
REAL_ROOM = 7734200
OWNER_UID = 9617619
TOKEN = "fake-danmu-token-Pk3x"
BUVID = "A1B2C3D4-FAKE-BUVID-0000-000000000000infoc"
# The nav API's WBI image URLs (their file stems are the key material).
IMG_URL = "https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png"
SUB_URL = "https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png"
MIXIN_ORDER = [
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19, 29, 28, 14, 39,
    12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63,
    57, 62, 11, 36, 20, 34, 44, 52,
]  # fmt: skip

APP_ID = 1650000000001
ACCESS_KEY_ID = "fake-access-key-id"
ACCESS_KEY_SECRET = "fake-access-key-secret"
AUTH_CODE = "FAKE0CODE1234"
GAME_ID = "fake-game-0001"
OPEN_AUTH_BODY = json.dumps(
    {"roomid": REAL_ROOM, "protoover": 2, "key": "open-key-xyz", "uid": 0, "group": "open"}
)


# ------------------------------------------------------------------------- packets, packed by hand


def packet(op: int, body: bytes, ver: int = 0, seq: int = 0) -> bytes:
    """One packet: ``>I`` total length, ``>H`` 16, ``>H`` protover, ``>I`` operation, ``>I`` sequence."""
    return struct.pack(">IHHII", 16 + len(body), 16, ver, op, seq) + body


def command(obj: dict[str, Any]) -> bytes:
    """A protover-0 op-5 packet holding one JSON command."""
    return packet(5, json.dumps(obj, ensure_ascii=False).encode("utf-8"), ver=0)


def zlib_frame(*objs: dict[str, Any]) -> bytes:
    """Several commands nested in one protover-2 (zlib) packet, as the server batches them."""
    return packet(5, zlib.compress(b"".join(command(o) for o in objs)), ver=2)


def brotli_frame(*objs: dict[str, Any]) -> bytes:
    """Several commands nested in one protover-3 (brotli) packet."""
    return packet(5, brotli.compress(b"".join(command(o) for o in objs)), ver=3)


def unpack(frame: bytes) -> list[tuple[int, int, bytes]]:
    """(operation, protover, body) of each packet the client sent."""
    out = []
    off = 0
    while off + 16 <= len(frame):
        plen, hlen, ver, op, _seq = struct.unpack_from(">IHHII", frame, off)
        out.append((op, ver, frame[off + hlen : off + plen]))
        off += plen
    return out


# ------------------------------------------------------------------------- recorded-shape commands


def danmu_msg(
    text: str,
    *,
    uid: int = 12345678,
    uname: str = "快乐的小熊",
    admin: bool = False,
    medal: tuple[int, str] | None = (21, "小熊团"),
    ts_ms: int | None = None,
) -> dict[str, Any]:
    """A DANMU_MSG as the web danmaku server sends it (trimmed of image and emoticon fields)."""
    ts_ms = ts_ms or int(time.time() * 1000)
    medal_arr: list[Any] = (
        [medal[0], medal[1], "主播名", REAL_ROOM, 1725515, "", 0, 6809855, 1725515, 5414290, 0, 0, OWNER_UID]
        if medal
        else []
    )
    return {
        "cmd": "DANMU_MSG",
        "dm_v2": "",
        "info": [
            [0, 1, 25, 16777215, ts_ms, 1700000000, 0, f"{ts_ms:x}ab", 0, 0, 0, "", 0, "{}", "{}",
             {"mode": 0, "show_player_type": 0, "extra": "{\"send_from_me\":false}"},
             {"activity_identity": "", "activity_source": 0, "not_show": 0}, 0],
            text,
            [uid, uname, 1 if admin else 0, 0, 0, 10000, 1, ""],
            medal_arr,
            [12, 0, 6406234, ">50000", 0],
            ["", ""],
            0,
            0,
            None,
            {"ts": ts_ms // 1000, "ct": "A1B2C3D4"},
            0,
            0,
            None,
            None,
            0,
            105,
            [3],
            None,
        ],
    }  # fmt: skip


def send_gift(
    gift: str = "牛哇牛哇", *, num: int = 2, price: int = 100, coin: str = "gold", uname: str = "送礼的鱼"
) -> dict[str, Any]:
    """SEND_GIFT; ``price`` per item in coins (gold: 1000 = 1 CNY)."""
    return {
        "cmd": "SEND_GIFT",
        "data": {
            "action": "投喂", "batch_combo_id": "", "coin_type": coin, "giftId": 31039, "giftName": gift,
            "giftType": 0, "num": num, "price": price, "total_coin": price * num, "rnd": "1700000000",
            "tid": "1700000000120000", "timestamp": 1700000000, "uid": 23456789, "uname": uname,
            "medal_info": {"medal_level": 3, "medal_name": "小熊团"},
        },
    }  # fmt: skip


def super_chat(message: str, *, price: int = 30, uname: str = "醒目的猫") -> dict[str, Any]:
    """SUPER_CHAT_MESSAGE; ``price`` in CNY."""
    return {
        "cmd": "SUPER_CHAT_MESSAGE",
        "data": {
            "id": 8840001, "uid": 34567890, "price": price, "rate": 1000, "message": message,
            "start_time": 1700000100, "end_time": 1700000160, "time": 60, "ts": 1700000100,
            "user_info": {"uname": uname, "face": "https://i0.hdslb.com/bfs/face/x.jpg", "guard_level": 0},
            "medal_info": {"medal_level": 8, "medal_name": "小熊团"},
        },
    }  # fmt: skip


def interact_word(uname: str = "路过的鹿", msg_type: int = 1) -> dict[str, Any]:
    """INTERACT_WORD: msg_type 1 = entered the room, 2 = followed."""
    return {
        "cmd": "INTERACT_WORD",
        "data": {
            "msg_type": msg_type,
            "uid": 0,
            "uname": uname,
            "timestamp": 1700000000,
            "roomid": REAL_ROOM,
        },
    }


def log_in_notice() -> dict[str, Any]:
    """What the server says to logged-out readers, whose danmaku then carry masked names."""
    return {
        "cmd": "LOG_IN_NOTICE",
        "data": {
            "notice_msg": "为保护用户隐私，未登录无法查看他人昵称",
            "image_url": "https://i0.hdslb.com/bfs/live/x.png",
            "image_width": 36,
            "image_height": 36,
        },
    }


def open_dm(text: str, *, uname: str = "开放平台用户") -> dict[str, Any]:
    """LIVE_OPEN_PLATFORM_DM as the open platform pushes it."""
    return {
        "cmd": "LIVE_OPEN_PLATFORM_DM",
        "data": {
            "room_id": REAL_ROOM, "uid": 0, "open_id": "open-id-1", "uname": uname, "msg": text,
            "msg_id": "open-msg-1", "fans_medal_level": 0, "fans_medal_name": "",
            "fans_medal_wearing_status": False, "guard_level": 0, "timestamp": 1700000000, "uface": "",
            "emoji_img_url": "", "dm_type": 0,
        },
    }  # fmt: skip


# --------------------------------------------------------------------------------------------- server


@dataclass
class FakeBilibili:
    """The fake's knobs and what it saw; ``url`` is set while it runs."""

    url: str = ""
    reject_auth: bool = False
    rate_limit_danmu_info: bool = False
    greeting: list[bytes] = field(default_factory=list)
    """Frames sent right after a successful auth (e.g. LOG_IN_NOTICE)."""
    auths: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    requests: list[tuple[str, dict[str, str], dict[str, str], bytes]] = field(default_factory=list)
    """(path, query, headers, body) of every HTTP request."""
    open_sessions: list[str] = field(default_factory=list)
    open_heartbeats: int = 0
    open_ended: int = 0
    bad_signatures: int = 0
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    transports: list[Any] = field(default_factory=list)
    connected: asyncio.Condition = field(default_factory=asyncio.Condition)
    connections: int = 0

    async def push(self, frame: bytes) -> None:
        """Send one frame to every authenticated client."""
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_bytes(frame)

    async def drop(self) -> None:
        """Cut every client's TCP connection without a closing handshake, as a crashed server would."""
        for transport in self.transports:
            transport.abort()
        self.transports.clear()
        self.sockets.clear()

    async def wait_connections(self, n: int, limit: float = 20.0) -> None:
        """Wait until ``n`` authenticated connections have been made in total."""
        async with self.connected:
            await asyncio.wait_for(self.connected.wait_for(lambda: self.connections >= n), limit)

    # -- HTTP ---------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/x/frontend/finger/spi", self._spi)
        app.router.add_get("/room/v1/Room/room_init", self._room_init)
        app.router.add_get("/x/web-interface/nav", self._nav)
        app.router.add_get("/xlive/web-room/v1/index/getDanmuInfo", self._danmu_info)
        app.router.add_get("/sub", self._ws)
        app.router.add_post("/v2/app/start", self._app_start)
        app.router.add_post("/v2/app/heartbeat", self._app_heartbeat)
        app.router.add_post("/v2/app/end", self._app_end)
        return app

    async def _record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.requests.append((request.path, dict(request.query), dict(request.headers), body))
        return body

    async def _spi(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"code": 0, "data": {"b_3": BUVID, "b_4": "fake-b4"}, "message": "ok"})

    async def _room_init(self, request: web.Request) -> web.Response:
        await self._record(request)
        rid = request.query.get("id", "")
        if rid not in (str(SHORT_ID), str(REAL_ROOM)):
            return web.json_response(
                {"code": 60004, "msg": "直播间不存在", "message": "直播间不存在", "data": {}}
            )
        data = {
            "room_id": REAL_ROOM, "short_id": SHORT_ID, "uid": OWNER_UID, "need_p2p": 0, "is_hidden": False,
            "is_locked": False, "is_portrait": False, "live_status": 1, "hidden_till": 0, "lock_till": 0,
            "encrypted": False, "pwd_verified": False, "live_time": 1700000000, "room_shield": 0, "is_sp": 0,
            "special_type": 0,
        }  # fmt: skip
        return web.json_response({"code": 0, "msg": "ok", "message": "ok", "data": data})

    async def _nav(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {
                "code": -101,
                "message": "账号未登录",
                "ttl": 1,
                "data": {"isLogin": False, "wbi_img": {"img_url": IMG_URL, "sub_url": SUB_URL}},
            }
        )

    @staticmethod
    def _wbi_ok(query: dict[str, str]) -> bool:
        stems = IMG_URL.rsplit("/", 1)[1][:-4] + SUB_URL.rsplit("/", 1)[1][:-4]
        key = "".join(stems[i] for i in MIXIN_ORDER)[:32]
        params = {k: v for k, v in query.items() if k != "w_rid"}
        if "wts" not in params or abs(int(params["wts"]) - time.time()) > 300:
            return False
        expected = hashlib.md5((urllib.parse.urlencode(sorted(params.items())) + key).encode()).hexdigest()
        return hmac.compare_digest(expected, query.get("w_rid", ""))

    async def _danmu_info(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.rate_limit_danmu_info or not self._wbi_ok(dict(request.query)):
            return web.json_response({"code": -352, "message": "-352", "ttl": 1})
        port = request.url.port
        data = {
            "group": "live", "business_id": 0, "refresh_row_factor": 0.125, "refresh_rate": 100,
            "max_delay": 5000, "token": TOKEN,
            "host_list": [{"host": "127.0.0.1", "port": port, "wss_port": port, "ws_port": port}],
        }  # fmt: skip
        return web.json_response({"code": 0, "message": "0", "ttl": 1, "data": data})

    # -- open platform --------------------------------------------------------------------------------------
    def _signature_ok(self, headers: Any, body: bytes) -> bool:
        signed = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-bili-")}
        needed = {
            "x-bili-accesskeyid", "x-bili-content-md5", "x-bili-signature-method", "x-bili-signature-nonce",
            "x-bili-signature-version", "x-bili-timestamp",
        }  # fmt: skip
        if set(signed) != needed or signed["x-bili-accesskeyid"] != ACCESS_KEY_ID:
            return False
        if signed["x-bili-content-md5"] != hashlib.md5(body).hexdigest():
            return False
        if signed["x-bili-signature-method"] != "HMAC-SHA256" or signed["x-bili-signature-version"] != "1.0":
            return False
        if abs(int(signed["x-bili-timestamp"]) - time.time()) > 300:
            return False
        text = "\n".join(f"{k}:{signed[k]}" for k in sorted(signed))
        want = hmac.new(ACCESS_KEY_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, headers.get("Authorization", ""))

    async def _open_checked(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        body = await self._record(request)
        if request.headers.get("Content-Type") != "application/json" or not self._signature_ok(
            request.headers, body
        ):
            self.bad_signatures += 1
            return None, web.json_response({"code": -1, "message": "signature invalid", "request_id": "r1"})
        return json.loads(body), None

    async def _app_start(self, request: web.Request) -> web.Response:
        body, err = await self._open_checked(request)
        if err is not None:
            return err
        assert body is not None
        if body.get("app_id") != APP_ID:
            return web.json_response({"code": 4000, "message": "app_id invalid", "request_id": "r2"})
        if body.get("code") != AUTH_CODE:
            return web.json_response({"code": 7007, "message": "身份码错误", "request_id": "r3"})
        self.open_sessions.append(GAME_ID)
        host = f"ws://127.0.0.1:{request.url.port}/sub"
        data = {
            "game_info": {"game_id": GAME_ID},
            "websocket_info": {"auth_body": OPEN_AUTH_BODY, "wss_link": [host]},
            "anchor_info": {
                "room_id": REAL_ROOM,
                "uname": "主播名",
                "uface": "",
                "uid": OWNER_UID,
                "open_id": "o",
            },
        }
        return web.json_response({"code": 0, "message": "0", "request_id": "r4", "data": data})

    async def _app_heartbeat(self, request: web.Request) -> web.Response:
        body, err = await self._open_checked(request)
        if err is not None:
            return err
        assert body is not None
        self.open_heartbeats += 1
        code = 0 if body.get("game_id") == GAME_ID else 7003
        return web.json_response({"code": code, "message": "0", "request_id": "r5", "data": {}})

    async def _app_end(self, request: web.Request) -> web.Response:
        _body, err = await self._open_checked(request)
        if err is not None:
            return err
        self.open_ended += 1
        return web.json_response({"code": 0, "message": "0", "request_id": "r6", "data": {}})

    # -- danmaku WebSocket --------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive(timeout=10)
        if first.type != WSMsgType.BINARY:
            await ws.close()
            return ws
        op, _ver, body = unpack(first.data)[0]
        auth = json.loads(body)
        self.auths.append(auth)
        ok = op == 7 and not self.reject_auth and self._auth_valid(auth)
        await ws.send_bytes(packet(8, json.dumps({"code": 0 if ok else -101}).encode(), ver=1, seq=1))
        if not ok:
            await ws.close()
            return ws
        self.sockets.append(ws)
        self.transports.append(request.transport)
        async with self.connected:
            self.connections += 1
            self.connected.notify_all()
        for frame in self.greeting:
            await ws.send_bytes(frame)
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            for op, _ver, _body in unpack(msg.data):
                if op == 2:
                    self.heartbeats += 1
                    await ws.send_bytes(packet(3, (1234567).to_bytes(4, "big"), ver=1, seq=1))
        return ws

    @staticmethod
    def _auth_valid(auth: dict[str, Any]) -> bool:
        if auth.get("group") == "open":  # the open platform's opaque auth body, echoed back as given
            return auth.get("key") == "open-key-xyz"
        return (
            auth.get("roomid") == REAL_ROOM
            and auth.get("key") == TOKEN
            and auth.get("protover") in (2, 3)
            and auth.get("platform") == "web"
            and auth.get("type") == 2
            and isinstance(auth.get("uid"), int)
            and isinstance(auth.get("buvid"), str)
        )


async def running(fake: FakeBilibili) -> AsyncIterator[FakeBilibili]:
    """Serve ``fake`` on a free loopback port (used through ``serve``)."""
    async with run_app(fake.app()) as url:
        fake.url = url
        yield fake


def serve(fake: FakeBilibili | None = None) -> Any:
    """``async with serve() as fake:`` runs a FakeBilibili on loopback."""
    import contextlib

    return contextlib.asynccontextmanager(running)(fake or FakeBilibili())
