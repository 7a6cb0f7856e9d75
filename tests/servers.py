"""Run real aiohttp apps on loopback with ephemeral ports, as async context managers."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def run_app(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Start ``app`` on a free port; yield its base URL (``http://127.0.0.1:PORT``); clean up after."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
