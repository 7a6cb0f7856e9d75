"""Bilibili live chat: the web room-id protocol and the official open platform (主播身份码).

Web protocol (anyone can read any room; names are masked unless a login cookie is given):

1. ``GET /x/frontend/finger/spi`` (api.bilibili.com) for a ``buvid3`` device id, unless the cookie has one;
2. ``GET /room/v1/Room/room_init?id=`` (api.live.bilibili.com): the real room id behind a short id;
3. ``GET /x/web-interface/nav`` for the WBI key, then ``GET /xlive/web-room/v1/index/getDanmuInfo``
   signed with it (``wts``, ``w_rid``): the connection token and the danmaku host list;
4. WebSocket ``wss://host:wss_port/sub``; auth packet ``{uid, roomid, protover: 3, platform: "web",
   type: 2, key, buvid}``, reply op 8 ``{"code": 0}``; heartbeat every 30 s, reply op 3 = popularity.

Open platform (the streamer gives their 身份码; the app key and secret identify your registered app):
``POST /v2/app/start`` ``{code, app_id}`` signed with HMAC-SHA256 headers returns the WebSocket links and
the auth body to send as-is; ``POST /v2/app/heartbeat`` every 20 s keeps the session; ``/v2/app/end``
closes it. The WebSocket protocol is the same; its commands are ``LIVE_OPEN_PLATFORM_*``.

Both reconnect with backoff and jitter (engine/sources/connector.py); each attempt starts from step 1
so a stale token or an ended open-platform session is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp

from engine.sources import bilibili_proto as bp
from engine.sources.base import SourceError
from engine.sources.connector import AuthFailed, Backoff, Connector, ProtocolError, RateLimited
from engine.types import ChatMessage

log = logging.getLogger(__name__)

PLATFORM = "bilibili"
LIVE_API = "https://api.live.bilibili.com"
MAIN_API = "https://api.bilibili.com"
OPEN_API = "https://live-open.biliapi.com"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
HEARTBEAT_SECONDS = 30.0
APP_HEARTBEAT_SECONDS = 20.0
AUTH_TIMEOUT = 10.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15)
MAX_FRAME = 16 << 20

# The WBI mixin permutation published with Bilibili's web API (bilibili-API-collect, blivedm wbi.py).
_WBI_PERMUTATION = (
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35,
    27, 43, 5, 49, 33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13,
    37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4,
    22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52,
)  # fmt: skip

RATE_LIMIT_CODES = {-352, -412, -509, 412}
"""Risk control / request-frequency refusals: shown as rate_limited, retried after a longer wait."""
ROOM_NOT_FOUND_CODES = {60004, 19002000}


@dataclass(frozen=True, slots=True)
class OpenPlatformAuth:
    """Credentials for the open platform; built from environment variables, never from config.toml."""

    code: str
    app_id: int
    access_key_id: str
    access_key_secret: str


@dataclass(frozen=True, slots=True)
class _Route:
    """Where and how to connect this time."""

    urls: tuple[str, ...]
    auth_body: bytes
    real_room: int
    owner_uid: int
    game_id: str = ""


# ------------------------------------------------------------------------------------------ HTTP bits


def wbi_mixin_key(img_url: str, sub_url: str) -> str:
    """The WBI signing key from the nav API's two image URLs (their file stems, permuted, 32 chars)."""
    stem = img_url.rsplit("/", 1)[-1].split(".", 1)[0] + sub_url.rsplit("/", 1)[-1].split(".", 1)[0]
    return "".join(stem[i] for i in _WBI_PERMUTATION if i < len(stem))[:32]


def wbi_sign(params: dict[str, Any], key: str, now: float | None = None) -> dict[str, str]:
    """``params`` plus ``wts`` and ``w_rid`` = md5(sorted, url-encoded query with ``!'()*`` removed + key)."""
    out = {k: "".join(c for c in str(v) if c not in "!'()*") for k, v in params.items()}
    out["wts"] = str(int(time.time() if now is None else now))
    query = urllib.parse.urlencode(sorted(out.items()))
    out["w_rid"] = hashlib.md5((query + key).encode("utf-8")).hexdigest()
    return out


