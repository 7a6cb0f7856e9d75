"""Twitch chat, read anonymously over IRC (no account, no token).

``NICK justinfanNNNNN`` is Twitch's read-only anonymous login. ``CAP REQ :twitch.tv/tags
twitch.tv/commands`` asks for IRCv3 message tags (badges, bits, display names); ``CAP END`` closes the
capability negotiation (Twitch does not need it, standard servers such as ngircd do). The server's
``PING`` is answered with ``PONG``; we also ``PING`` after a quiet minute so a dead TCP connection is
noticed. ``RECONNECT`` (Twitch's maintenance notice) and any drop go through the reconnect loop.

Moderator and broadcaster badges (or ``mod=1``) mark a message ``is_moderator``; cheered bits become
``gift_value`` (1 bit = 0.01 USD to the streamer, converted at ``BIT_CNY``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import urllib.parse

from engine.irc_proto import IrcMessage, IrcParseError
from engine.sources.base import SourceError
from engine.sources.connector import AuthFailed, Backoff, Connector, ProtocolError, RateLimited
from engine.types import ChatMessage

log = logging.getLogger(__name__)

PLATFORM = "twitch"
DEFAULT_URL = "ircs://irc.chat.twitch.tv:6697"
BIT_CNY = 0.072
"""One bit pays the streamer 0.01 USD; moodcast values gifts in CNY (rate as of 2024, a weight only)."""
SUB_PLAN_CNY = {"Prime": 36.0, "1000": 36.0, "2000": 72.0, "3000": 180.0}
IDLE_PING_SECONDS = 60.0
PONG_TIMEOUT = 20.0
REGISTER_TIMEOUT = 30.0
MAX_LINE = 16 * 1024

IrcLine = IrcMessage
"""Twitch lines are plain IRC lines with tags; kept as a name for readability here."""


def message_from_line(line: IrcLine, *, room: str) -> ChatMessage | None:
    """The ChatMessage for a PRIVMSG (or a USERNOTICE that carries the viewer's text), else None."""
    if line.command not in ("PRIVMSG", "USERNOTICE") or len(line.params) < 2:
        return None
    tags = line.tags
    text = line.params[-1]
    if text.startswith("\x01ACTION ") and text.endswith("\x01"):
        text = text[8:-1]  # /me
    is_staff = line.is_moderator
    gift = 0.0
    bits = tags.get("bits", "")
    if bits.isdigit():
        gift = int(bits) * BIT_CNY
    if line.command == "USERNOTICE":
        gift += SUB_PLAN_CNY.get(tags.get("msg-param-sub-plan", ""), 0.0)
    user = tags.get("display-name") or line.nick or tags.get("login", "")
    ts_raw = tags.get("tmi-sent-ts", "")
    ts = int(ts_raw) / 1000.0 if ts_raw.isdigit() else None
    return ChatMessage.create(
        room=room,
        user=user,
        text=text,
        ts=ts,
        platform=PLATFORM,
        is_moderator=is_staff,
        gift_value=gift,
        msg_id=tags.get("id", ""),
    )


def is_subscriber(line: IrcLine) -> bool:
    """Whether the sender subscribes to the channel (badge or ``subscriber=1``)."""
    return line.tags.get("subscriber") == "1" or "subscriber" in line.badges or "founder" in line.badges


class TwitchSource(Connector):
    """Reads one Twitch channel's chat into one moodcast room, anonymously."""

    platform = PLATFORM

    def __init__(
        self,
        channel: str,
        *,
        room: str = "twitch",
        url: str = "",
        backoff: Backoff | None = None,
        name: str = "",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        chan = channel.strip().lstrip("#").lower()
        if not chan or any(c in chan for c in " ,\r\n\x07"):
            raise SourceError(f"twitch channel must be a channel name, got {channel!r}")
        super().__init__(name=name or f"twitch:{chan}", room=room, backoff=backoff)
        self.channel = chan
        parsed = urllib.parse.urlsplit(url or DEFAULT_URL)
        if parsed.scheme not in ("irc", "ircs") or not parsed.hostname:
            raise SourceError(f"twitch url must look like ircs://host:6697 or irc://host:6667, got {url!r}")
        self.tls = parsed.scheme == "ircs"
        self.host = parsed.hostname
        self.port = parsed.port or (6697 if self.tls else 6667)
        self._ssl = ssl_context
        self.subscribers_seen = 0

    def _describe(self) -> str:
        return f"#{self.channel} on {self.host}:{self.port}{' (TLS)' if self.tls else ''}"

    async def _session(self) -> None:
        ctx = (self._ssl or ssl.create_default_context()) if self.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=ctx, limit=MAX_LINE), REGISTER_TIMEOUT
        )
        try:
            await self._talk(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nick = f"justinfan{random.randint(10000, 99999)}"

        async def send(line: str) -> None:
            writer.write(line.encode("utf-8") + b"\r\n")
            await writer.drain()

        await send("CAP REQ :twitch.tv/tags twitch.tv/commands")
        await send(f"NICK {nick}")
        await send(f"USER {nick} 8 * :{nick}")
        await send("CAP END")
        registered = joined = False
        ping_sent = False
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            wait = PONG_TIMEOUT if ping_sent else IDLE_PING_SECONDS
            if not joined:
                wait = min(wait, max(0.1, started + REGISTER_TIMEOUT - loop.time()))
            try:
                raw = await asyncio.wait_for(reader.readline(), wait)
            except TimeoutError:
                if not joined:
                    raise ProtocolError(
                        f"not joined to #{self.channel} within {REGISTER_TIMEOUT:.0f} s"
                    ) from None
                if ping_sent:
                    raise ProtocolError(f"no reply to PING within {PONG_TIMEOUT:.0f} s") from None
                await send("PING :moodcast")
                ping_sent = True
                continue
            except ValueError:  # a line longer than MAX_LINE: the stream position is lost
                raise ProtocolError(f"IRC line longer than {MAX_LINE} bytes") from None
            if not raw:
                return  # server closed
            ping_sent = False
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text:
                continue
            try:
                line = IrcLine.parse(text)
            except IrcParseError as e:
                self._bad_frame("IRC line", e)
                continue
            cmd = line.command
            if cmd == "PING":
                await send("PONG :" + (line.params[-1] if line.params else "tmi.twitch.tv"))
            elif cmd == "001":
                registered = True
                await send(f"JOIN #{self.channel}")
            elif cmd in ("JOIN", "366", "ROOMSTATE") and not joined and registered:
                if cmd != "JOIN" or line.nick == nick:
                    joined = True
                    self._good()
                    self._connected(f"joined #{self.channel} as {nick}")
            elif cmd in ("PRIVMSG", "USERNOTICE"):
                self._on_chat(line)
            elif cmd == "RECONNECT":
                raise ConnectionError("server asked us to reconnect (RECONNECT)")
            elif cmd == "NOTICE":
                self._on_notice(line)
            elif cmd in ("403", "405", "471", "473", "474", "475"):
                raise ProtocolError(f"cannot join #{self.channel}: {' '.join(line.params[1:])}")
            elif cmd in ("432", "433", "436", "464", "465"):
                raise AuthFailed(f"login refused ({cmd}): {' '.join(line.params[1:])}")
            elif cmd == "ERROR":
                raise ConnectionError(f"server error: {line.params[-1] if line.params else ''}")

    def _on_chat(self, line: IrcLine) -> None:
        try:
            msg = message_from_line(line, room=self.room)
        except (ValueError, IndexError) as e:
            self._bad_frame("PRIVMSG", e)
            return
        if msg is None:
            return
        if is_subscriber(line):
            self.subscribers_seen += 1
            self._bump("subscriber_messages")
        if msg.gift_value > 0:
            self._bump("gift_value_cny", msg.gift_value)
        self._deliver(msg)

    def _on_notice(self, line: IrcLine) -> None:
        text = line.params[-1] if line.params else ""
        msg_id = line.tags.get("msg-id", "")
        if "Login authentication failed" in text or "Login unsuccessful" in text or msg_id == "login_failed":
            raise AuthFailed(text)
        if msg_id in ("msg_ratelimit", "msg_channel_blocked") or "rate limit" in text.lower():
            raise RateLimited(text, retry_after=60.0)
        if msg_id in ("msg_channel_suspended", "msg_banned"):
            raise ProtocolError(f"#{self.channel}: {text}")
        log.info("%s: NOTICE %s", self.name, text)
