"""The IRC test server itself speaks IRC: register, join, and see another client's PRIVMSG."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.ircd import ircd


async def _client(port: int, nick: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    await w.drain()
    while b" 001 " not in await r.readline():
        pass
    return r, w


async def _read_until(r: asyncio.StreamReader, needle: bytes) -> bytes:
    while True:
        line = await asyncio.wait_for(r.readline(), 5)
        if needle in line:
            return line


async def test_two_clients_talk_through_the_real_server(tmp_path: Path) -> None:
    async with ircd(tmp_path) as srv:
        r1, w1 = await _client(srv.port, "alice")
        r2, w2 = await _client(srv.port, "bob")
        for w in (w1, w2):
            w.write(b"JOIN #room\r\n")
            await w.drain()
        await _read_until(r1, b"JOIN")
        await _read_until(r2, b"JOIN")
        w1.write("PRIVMSG #room :哈哈哈\r\n".encode())
        await w1.drain()
        line = await _read_until(r2, b"PRIVMSG")
        assert line.decode().endswith("PRIVMSG #room :哈哈哈\r\n")
        assert line.startswith(b":alice!")
        for w in (w1, w2):
            w.close()