def open_platform_headers(body: bytes, key_id: str, secret: str, *, nonce: str, ts: int) -> dict[str, str]:
    """The open platform's signature headers: HMAC-SHA256 over the sorted ``x-bili-*`` headers."""
    signed = {
        "x-bili-accesskeyid": key_id,
        "x-bili-content-md5": hashlib.md5(body).hexdigest(),
        "x-bili-signature-method": "HMAC-SHA256",
        "x-bili-signature-nonce": nonce,
        "x-bili-signature-version": "1.0",
        "x-bili-timestamp": str(ts),
    }
    text = "\n".join(f"{k}:{signed[k]}" for k in sorted(signed))
    signature = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()
    return {
        **signed,
        "Authorization": signature,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def _cookie_value(cookie: str, name: str) -> str:
    for part in cookie.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return ""


async def _get_json(http: aiohttp.ClientSession, url: str, what: str, **kw: Any) -> dict[str, Any]:
    async with http.get(url, **kw) as resp:
        return await _json_reply(resp, what)


async def _json_reply(resp: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    if resp.status in (412, 429):
        raise RateLimited(f"{what}: HTTP {resp.status}", retry_after=120.0)
    if resp.status != 200:
        raise ConnectionError(f"{what}: HTTP {resp.status}")
    try:
        data = await resp.json(content_type=None)
    except (json.JSONDecodeError, UnicodeDecodeError, aiohttp.ContentTypeError) as e:
        raise ProtocolError(f"{what}: reply is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: reply is not a JSON object")
    return data


def _code(data: dict[str, Any]) -> int:
    code = data.get("code", 0)
    return code if isinstance(code, int) else -1


# ------------------------------------------------------------------------------------------- the source


class BilibiliSource(Connector):
    """Reads one Bilibili live room into one moodcast room (web protocol, or open platform when given)."""

    platform = PLATFORM

    def __init__(
        self,
        channel: str | int = "",
        *,
        room: str = "bilibili",
        url: str = "",
        cookie: str = "",
        open_auth: OpenPlatformAuth | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        app_heartbeat: float = APP_HEARTBEAT_SECONDS,
        backoff: Backoff | None = None,
        name: str = "",
    ) -> None:
        if open_auth is None:
            try:
                self.room_id = int(str(channel).strip())
            except ValueError:
                raise SourceError(f"bilibili channel must be a room id (a number), got {channel!r}") from None
            if self.room_id <= 0:
                raise SourceError("bilibili channel must be a positive room id")
        else:
            self.room_id = 0
        super().__init__(name=name or f"bilibili:{channel or 'open-platform'}", room=room, backoff=backoff)
        base = url.rstrip("/")
        self._live_api = base or LIVE_API
        self._main_api = base or MAIN_API
        self._open_api = base or OPEN_API
        # A plain-HTTP API base means a local fake or proxy, which serves plain WebSockets too.
        self._ws_scheme = "ws" if base.startswith("http://") else "wss"
        self._cookie = cookie
        self._open = open_auth
        self.heartbeat = heartbeat if heartbeat > 0 else HEARTBEAT_SECONDS
        self.app_heartbeat = app_heartbeat
        self._attempt = 0
        self._owner_uid = 0

    def _describe(self) -> str:
        if self._open is not None:
            return f"bilibili open platform, app {self._open.app_id}"
        return f"bilibili room {self.room_id}"

    # -- one connection ---------------------------------------------------------------------------------
    async def _session(self) -> None:
        headers = {"User-Agent": USER_AGENT}
        if self._cookie:
            headers["Cookie"] = self._cookie
        async with aiohttp.ClientSession(headers=headers, timeout=HTTP_TIMEOUT) as http:
            route = await (self._start_open(http) if self._open else self._init_web(http))
            self._owner_uid = route.owner_uid
            try:
                await self._read(http, route)
            finally:
                if route.game_id:
                    await self._end_open(http, route.game_id)

    async def _read(self, http: aiohttp.ClientSession, route: _Route) -> None:
        url = route.urls[self._attempt % len(route.urls)]
        self._attempt += 1
        async with http.ws_connect(url, autoping=True, max_msg_size=MAX_FRAME) as ws:
            await ws.send_bytes(bp.encode(bp.OP_AUTH, route.auth_body))
            authed = asyncio.Event()
            tasks = [asyncio.create_task(self._heartbeats(ws, authed), name=f"{self.name}:heartbeat")]
            if route.game_id:
                tasks.append(
                    asyncio.create_task(
                        self._app_heartbeats(http, ws, route.game_id), name=f"{self.name}:app"
                    )
                )
            try:
                await self._read_frames(ws, authed, route)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_frames(
        self, ws: aiohttp.ClientWebSocketResponse, authed: asyncio.Event, route: _Route
    ) -> None:
        deadline = asyncio.get_running_loop().time() + AUTH_TIMEOUT
        while True:
            if authed.is_set():
                # Heartbeat replies arrive every interval, so silence this long means a dead connection.
                timeout = self.heartbeat * 3 + 5
            else:
                timeout = max(0.1, deadline - asyncio.get_running_loop().time())
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                if authed.is_set():
                    raise ProtocolError(f"nothing received for {timeout:.0f} s") from None
                raise ProtocolError(f"no auth reply within {AUTH_TIMEOUT:.0f} s") from None
            if msg.type == aiohttp.WSMsgType.BINARY:
                self._on_frame(msg.data, authed, route)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self._bad_frame("frame", "text frame on a binary protocol")
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"websocket error: {ws.exception()}")

    async def _heartbeats(self, ws: aiohttp.ClientWebSocketResponse, authed: asyncio.Event) -> None:
        await authed.wait()
        while not ws.closed:
            await ws.send_bytes(bp.encode(bp.OP_HEARTBEAT, b"{}"))
            await asyncio.sleep(self.heartbeat)

    # -- frames and commands ----------------------------------------------------------------------------
    def _on_frame(self, frame: bytes, authed: asyncio.Event, route: _Route) -> None:
        """Synchronous, only enqueues: one bad packet is counted and skipped, never raised into the loop."""
        for item in bp.decode(frame):
            if isinstance(item, bp.PacketError):
                self._bad_frame("frame", item)
                continue
            try:
                self._on_packet(item, authed, route)
            except bp.PacketError as e:
                self._bad_frame("packet", e)
            except AuthFailed:
                raise
            except Exception as e:  # a handler bug must not stop the read loop (ARCHITECTURE item 6)
                log.exception("%s: error handling op %d", self.name, item.op)
                self._bad_frame("packet", e)

    def _on_packet(self, p: bp.Packet, authed: asyncio.Event, route: _Route) -> None:
        if p.op == bp.OP_AUTH_REPLY:
            reply = p.json()
            code = reply.get("code") if isinstance(reply, dict) else None
            if code != 0:
                raise AuthFailed(f"danmaku server refused the auth packet (code {code})")
            authed.set()
            self._good()
            masked = " (names masked: no login cookie)" if self._state.names_masked else ""
            self._connected(f"connected to room {route.real_room}{masked}")
        elif p.op == bp.OP_HEARTBEAT_REPLY:
            self._gauge("popularity", p.popularity())
            self._good()
        elif p.op == bp.OP_COMMAND:
            obj = p.json()
            self._on_command(bp.command_name(obj), obj)
        else:
            raise bp.PacketError(f"unexpected operation {p.op}")

    def _on_command(self, cmd: str, obj: dict[str, Any]) -> None:
        if cmd == "DANMU_MSG":
            d = bp.Danmaku.from_web(obj)
            if bp.looks_masked(d.uname, d.uid):
                self._names_masked("danmaku names arrive masked")
            self._chat(d)
        elif cmd == "SEND_GIFT":
            self._gift(bp.gift_from_web(obj))
        elif cmd == "SUPER_CHAT_MESSAGE":
            self._gift(bp.super_chat_from_web(obj))
        elif cmd in (
            "INTERACT_WORD",
            "INTERACT_WORD_V2",
            "ENTRY_EFFECT",
            "LIVE_OPEN_PLATFORM_LIVE_ROOM_ENTER",
        ):
            self._bump("entries")
            self._good()
        elif cmd == "LOG_IN_NOTICE":
            data = obj.get("data")
            notice = data.get("notice_msg", "") if isinstance(data, dict) else ""
            self._names_masked(str(notice) or "LOG_IN_NOTICE")
        elif cmd == "LIVE_OPEN_PLATFORM_DM":
            self._chat(bp.Danmaku.from_open(_open_data(obj, cmd)))
        elif cmd == "LIVE_OPEN_PLATFORM_SEND_GIFT":
            self._gift(bp.gift_from_open(_open_data(obj, cmd)))
        elif cmd == "LIVE_OPEN_PLATFORM_SUPER_CHAT":
            self._gift(bp.super_chat_from_open(_open_data(obj, cmd)))
        elif cmd == "LIVE_OPEN_PLATFORM_INTERACTION_END":
            raise ConnectionError("open platform session ended by Bilibili")
        else:
            self._bump("other_commands")
            self._good()

    def _names_masked(self, why: str) -> None:
        st = self._state
        if not st.names_masked:
            st.names_masked = True
            log.warning(
                "%s: Bilibili is masking viewers' names (%s); set cookie_env to a logged-in cookie "
                "so per-user flood control works",
                self.name,
                why,
            )
            if st.status == "connected":
                st.detail += " (names masked: no login cookie)"

    def _chat(self, d: bp.Danmaku) -> None:
        is_staff = d.is_admin or (self._owner_uid != 0 and d.uid == self._owner_uid)
        self._deliver(
            ChatMessage.create(
                room=self.room,
                user=d.uname,
                text=d.text,
                ts=d.ts,
                platform=PLATFORM,
                is_moderator=is_staff,
                msg_id=d.msg_id,
            )
        )

    def _gift(self, g: bp.Gift) -> None:
        self._bump("super_chats" if g.super_chat else "gifts")
        if g.value_cny <= 0:
            # Free gifts (silver coins, 小心心) arrive by the hundred and say little: counted, not emitted.
            self._good()
            return
        self._bump("gift_value_cny", g.value_cny)
        self._deliver(
            ChatMessage.create(
                room=self.room,
                user=g.uname,
                text=g.text,
                ts=g.ts,
                platform=PLATFORM,
                gift_value=g.value_cny,
                msg_id=g.msg_id,
            )
        )

    # -- web protocol setup -----------------------------------------------------------------------------
    async def _init_web(self, http: aiohttp.ClientSession) -> _Route:
        buvid = _cookie_value(self._cookie, "buvid3") or await self._buvid(http)
        uid_text = _cookie_value(self._cookie, "DedeUserID")
        uid = int(uid_text) if uid_text.isdigit() else 0
        if uid == 0:
            self._state.names_masked = True  # Bilibili masks names for logged-out readers
        init = await _get_json(
            http, f"{self._live_api}/room/v1/Room/room_init", "room_init", params={"id": str(self.room_id)}
        )
        code = _code(init)
        if code in ROOM_NOT_FOUND_CODES:
            raise SourceError(f"bilibili room {self.room_id} does not exist (code {code}); check channel")
        if code in RATE_LIMIT_CODES:
            raise RateLimited(f"room_init refused (code {code})", retry_after=120.0)
        data = init.get("data")
        if code != 0 or not isinstance(data, dict) or not isinstance(data.get("room_id"), int):
            raise ProtocolError(f"room_init failed (code {code}: {init.get('message', init.get('msg', ''))})")
        real_room, owner = int(data["room_id"]), int(data.get("uid", 0) or 0)
        params = await self._wbi_signed(http, {"id": real_room, "type": 0})
        info = await _get_json(
            http, f"{self._live_api}/xlive/web-room/v1/index/getDanmuInfo", "getDanmuInfo", params=params
        )
        code = _code(info)
        if code in RATE_LIMIT_CODES:
            raise RateLimited(f"getDanmuInfo refused by risk control (code {code})", retry_after=120.0)
        if code == -101:
            raise AuthFailed("getDanmuInfo: the login cookie is not accepted (code -101); refresh cookie_env")
        data = info.get("data")
        if code != 0 or not isinstance(data, dict):
            raise ProtocolError(f"getDanmuInfo failed (code {code}: {info.get('message', '')})")
        hosts = data.get("host_list")
        token = data.get("token")
        if not isinstance(hosts, list) or not hosts or not isinstance(token, str):
            raise ProtocolError("getDanmuInfo returned no host_list or token")
        urls = []
        for h in hosts:
            if isinstance(h, dict) and isinstance(h.get("host"), str):
                port = h.get("wss_port" if self._ws_scheme == "wss" else "ws_port")
                urls.append(f"{self._ws_scheme}://{h['host']}:{port}/sub")
        if not urls:
            raise ProtocolError("getDanmuInfo host_list has no usable host")
        auth = {
            "uid": uid,
            "roomid": real_room,
            # Brotli is optional: without it the server is asked for zlib bodies, which it also sends.
            "protover": bp.VER_BROTLI if bp.brotli_available() else bp.VER_ZLIB,
            "platform": "web",
            "type": 2,
            "key": token,
            "buvid": buvid,
        }
        body = json.dumps(auth, separators=(",", ":")).encode("utf-8")
        return _Route(tuple(urls), body, real_room, owner)

    async def _buvid(self, http: aiohttp.ClientSession) -> str:
        try:
            spi = await _get_json(http, f"{self._main_api}/x/frontend/finger/spi", "finger/spi")
        except ProtocolError as e:
            log.info("%s: no buvid (%s); connecting without one", self.name, e)
            return ""
        data = spi.get("data")
        return str(data.get("b_3", "")) if isinstance(data, dict) else ""

    async def _wbi_signed(self, http: aiohttp.ClientSession, params: dict[str, Any]) -> dict[str, Any]:
        nav = await _get_json(http, f"{self._main_api}/x/web-interface/nav", "nav")
        data = nav.get("data")
        img = data.get("wbi_img") if isinstance(data, dict) else None
        if not isinstance(img, dict) or not img.get("img_url") or not img.get("sub_url"):
            # Unsigned requests still work for some rooms; risk control answers -352 if not.
            log.info("%s: nav returned no WBI key; requesting getDanmuInfo unsigned", self.name)
            return params
        return wbi_sign(params, wbi_mixin_key(str(img["img_url"]), str(img["sub_url"])))

    # -- open platform ----------------------------------------------------------------------------------
    async def _open_post(
        self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        assert self._open is not None
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = open_platform_headers(
            raw,
            self._open.access_key_id,
            self._open.access_key_secret,
            nonce=str(random.randint(1, 2**31)),
            ts=int(time.time()),
        )
        async with http.post(f"{self._open_api}{path}", data=raw, headers=headers) as resp:
            return await _json_reply(resp, path)

    async def _start_open(self, http: aiohttp.ClientSession) -> _Route:
        assert self._open is not None
        reply = await self._open_post(
            http, "/v2/app/start", {"code": self._open.code, "app_id": self._open.app_id}
        )
        code = _code(reply)
        if code != 0:
            # Bad 身份码, bad signature, app not approved, ...: all need a person; the message says which.
            raise AuthFailed(f"open platform app start refused (code {code}: {reply.get('message', '')})")
        data = reply.get("data")
        try:
            assert isinstance(data, dict)
            ws_info, game, anchor = data["websocket_info"], data["game_info"], data["anchor_info"]
            links = tuple(str(u) for u in ws_info["wss_link"])
            auth_body = str(ws_info["auth_body"]).encode("utf-8")
            real_room, owner = int(anchor["room_id"]), int(anchor.get("uid", 0) or 0)
            game_id = str(game.get("game_id", ""))
        except (AssertionError, KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"open platform app start reply lacks {e}") from None
        if not links:
            raise ProtocolError("open platform returned no wss_link")
        self._state.names_masked = False  # the open platform sends real names
        return _Route(links, auth_body, real_room, owner, game_id)

    async def _app_heartbeats(
        self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, game_id: str
    ) -> None:
        while True:
            await asyncio.sleep(self.app_heartbeat)
            try:
                reply = await self._open_post(http, "/v2/app/heartbeat", {"game_id": game_id})
                code = _code(reply)
            except (TimeoutError, OSError, ValueError) as e:
                log.warning("%s: app heartbeat failed (%s)", self.name, e)
                continue
            if code != 0:
                # The session is gone (e.g. 7003): close, and the reconnect loop starts a new one.
                log.warning("%s: app heartbeat refused (code %s); restarting the session", self.name, code)
                await ws.close()
                return

    async def _end_open(self, http: aiohttp.ClientSession, game_id: str) -> None:
        assert self._open is not None
        # Ending the session lets the streamer's room be opened again at once (Bilibili holds it ~60 s).
        with contextlib.suppress(OSError, asyncio.TimeoutError, ValueError):
            await asyncio.wait_for(
                self._open_post(http, "/v2/app/end", {"app_id": self._open.app_id, "game_id": game_id}), 5.0
            )


def _open_data(obj: dict[str, Any], cmd: str) -> dict[str, Any]:
    data = obj.get("data")
    if not isinstance(data, dict):
        raise bp.PacketError(f"{cmd} without a data object")
    return data
