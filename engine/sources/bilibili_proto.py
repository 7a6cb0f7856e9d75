"""Bilibili live danmaku wire protocol: packets, bodies and commands, with no I/O.

Every WebSocket binary frame holds one or more packets. A packet is a 16-byte big-endian header
(packet length, header length = 16, protocol version, operation, sequence) and a body:

* protover 0: JSON; protover 1: a 4-byte popularity count (heartbeat reply) or JSON (auth reply);
* protover 2: a zlib stream, protover 3: a brotli stream, each holding further packets.

Operations: 2 heartbeat, 3 heartbeat reply, 5 command (JSON with ``cmd``), 7 auth, 8 auth reply.
The server (both the web protocol and the open platform) and ``tests/fake_bilibili.py`` use this module's
encoder and decoder, so a test can only pass when both ends agree byte for byte with this spec.
"""

from __future__ import annotations

import importlib
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HEADER = struct.Struct(">IHHII")
HEADER_LEN = HEADER.size  # 16

OP_HEARTBEAT = 2
OP_HEARTBEAT_REPLY = 3
OP_COMMAND = 5
OP_AUTH = 7
OP_AUTH_REPLY = 8

VER_JSON = 0
VER_INT = 1
VER_ZLIB = 2
VER_BROTLI = 3

MAX_INFLATED = 8 << 20
"""A compressed body inflating past this is refused: no real batch of danmaku comes near it."""
MAX_NESTING = 2


class PacketError(ValueError):
    """A frame or body that does not follow the protocol; the rest of that frame is skipped."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded packet: its operation, protocol version and (decompressed, if nested) body."""

    op: int
    ver: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON (commands and auth replies); PacketError if it is not."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise PacketError(f"op {self.op}: body is not JSON ({e})") from None

    def popularity(self) -> int:
        """The heartbeat reply's popularity count."""
        if len(self.body) < 4:
            raise PacketError(f"heartbeat reply body is {len(self.body)} bytes, expected 4")
        return int.from_bytes(self.body[:4], "big")


def encode(op: int, body: bytes | str | dict[str, Any] = b"", ver: int = VER_INT, seq: int = 1) -> bytes:
    """One packet. Dict bodies are JSON; the client sends protover 1 (blivedm and the web client do)."""
    if isinstance(body, dict):
        body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    return HEADER.pack(HEADER_LEN + len(body), HEADER_LEN, ver, op, seq) + body


def compress(packets: bytes, ver: int) -> bytes:
    """Several concatenated packets wrapped in one protover 2 (zlib) or 3 (brotli) command packet."""
    if ver == VER_ZLIB:
        return encode(OP_COMMAND, zlib.compress(packets), ver=VER_ZLIB, seq=0)
    if ver == VER_BROTLI:
        brotli = _brotli()
        if brotli is None:
            raise PacketError("brotli is not installed")
        return encode(OP_COMMAND, brotli.compress(packets), ver=VER_BROTLI, seq=0)
    raise ValueError(f"not a compressed protocol version: {ver}")


def decode(frame: bytes, _depth: int = 0) -> Iterator[Packet | PacketError]:
    """The packets of one frame, nested bodies expanded; a PacketError is yielded, not raised.

    A bad header ends the frame (the packet boundaries after it cannot be trusted); a bad compressed
    body skips only that packet.
    """
    view = memoryview(frame)
    offset = 0
    while offset < len(view):
        if len(view) - offset < HEADER_LEN:
            yield PacketError(f"{len(view) - offset} trailing bytes, shorter than a header")
            return
        plen, hlen, ver, op, _seq = HEADER.unpack_from(view, offset)
        if hlen < HEADER_LEN or plen < hlen or offset + plen > len(view):
            yield PacketError(
                f"bad header at byte {offset}: packet length {plen}, header length {hlen}, "
                f"{len(view) - offset} bytes left"
            )
            return
        body = bytes(view[offset + hlen : offset + plen])
        offset += plen
        if op == OP_COMMAND and ver in (VER_ZLIB, VER_BROTLI):
            if _depth >= MAX_NESTING:
                yield PacketError("compressed packets nested too deeply")
                continue
            try:
                inner = _inflate(body, ver)
            except PacketError as e:
                yield e
                continue
            yield from decode(inner, _depth + 1)
            continue
        yield Packet(op, ver, body)


