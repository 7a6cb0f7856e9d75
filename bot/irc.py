"""IRC wire protocol (RFC 1459 + IRCv3 message tags) and a Twitch-style IRC client.

The protocol half (``IrcMessage.parse``, tag escaping, ``safe_text``) has no I/O and no bot knowledge,
so a chat reader (engine/sources) can share it. The client half is one long-lived connection: register
(PASS/NICK/USER), ask for Twitch's tags capability, JOIN, answer PING, send PRIVMSG under a rate limit,
and reconnect with backoff and jitter when the server goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from engine.irc_proto import IrcMessage, escape_tag_value, unescape_tag_value

log = logging.getLogger(__name__)

__all__ = ["IrcMessage", "escape_tag_value", "unescape_tag_value"]  # shared parser, re-exported

MAX_LINE_BYTES = 512
"""RFC 1459 limit for one line, CRLF included (tags are extra, but we never send tags)."""


def safe_text(text: str, limit: int = 400) -> str:
    """Text that can go into one PRIVMSG: no CR/LF/NUL or other control characters, bounded length.

    Control characters become spaces (a newline would end the command and start a new one; mIRC colour
    and bold codes would restyle the line). The result is cut on a UTF-8 byte budget.
    """
    cleaned = "".join(" " if (ch < " " or ch == "\x7f" or "\x80" <= ch < "\xa0") else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    out = cleaned.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    return out


def privmsg(target: str, text: str) -> str:
    """A PRIVMSG line for ``target``; the text is made safe and fits the 512-byte line limit."""
    target = safe_text(target, 64).replace(" ", "")
    room = MAX_LINE_BYTES - len(f"PRIVMSG {target} :\r\n".encode()) - 64  # 64: the relay's prefix
    return f"PRIVMSG {target} :{safe_text(text, room)}\r\n"


def channel_for_room(room: str) -> str:
    """IRC channel of a room: ``shop1`` -> ``#shop1`` (lowercase, as Twitch names channels)."""
    r = safe_text(room, 60).replace(" ", "").replace(",", "").lower().lstrip("#")
    return "#" + (r or "default")


def room_for_channel(channel: str) -> str:
    """The room a channel belongs to: ``#shop1`` -> ``shop1``."""
    return channel.lstrip("#&")


Backoff = Callable[[int, int], float]
"""(retry, total_retries) -> seconds to wait before the next connection attempt."""


def default_backoff(retry: int, total: int) -> float:
    """Exponential, capped at 60 s, with full jitter so a crowd of bots does not reconnect in step."""
    del total
    return random.uniform(0.5, min(60.0, 1.0 * 2**retry))


