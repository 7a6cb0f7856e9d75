"""The IRC test server itself speaks IRC: register, join, and see another client's PRIVMSG."""

from __future__ import annotations

from pathlib import Path

from tests.ircd import irc_viewer, ircd, read_until


async def test_two_clients_talk_through_the_real_server(tmp_path: Path) -> None:
    async with ircd(tmp_path) as srv:
        r1, w1 = await irc_viewer(srv.port, "alice")
        r2, w2 = await irc_viewer(srv.port, "bob")
        for w in (w1, w2):
            w.write(b"JOIN #room\r\n")
            await w.drain()
        await read_until(r1, b"JOIN")
        await read_until(r2, b"JOIN")
        w1.write("PRIVMSG #room :哈哈哈\r\n".encode())
        await w1.drain()
        line = await read_until(r2, b"PRIVMSG")
        assert line.decode().endswith("PRIVMSG #room :哈哈哈\r\n")
        assert line.startswith(b":alice!")
        for w in (w1, w2):
            w.close()