def _inflate(body: bytes, ver: int) -> bytes:
    if ver == VER_ZLIB:
        d = zlib.decompressobj()
        try:
            out = d.decompress(body, MAX_INFLATED)
        except zlib.error as e:
            raise PacketError(f"zlib body does not inflate ({e})") from None
        if d.unconsumed_tail:
            raise PacketError(f"zlib body inflates past {MAX_INFLATED} bytes")
        return out
    brotli = _brotli()
    if brotli is None:
        raise PacketError(
            "brotli body received but brotli is not installed (pip install 'moodcast[bilibili]')"
        )
    try:
        out = brotli.decompress(body)
    except brotli.error as e:
        raise PacketError(f"brotli body does not decompress ({e})") from None
    if len(out) > MAX_INFLATED:
        raise PacketError(f"brotli body inflates past {MAX_INFLATED} bytes")
    return bytes(out)


def _brotli() -> Any:
    try:
        return importlib.import_module("brotli")
    except ImportError:
        return None


def brotli_available() -> bool:
    """Whether protover 3 can be asked for; without brotli the client asks for zlib (protover 2)."""
    return _brotli() is not None


def command_name(obj: Any) -> str:
    """The command's name; old servers append options (``DANMU_MSG:4:0:2:2:2:0``)."""
    if not isinstance(obj, dict):
        raise PacketError("command is not a JSON object")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        raise PacketError("command has no 'cmd'")
    return cmd.split(":", 1)[0]


# -------------------------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Danmaku:
    """One chat line, from the web ``DANMU_MSG`` or the open platform's ``LIVE_OPEN_PLATFORM_DM``."""

    uid: int
    uname: str
    text: str
    ts: float | None
    is_admin: bool
    medal: str
    medal_level: int
    msg_id: str

    @classmethod
    def from_web(cls, obj: dict[str, Any]) -> Danmaku:
        """Parse ``DANMU_MSG``: ``info[0]`` meta (``[4]`` ms timestamp, ``[7]`` id), ``info[1]`` text,
        ``info[2]`` ``[uid, uname, is_admin, ...]``, ``info[3]`` medal ``[level, name, ...]`` or ``[]``."""
        info = obj.get("info")
        if not isinstance(info, list) or len(info) < 3:
            raise PacketError("DANMU_MSG without an info array")
        meta, text, user = info[0], info[1], info[2]
        if not isinstance(text, str) or not isinstance(user, list) or len(user) < 3:
            raise PacketError("DANMU_MSG info has no text or user")
        uid, uname, admin = user[0], user[1], user[2]
        if not isinstance(uid, int) or not isinstance(uname, str):
            raise PacketError("DANMU_MSG user is not [uid, name, ...]")
        ts: float | None = None
        msg_id = ""
        if isinstance(meta, list):
            if len(meta) > 4 and isinstance(meta[4], (int, float)) and meta[4] > 0:
                ts = float(meta[4]) / 1000.0
            if len(meta) > 7 and isinstance(meta[7], str):
                msg_id = meta[7]
        medal, level = "", 0
        if len(info) > 3 and isinstance(info[3], list) and len(info[3]) >= 2:
            lv, name = info[3][0], info[3][1]
            medal = name if isinstance(name, str) else ""
            level = lv if isinstance(lv, int) else 0
        return cls(uid, uname, text, ts, admin == 1, medal, level, msg_id)

    @classmethod
    def from_open(cls, data: dict[str, Any]) -> Danmaku:
        """Parse the open platform's ``LIVE_OPEN_PLATFORM_DM`` data."""
        text, uname = data.get("msg"), data.get("uname")
        if not isinstance(text, str) or not isinstance(uname, str):
            raise PacketError("LIVE_OPEN_PLATFORM_DM without msg or uname")
        ts = data.get("timestamp")
        uid = data.get("uid", 0)
        return cls(
            uid if isinstance(uid, int) else 0,
            uname,
            text,
            float(ts) if isinstance(ts, (int, float)) and ts > 0 else None,
            bool(data.get("is_admin", False)),
            str(data.get("fans_medal_name", "") or ""),
            int(data.get("fans_medal_level", 0) or 0),
            str(data.get("msg_id", "") or data.get("open_id", "")),
        )


