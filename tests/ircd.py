"""A real IRC server (Debian's ngircd) on loopback for bot and Twitch-reader tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_real

OPER_NAME = "moodop"
OPER_PASSWORD = "oper-secret"


@dataclass(frozen=True, slots=True)
class IrcServer:
    """Where the test IRC server listens."""

    host: str
    port: int
    name: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(port: int, workdir: Path) -> str:
    # Flood protection off and generous limits: tests send bursts on purpose; the bot's own rate
    # limiter is what is under test, not the server's.
    return f"""
[Global]
    Name = irc.moodcast.test
    Info = moodcast test server
    Listen = 127.0.0.1
    Ports = {port}
    MotdPhrase = "moodcast test"
    PidFile = {workdir}/ngircd.pid
    ServerUID = {_uid()}
    ServerGID = {_gid()}
[Limits]
    MaxConnections = 200
    MaxConnectionsIP = 200
    MaxJoins = 50
    # Twitch's anonymous nicks (justinfan12345) are longer than ngircd's default limit of 9.
    MaxNickLength = 30
    PingTimeout = 120
    PongTimeout = 20
[Options]
    PAM = no
    Ident = no
    DNS = no
    OperCanUseMode = yes
    RequireAuthPing = no
[Operator]
    Name = {OPER_NAME}
    Password = {OPER_PASSWORD}
"""


def _uid() -> int:
    import os

    return os.getuid()


def _gid() -> int:
    import os

    return os.getgid()


@contextlib.asynccontextmanager
async def ircd(tmp_path: Path) -> AsyncIterator[IrcServer]:
    """Start ngircd on a free loopback port; yield where it listens; stop it after."""
    binary = shutil.which("ngircd") or shutil.which("ngircd", path="/usr/sbin")
    require_real("ngircd (IRC server)", binary is not None, "install it with `sudo apt-get install ngircd`")
    assert binary is not None
    port = _free_port()
    conf = tmp_path / "ngircd.conf"
    conf.write_text(_config(port, tmp_path), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        binary, "--nodaemon", "--config", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                await w.wait_closed()
                break
            except OSError:
                if proc.returncode is not None:
                    err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"ngircd exited: {err}") from None
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError("ngircd did not start listening")
        yield IrcServer("127.0.0.1", port, "irc.moodcast.test")
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def irc_viewer(port: int, nick: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain IRC client registered on the test server (waits for the 001 welcome)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    await w.drain()
    while b" 001 " not in await asyncio.wait_for(r.readline(), 10):
        pass
    return r, w


async def read_until(r: asyncio.StreamReader, needle: bytes) -> bytes:
    """The next line containing ``needle`` (10 s per line: a hang guard)."""
    while True:
        line = await asyncio.wait_for(r.readline(), 10)
        if needle in line:
            return line