class RateLimiter:
    """Sliding-window limit: at most ``count`` acquisitions per ``seconds``; ``count`` 0 = unlimited."""

    def __init__(self, count: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.seconds = seconds
        self._clock = clock
        self._stamps: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._stamps and now - self._stamps[0] >= self.seconds:
            self._stamps.popleft()

    def wait_time(self) -> float:
        """Seconds until one more acquisition is allowed (0 = now)."""
        if self.count <= 0:
            return 0.0
        now = self._clock()
        self._trim(now)
        if len(self._stamps) < self.count:
            return 0.0
        return max(0.0, self._stamps[0] + self.seconds - now)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now."""
        if self.wait_time() > 0:
            return False
        if self.count > 0:
            self._stamps.append(self._clock())
        return True

    async def acquire(self) -> None:
        """Wait for a slot and take it."""
        while True:
            wait = self.wait_time()
            if wait <= 0 and self.try_acquire():
                return
            await asyncio.sleep(wait + 0.01)


@dataclass(frozen=True, slots=True)
class IrcSettings:
    """Where and as whom the client connects."""

    host: str
    port: int
    nick: str
    password: str = ""
    tls: bool = False
    channels: tuple[str, ...] = ()
    rate_messages: int = 20
    rate_seconds: float = 30.0
    request_twitch_caps: bool = True


class IrcClient:
    """One IRC connection kept alive by a reconnect loop; ``on_message`` gets every parsed line.

    ``on_message`` is called synchronously from the read loop and must only enqueue (house style item 5).
    """

    def __init__(
        self,
        settings: IrcSettings,
        on_message: Callable[[IrcMessage], None] | None = None,
        *,
        backoff: Backoff = default_backoff,
    ) -> None:
        self.settings = settings
        self._on_message = on_message
        self._backoff = backoff
        self._writer: asyncio.StreamWriter | None = None
        self._channels: set[str] = {c.lower() for c in settings.channels}
        self._joined: set[str] = set()
        self._ready = asyncio.Event()
        self._limiter = RateLimiter(settings.rate_messages, settings.rate_seconds)
        self.connects = 0
        self.nick = settings.nick
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - returns False
        """Wait until registered and joined; True if it happened within ``timeout``."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff until cancelled."""
        retry = 0
        total = 0
        while True:
            try:
                got_message = await self._session()
                self.last_error = "connection closed by server"
            except asyncio.CancelledError:
                raise
            except (OSError, ValueError, asyncio.IncompleteReadError, ConnectionError) as e:
                got_message = False
                self.last_error = f"{type(e).__name__}: {e}"
            finally:
                self._ready.clear()
                self._joined.clear()
                w, self._writer = self._writer, None
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()
            # A session that got as far as a good message resets the retry count (blivedm's rule).
            retry = 0 if got_message else retry + 1
            total += 1
            delay = self._backoff(retry, total)
            log.warning(
                "irc %s:%d: %s; reconnecting in %.1fs",
                self.settings.host,
                self.settings.port,
                self.last_error,
                delay,
            )
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        s = self.settings
        reader, writer = await asyncio.open_connection(s.host, s.port, ssl=s.tls or None)
        self._writer = writer
        self.connects += 1
        if s.request_twitch_caps:
            self._raw("CAP REQ :twitch.tv/tags twitch.tv/commands")
        if s.password:
            self._raw(f"PASS {s.password}")
        self._raw(f"NICK {s.nick}")
        self._raw(f"USER {s.nick} 0 * :{s.nick}")
        await writer.drain()
        got_message = False
        while True:
            raw = await reader.readline()
            if not raw:
                return got_message
            try:
                msg = IrcMessage.parse(raw.decode("utf-8", errors="replace"))
            except ValueError:
                continue
            got_message = True
            await self._handle(msg)
            if self._on_message is not None:
                try:
                    self._on_message(msg)
                except Exception:  # a listener bug must never take the connection down
                    log.exception("irc listener failed on %s", msg.command)

    async def _handle(self, msg: IrcMessage) -> None:
        if msg.command == "PING":
            self._raw("PONG :" + (msg.params[-1] if msg.params else ""))
        elif msg.command == "CAP" and len(msg.params) >= 2 and msg.params[1] in {"ACK", "NAK"}:
            self._raw("CAP END")
        elif msg.command == "001":
            if msg.params:
                self.nick = msg.params[0]
            for ch in sorted(self._channels):
                self._raw(f"JOIN {ch}")
            if not self._channels:
                self._ready.set()
        elif msg.command == "433":  # nickname in use: try another, as a second bot instance would
            self.nick = self.nick + "_"
            self._raw(f"NICK {self.nick}")
        elif msg.command == "JOIN" and msg.nick.lower() == self.nick.lower() and msg.params:
            self._joined.add(msg.params[0].lower())
            if self._channels <= self._joined:
                self._ready.set()
        elif msg.command == "ERROR":
            self.last_error = "server error: " + (msg.params[-1] if msg.params else "")
        if self._writer is not None:
            await self._writer.drain()

    def _raw(self, line: str) -> None:
        if self._writer is None:
            raise ConnectionError("not connected")
        self._writer.write((line.rstrip("\r\n") + "\r\n").encode("utf-8"))

    async def join(self, channel: str) -> None:
        """Join ``channel`` now if connected, and on every reconnect."""
        ch = channel.lower()
        self._channels.add(ch)
        if self._writer is not None and ch not in self._joined:
            self._raw(f"JOIN {ch}")
            await self._writer.drain()

    async def send_privmsg(self, channel: str, text: str) -> None:
        """Send one chat line under the rate limit; raises ConnectionError when not connected."""
        if not self.connected or self._writer is None:
            raise ConnectionError(f"irc not connected ({self.last_error or 'connecting'})")
        if channel.lower() not in self._joined:
            await self.join(channel)
        await self._limiter.acquire()
        if self._writer is None:
            raise ConnectionError("irc connection lost while waiting for the rate limit")
        self._writer.write(privmsg(channel, text).encode("utf-8"))
        await self._writer.drain()
