"""Twitch: IRCv3 tag parsing on recorded-shape lines, and reading a real IRC server (ngircd)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from engine.irc_proto import unescape_tag_value
from engine.sources.base import SourceError
from engine.sources.twitch import (
    BIT_CNY,
    IrcLine,
    TwitchSource,
    is_subscriber,
    message_from_line,
)
from engine.types import ChatMessage
from tests.ircd import OPER_NAME, OPER_PASSWORD, irc_viewer, ircd, read_until
from tests.waiting import until

# Lines in the shape Twitch sends them (tmi.twitch.tv with twitch.tv/tags and twitch.tv/commands).
MOD_LINE = (
    "@badge-info=subscriber/14;badges=moderator/1,subscriber/12;client-nonce=abc;color=#1E90FF;"
    "display-name=Mod_Amy;emotes=;first-msg=0;flags=;id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=1;"
    "returning-chatter=0;room-id=1337;subscriber=1;tmi-sent-ts=1700000000123;turbo=0;user-id=42;"
    "user-type=mod :mod_amy!mod_amy@mod_amy.tmi.twitch.tv PRIVMSG #shop :please\\sno spam; thanks"
)
CHEER_LINE = (
    "@badge-info=;badges=bits/100;bits=250;color=;display-name=Cheery;emotes=;id=c1;mod=0;"
    "room-id=1337;subscriber=0;tmi-sent-ts=1700000001000;user-id=43;user-type= "
    ":cheery!cheery@cheery.tmi.twitch.tv PRIVMSG #shop :Cheer250 love this stream"
)
BROADCASTER_LINE = (
    "@badges=broadcaster/1;display-name=TheStreamer;mod=0;subscriber=0;id=c2;tmi-sent-ts=1700000002000 "
    ":thestreamer!thestreamer@thestreamer.tmi.twitch.tv PRIVMSG #shop :\x01ACTION waves\x01"
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("a\\sb", "a b"),
        ("semi\\:colon", "semi;colon"),
        ("back\\\\slash", "back\\slash"),
        ("cr\\rlf\\n", "cr\rlf\n"),
        ("unknown\\x", "unknownx"),
        ("trailing\\", "trailing"),
        ("plain", "plain"),
    ],
)
def test_tag_values_are_unescaped(raw: str, value: str) -> None:
    assert unescape_tag_value(raw) == value


def test_a_moderator_line_parses_tags_badges_and_text() -> None:
    line = IrcLine.parse(MOD_LINE)
    assert line.command == "PRIVMSG" and line.params == ("#shop", "please\\sno spam; thanks")
    assert line.tags["display-name"] == "Mod_Amy" and line.nick == "mod_amy"
    msg = message_from_line(line, room="r")
    assert msg is not None
    assert (msg.user, msg.text, msg.is_moderator, msg.msg_id) == (
        "Mod_Amy",
        "please\\sno spam; thanks",  # only tag values are escaped, never the message text
        True,
        "b34ccfc7-4977-403a-8a94-33c6bac34fb8",
    )
    assert msg.ts == pytest.approx(1700000000.123) and msg.platform == "twitch"
    assert is_subscriber(line)


def test_bits_are_a_gift_and_the_broadcaster_counts_as_staff() -> None:
    cheer = message_from_line(IrcLine.parse(CHEER_LINE), room="r")
    assert cheer is not None and cheer.gift_value == pytest.approx(250 * BIT_CNY) and not cheer.is_moderator
    assert not is_subscriber(IrcLine.parse(CHEER_LINE))
    me = message_from_line(IrcLine.parse(BROADCASTER_LINE), room="r")
    assert me is not None and me.text == "waves" and me.is_moderator and me.user == "TheStreamer"
    assert message_from_line(IrcLine.parse(":tmi.twitch.tv 001 justinfan1 :Welcome"), room="r") is None


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(SourceError):
        TwitchSource("two words")
    with pytest.raises(SourceError, match="ircs://"):
        TwitchSource("shop", url="http://x")


async def test_reads_a_real_irc_server_and_rejoins_after_being_killed(tmp_path: Path) -> None:
    async with ircd(tmp_path) as srv:
        src = TwitchSource("Shop", room="shop", url=f"irc://127.0.0.1:{srv.port}", backoff=lambda r, t: 0.05)
        got: list[ChatMessage] = []
        task = asyncio.create_task(src.run(got.append))
        r, w = await irc_viewer(srv.port, "viewer")
        try:
            await until(lambda: src.state.status == "connected", "joined")
            w.write(b"JOIN #shop\r\n")
            await w.drain()
            await read_until(r, b"JOIN")
            w.write("PRIVMSG #shop :主播好可爱\r\n".encode())
            await w.drain()
            await until(lambda: len(got) == 1, "first message")
            assert (got[0].user, got[0].text, got[0].room) == ("viewer", "主播好可爱", "shop")

            # An IRC operator kills the reader's connection; it must come back and keep reading.
            nick = re.search(r"as (justinfan\d+)", src.state.detail)
            assert nick is not None
            w.write(f"OPER {OPER_NAME} {OPER_PASSWORD}\r\nKILL {nick.group(1)} :test drop\r\n".encode())
            await w.drain()
            await until(lambda: src.state.reconnects == 1 and src.state.status == "connected", "rejoined")
            w.write(b"PRIVMSG #shop :back again\r\n")
            await w.drain()
            await until(lambda: len(got) == 2, "message after the reconnect")
            assert got[1].text == "back again"
        finally:
            w.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_tags_ping_and_reconnect_through_a_scripted_twitch_server() -> None:
    """ngircd cannot send Twitch tags; this loopback server replays Twitch's side of a session."""
    seen: list[str] = []
    sessions = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sessions
        sessions += 1
        lines: list[str] = []
        while not any(x.startswith("JOIN") for x in lines):
            raw = await reader.readline()
            if not raw:
                return
            lines.append(raw.decode().rstrip("\r\n"))
            if lines[-1].startswith("CAP END"):
                writer.write(b":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands\r\n")
                writer.write(b":tmi.twitch.tv 001 justinfan :Welcome, GLHF!\r\n")
        seen.extend(lines)
        nick = next(x for x in lines if x.startswith("NICK")).split()[1]
        writer.write(f":{nick}!{nick}@{nick}.tmi.twitch.tv JOIN #shop\r\n".encode())
        writer.write(b"PING :tmi.twitch.tv\r\n")
        writer.write((MOD_LINE + "\r\n").encode())
        await writer.drain()
        pong = await reader.readline()
        seen.append(pong.decode().rstrip("\r\n"))
        if sessions == 1:
            writer.write(b":tmi.twitch.tv RECONNECT\r\n")
        else:
            writer.write((CHEER_LINE + "\r\n").encode())
        await writer.drain()
        await reader.read()  # until the client leaves

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    src = TwitchSource("shop", url=f"irc://127.0.0.1:{port}", backoff=lambda r, t: 0.05)
    got: list[ChatMessage] = []
    task = asyncio.create_task(src.run(got.append))
    try:
        await until(lambda: len(got) == 3, "three messages over two sessions")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
        await server.wait_closed()
    assert seen[0] == "CAP REQ :twitch.tv/tags twitch.tv/commands"
    assert re.fullmatch(r"NICK justinfan\d{5}", seen[1]) and "JOIN #shop" in seen
    assert "PONG :tmi.twitch.tv" in seen
    assert [m.user for m in got] == ["Mod_Amy", "Mod_Amy", "Cheery"]
    assert got[0].is_moderator and got[2].gift_value > 0
    assert src.state.reconnects == 1 and "RECONNECT" not in src.state.detail  # reconnected fine
    assert dict(src.state.signals)["subscriber_messages"] == 2
