"""Where the bot's lines go: Twitch-style IRC, Bilibili's send-danmaku API, a webhook, the console.

A sender sends one line to one room or raises ``SendError``; retries, rate limits and reporting live in
the bot's outbox (bot/core.py), so every sender gets them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Protocol, TextIO

import aiohttp

from bot.irc import IrcClient, IrcMessage, IrcSettings, channel_for_room, room_for_channel, safe_text

log = logging.getLogger(__name__)


class SendError(RuntimeError):
    """A line could not be delivered; ``retry`` says whether trying again can help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True, slots=True)
class IncomingChat:
    """A chat line the sender's own connection saw (moderator commands arrive this way)."""

    room: str
    user: str
    text: str
    is_moderator: bool
    platform: str


ChatListener = Callable[[IncomingChat], None]


class Sender(Protocol):
    """Delivers lines; ``run`` keeps any connection alive until cancelled."""

    name: str
    receives_chat: bool
    """True when the sender's connection also reads chat (then moderator commands come from it)."""

    async def run(self) -> None: ...

    async def send(self, room: str, text: str) -> None: ...

    def health(self) -> dict[str, object]: ...


class ConsoleSender:
    """Prints each line (for demos and dry runs)."""

    name = "console"
    receives_chat = False

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.sent: list[tuple[str, str]] = []

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def send(self, room: str, text: str) -> None:
        self.sent.append((room, text))
        print(f"[bot -> {room}] {safe_text(text)}", file=self._stream or sys.stdout, flush=True)

    def health(self) -> dict[str, object]:
        return {"sender": self.name, "ok": True, "sent": len(self.sent)}


class _HttpSender:
    """One aiohttp session per sender, opened on first use and closed when ``run`` is cancelled."""

    _timeout: aiohttp.ClientTimeout
    _session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            if self._session is not None:
                await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


class WebhookSender(_HttpSender):
    """POSTs ``{"room", "text", "ts"}`` as JSON to a URL; any 2xx is success."""

    name = "webhook"
    receives_chat = False

    def __init__(self, url: str, token: str = "", timeout: float = 10.0) -> None:
        if not url:
            raise ValueError("the webhook sender needs [bot.webhook] url")
        self.url = url
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.last_error = ""

    async def send(self, room: str, text: str) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        body = {"room": room, "text": text, "ts": time.time()}
        try:
            async with self._http().post(self.url, json=body, headers=headers) as r:
                if r.status // 100 != 2:
                    detail = (await r.text())[:200]
                    self.last_error = f"HTTP {r.status}"
                    # 4xx other than 429 will fail the same way again.
                    raise SendError(
                        f"webhook answered {r.status}: {detail}",
                        retry=r.status in (408, 429) or r.status >= 500,
                    )
        except (aiohttp.ClientError, TimeoutError) as e:
            self.last_error = f"{type(e).__name__}: {e}"
            raise SendError(f"webhook unreachable: {self.last_error}") from e

    def health(self) -> dict[str, object]:
        return {"sender": self.name, "ok": not self.last_error, "last_error": self.last_error}


def parse_cookie(header: str) -> dict[str, str]:
    """A Cookie header (``SESSDATA=...; bili_jct=...``) as a dict."""
    jar: SimpleCookie = SimpleCookie()
    with contextlib.suppress(Exception):
        jar.load(header)
    out = {k: m.value for k, m in jar.items()}
    if not out:  # SimpleCookie gives up on some real-world values; fall back to a plain split
        for part in header.split(";"):
            k, sep, v = part.strip().partition("=")
            if sep:
                out[k] = v
    return out


