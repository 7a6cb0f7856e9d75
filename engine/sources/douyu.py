"""Douyu (斗鱼) chat over its public danmaku WebSocket, speaking the STT serialisation.

No maintained Python client exists for Douyu, and the protocol is small, so it is implemented here:

* a packet is ``length`` (4 bytes, little-endian), ``length`` again, message type (2 bytes LE: 689 from
  the client, 690 from the server), encryption 0, reserved 0, then the body and a NUL byte; ``length``
  counts everything after the first length field;
* the body is STT: ``key@=value/`` pairs, with ``@`` written ``@A`` and ``/`` written ``@S``;
* login ``type@=loginreq/roomid@=ROOM/``, then ``type@=joingroup/rid@=ROOM/gid@=-9999/`` (all chat),
  keep-alive ``type@=mrkl/`` every 45 s;
* ``chatmsg`` carries ``nn`` (name), ``txt``, ``uid``, ``cid`` (id) and ``rg`` (4 = room moderator,
  5 = the streamer); ``dgb`` is a gift (its price needs the room's gift list, so only counted);
  ``error`` with a ``code`` means the login was refused.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterator

import aiohttp

from engine.sources.base import SourceError
from engine.sources.connector import AuthFailed, Backoff, Connector, ProtocolError
from engine.types import ChatMessage

log = logging.getLogger(__name__)

PLATFORM = "douyu"
DEFAULT_URL = "wss://danmuproxy.douyu.com:8506/"
HEARTBEAT_SECONDS = 45.0
CLIENT_TYPE = 689
SERVER_TYPE = 690
_HEAD = struct.Struct("<IIHBB")
MAX_PACKET = 1 << 20


def stt_escape(value: str) -> str:
    """Escape one STT value: ``@`` -> ``@A``, ``/`` -> ``@S``."""
    return value.replace("@", "@A").replace("/", "@S")


def stt_unescape(value: str) -> str:
    """Undo ``stt_escape``."""
    return value.replace("@S", "/").replace("@A", "@")


def stt_dumps(fields: dict[str, str]) -> str:
    """A flat STT body: ``key@=value/`` for each field."""
    return "".join(f"{stt_escape(k)}@={stt_escape(v)}/" for k, v in fields.items())


def stt_loads(body: str) -> dict[str, str]:
    """A flat STT body as a dict (nested values stay escaped STT strings, unescaped once)."""
    out: dict[str, str] = {}
    for item in body.split("/"):
        if not item:
            continue
        key, sep, value = item.partition("@=")
        if not sep:
            raise ValueError(f"STT item without '@=': {item[:40]!r}")
        out[stt_unescape(key)] = stt_unescape(value)
    return out


def encode_packet(body: str, msg_type: int = CLIENT_TYPE) -> bytes:
    """One Douyu packet around an STT body."""
    data = body.encode("utf-8") + b"\0"
    length = len(data) + 8
    return _HEAD.pack(length, length, msg_type, 0, 0) + data


def decode_packets(buf: bytearray) -> Iterator[str | ValueError]:
    """Take every complete packet off the front of ``buf``; a bad header empties the buffer."""
    while len(buf) >= 4:
        (length,) = struct.unpack_from("<I", buf, 0)
        if length < 9 or length > MAX_PACKET:
            buf.clear()
            yield ValueError(f"bad packet length {length}")
            return
        if len(buf) < 4 + length:
            return
        _, length2, _msg_type, _enc, _res = _HEAD.unpack_from(buf, 0)
        raw = bytes(buf[12 : 4 + length])
        del buf[: 4 + length]
        if length2 != length:
            yield ValueError(f"packet lengths disagree ({length} != {length2})")
            continue
        try:
            yield raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError as e:
            yield ValueError(f"body is not UTF-8 ({e})")


class DouyuSource(Connector):
    """Reads one Douyu room's chat into one moodcast room."""

    platform = PLATFORM

    def __init__(
        self,
        channel: str | int,
        *,
        room: str = "douyu",
        url: str = "",
        heartbeat: float = HEARTBEAT_SECONDS,
        backoff: Backoff | None = None,
        name: str = "",
    ) -> None:
        rid = str(channel).strip()
        if not rid.isdigit():
            raise SourceError(f"douyu channel must be a numeric room id, got {channel!r}")
        super().__init__(name=name or f"douyu:{rid}", room=room, backoff=backoff)
        self.room_id = rid
        self.url = url or DEFAULT_URL
        self.heartbeat = heartbeat if heartbeat > 0 else HEARTBEAT_SECONDS

    def _describe(self) -> str:
        return f"douyu room {self.room_id}"

    async def _session(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.ws_connect(self.url, max_msg_size=MAX_PACKET * 4) as ws,
        ):
            await ws.send_bytes(encode_packet(stt_dumps({"type": "loginreq", "roomid": self.room_id})))
            beat = asyncio.create_task(self._heartbeats(ws), name=f"{self.name}:heartbeat")
            buf = bytearray()
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        buf += msg.data
                        for item in decode_packets(buf):
                            if isinstance(item, ValueError):
                                self._bad_frame("packet", item)
                            else:
                                await self._on_body(ws, item)
                    elif msg.type == aiohttp.WSMsgType.ERROR:
                        raise ConnectionError(f"websocket error: {ws.exception()}")
            finally:
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)

    async def _heartbeats(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.heartbeat)
            await ws.send_bytes(encode_packet(stt_dumps({"type": "mrkl"})))

    async def _on_body(self, ws: aiohttp.ClientWebSocketResponse, body: str) -> None:
        try:
            fields = stt_loads(body)
        except ValueError as e:
            self._bad_frame("STT body", e)
            return
        kind = fields.get("type", "")
        if kind == "loginres":
            await ws.send_bytes(
                encode_packet(stt_dumps({"type": "joingroup", "rid": self.room_id, "gid": "-9999"}))
            )
            self._good()
            self._connected(f"joined douyu room {self.room_id}")
        elif kind == "chatmsg":
            text, nick = fields.get("txt", ""), fields.get("nn", "")
            if not text:
                self._bad_frame("chatmsg", "no txt")
                return
            ts_raw = fields.get("cst", "")
            self._deliver(
                ChatMessage.create(
                    room=self.room,
                    user=nick or fields.get("uid", ""),
                    text=text,
                    ts=int(ts_raw) / 1000.0 if ts_raw.isdigit() else None,
                    platform=PLATFORM,
                    is_moderator=fields.get("rg") in ("4", "5"),
                    msg_id=fields.get("cid", ""),
                )
            )
        elif kind == "dgb":
            self._bump("gifts")
            self._good()
        elif kind == "uenter":
            self._bump("entries")
            self._good()
        elif kind == "error":
            raise AuthFailed(f"douyu refused the login (code {fields.get('code', '?')})")
        elif kind == "loginreq":
            raise ProtocolError("server echoed our login: not a Douyu danmaku server")
        else:
            self._good()
