"""Every piece of app state, as a typed ``web.AppKey``; handlers read state only through these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from engine.config import Config
from engine.feed import MoodFeed

if TYPE_CHECKING:
    from overlay.app import WebDirs
    from overlay.broadcast import Broadcaster

FEED: web.AppKey[MoodFeed] = web.AppKey("feed")
"""The pipeline's read side that pages, REST and socket.io show."""

CONFIG = web.AppKey("config", Config)
"""The whole validated configuration."""

WEB_DIRS: web.AppKey[WebDirs] = web.AppKey("web_dirs")
"""Where templates/ and static/ were found (source checkout or wheel)."""

TEMPLATES = web.AppKey("templates", jinja2.Environment)
"""The jinja2 environment (autoescape on) for every HTML page."""

SIO: web.AppKey[Any] = web.AppKey("sio")
"""The python-socketio AsyncServer (untyped library, hence Any)."""

BROADCASTER: web.AppKey[Broadcaster] = web.AppKey("broadcaster")
"""Pushes snapshots and events from the feed to socket.io rooms."""