class BilibiliSender(_HttpSender):
    """Bilibili live's send-danmaku API: ``POST {base}/msg/send`` with the logged-in account's cookie.

    The cookie (``SESSDATA=...; bili_jct=...; DedeUserID=...``) comes from an environment variable and is
    never logged; ``bili_jct`` is also the CSRF token the form must carry. Lines longer than the
    account's danmaku limit are sent in parts.
    """

    name = "bilibili"
    receives_chat = False

    def __init__(
        self,
        cookie: str,
        *,
        base_url: str = "https://api.live.bilibili.com",
        room_id: int = 0,
        max_chars: int = 20,
        color: int = 16777215,
        fontsize: int = 25,
        mode: int = 1,
        timeout: float = 10.0,
        part_gap: float = 1.1,
    ) -> None:
        self._cookie = cookie.strip()
        self._csrf = parse_cookie(self._cookie).get("bili_jct", "")
        self.base_url = base_url.rstrip("/")
        self.room_id = room_id
        self.max_chars = max(1, max_chars)
        self.color, self.fontsize, self.mode = color, fontsize, mode
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._part_gap = part_gap
        self.last_error = ""

    def _room_id(self, room: str) -> int:
        if self.room_id:
            return self.room_id
        if room.isdigit():
            return int(room)
        raise SendError(f"room {room!r} is not a Bilibili room id; set [bot.bilibili] room_id", retry=False)

    def parts(self, text: str) -> list[str]:
        """The line cut into danmaku-sized parts."""
        t = safe_text(text, 2000)
        return [t[i : i + self.max_chars] for i in range(0, len(t), self.max_chars)] or [""]

    async def send(self, room: str, text: str) -> None:
        if not self._cookie or not self._csrf:
            raise SendError("no Bilibili cookie with bili_jct in the environment", retry=False)
        room_id = self._room_id(room)
        http = self._http()
        for i, part in enumerate(self.parts(text)):
            if i:
                await asyncio.sleep(self._part_gap)  # Bilibili refuses danmaku sent faster than ~1/s
            form = {
                "bubble": "0",
                "msg": part,
                "color": str(self.color),
                "mode": str(self.mode),
                "fontsize": str(self.fontsize),
                "rnd": str(int(time.time())),
                "roomid": str(room_id),
                "csrf": self._csrf,
                "csrf_token": self._csrf,
            }
            headers = {
                "Cookie": self._cookie,
                "Origin": "https://live.bilibili.com",
                "Referer": f"https://live.bilibili.com/{room_id}",
            }
            try:
                async with http.post(f"{self.base_url}/msg/send", data=form, headers=headers) as r:
                    raw = await r.text()
                    if r.status != 200:
                        self.last_error = f"HTTP {r.status}"
                        raise SendError(
                            f"bilibili answered HTTP {r.status}", retry=r.status >= 500 or r.status == 429
                        )
            except (aiohttp.ClientError, TimeoutError) as e:
                self.last_error = f"{type(e).__name__}: {e}"
                raise SendError(f"bilibili unreachable: {self.last_error}") from e
            try:
                answer = json.loads(raw)
            except ValueError:
                raise SendError(f"bilibili answered non-JSON: {raw[:80]!r}") from None
            code = answer.get("code") if isinstance(answer, dict) else None
            if code != 0:
                msg = (
                    str(answer.get("message") or answer.get("msg") or "") if isinstance(answer, dict) else ""
                )
                self.last_error = f"code {code}: {msg}"
                # -101: not logged in, -111: bad csrf; retrying cannot fix either.
                raise SendError(
                    f"bilibili refused the danmaku ({self.last_error})", retry=code not in (-101, -111, -400)
                )
        self.last_error = ""

    def health(self) -> dict[str, object]:
        return {
            "sender": self.name,
            "ok": not self.last_error and bool(self._csrf),
            "last_error": self.last_error or ("" if self._csrf else "no cookie"),
        }


class IrcSender:
    """Twitch-style IRC: one connection that sends the bot's lines and reads moderators' commands."""

    name = "irc"
    receives_chat = True

    def __init__(self, settings: IrcSettings, listener: ChatListener | None = None) -> None:
        self.listener = listener
        self.client = IrcClient(settings, self._on_message)

    def _on_message(self, msg: IrcMessage) -> None:
        # Called from the read loop: only hand over, never await (house style item 5).
        if msg.command != "PRIVMSG" or len(msg.params) < 2 or self.listener is None:
            return
        if msg.nick.lower() == self.client.nick.lower():
            return
        self.listener(
            IncomingChat(
                room=room_for_channel(msg.params[0]),
                user=msg.display_name,
                text=msg.params[1],
                is_moderator=msg.is_moderator,
                platform="irc",
            )
        )

    async def run(self) -> None:
        await self.client.run()

    async def send(self, room: str, text: str) -> None:
        try:
            await self.client.send_privmsg(channel_for_room(room), text)
        except (ConnectionError, OSError) as e:
            raise SendError(f"irc: {e}") from e

    def health(self) -> dict[str, object]:
        return {
            "sender": self.name,
            "ok": self.client.connected,
            "connects": self.client.connects,
            "last_error": self.client.last_error,
        }


def env_secret(name: str) -> str:
    """A secret from the environment ("" when unset); never logged."""
    return os.environ.get(name, "").strip() if name else ""