@dataclass(frozen=True, slots=True)
class Gift:
    """A gift, a super chat or a guard purchase, valued in CNY (0 for free silver-coin gifts)."""

    uid: int
    uname: str
    text: str
    value_cny: float
    ts: float | None
    msg_id: str
    super_chat: bool


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def _data(obj: dict[str, Any], cmd: str) -> dict[str, Any]:
    data = obj.get("data")
    if not isinstance(data, dict):
        raise PacketError(f"{cmd} without a data object")
    return data


def gift_from_web(obj: dict[str, Any]) -> Gift:
    """``SEND_GIFT``: gold-coin gifts are paid (1000 coins = 1 CNY); silver-coin gifts are free."""
    data = _data(obj, "SEND_GIFT")
    name, uname = data.get("giftName"), data.get("uname")
    if not isinstance(name, str) or not isinstance(uname, str):
        raise PacketError("SEND_GIFT without giftName or uname")
    num = _int(data.get("num")) or 1
    total = _num(data.get("total_coin")) or _num(data.get("price")) * num
    value = total / 1000.0 if data.get("coin_type") == "gold" else 0.0
    action = data.get("action") if isinstance(data.get("action"), str) else "投喂"
    ts = _num(data.get("timestamp")) or None
    return Gift(
        _int(data.get("uid")), uname, f"{action} {name} x{num}", value, ts, str(data.get("tid", "")), False
    )


def super_chat_from_web(obj: dict[str, Any]) -> Gift:
    """``SUPER_CHAT_MESSAGE``: a paid, pinned message; ``price`` is in CNY."""
    data = _data(obj, "SUPER_CHAT_MESSAGE")
    text = data.get("message")
    user = data.get("user_info")
    uname = user.get("uname") if isinstance(user, dict) else None
    if not isinstance(text, str) or not isinstance(uname, str):
        raise PacketError("SUPER_CHAT_MESSAGE without message or user_info.uname")
    ts = _num(data.get("start_time")) or _num(data.get("ts")) or None
    return Gift(
        _int(data.get("uid")), uname, text, _num(data.get("price")), ts, str(data.get("id", "")), True
    )


def gift_from_open(data: dict[str, Any]) -> Gift:
    """``LIVE_OPEN_PLATFORM_SEND_GIFT``: ``price`` per item in 1/1000 CNY; ``paid`` false = free gift."""
    name, uname = data.get("gift_name"), data.get("uname")
    if not isinstance(name, str) or not isinstance(uname, str):
        raise PacketError("LIVE_OPEN_PLATFORM_SEND_GIFT without gift_name or uname")
    num = _int(data.get("gift_num")) or 1
    unit = _num(data.get("r_price")) or _num(data.get("price"))
    value = unit * num / 1000.0 if data.get("paid") else 0.0
    ts = _num(data.get("timestamp")) or None
    return Gift(
        _int(data.get("uid")), uname, f"投喂 {name} x{num}", value, ts, str(data.get("msg_id", "")), False
    )


def super_chat_from_open(data: dict[str, Any]) -> Gift:
    """``LIVE_OPEN_PLATFORM_SUPER_CHAT``: ``rmb`` is the price in CNY."""
    text, uname = data.get("message"), data.get("uname")
    if not isinstance(text, str) or not isinstance(uname, str):
        raise PacketError("LIVE_OPEN_PLATFORM_SUPER_CHAT without message or uname")
    ts = _num(data.get("timestamp")) or None
    return Gift(
        _int(data.get("uid")), uname, text, _num(data.get("rmb")), ts, str(data.get("msg_id", "")), True
    )


def looks_masked(uname: str, uid: int) -> bool:
    """Bilibili shows logged-out viewers names like ``张***`` with uid 0."""
    return uid == 0 and "***" in uname
