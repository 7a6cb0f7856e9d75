"""Every piece of app state, as a typed ``web.AppKey``; handlers read state only through these."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from engine.config import Config
from engine.feed import MoodFeed
from engine.types import Prediction

if TYPE_CHECKING:
    from overlay.app import WebDirs
    from overlay.broadcast import Broadcaster, MoodNamespace
    from overlay.obs.controller import ObsController
    from overlay.panels import DashboardPanel
    from overlay.tokens import OverlayTokens
    from overlay.trending import Trending

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

MOOD_NAMESPACE: web.AppKey[MoodNamespace] = web.AppKey("mood_namespace")
"""The ``/mood`` socket.io namespace (knows which client joined with which token)."""

OVERLAY_TOKENS: web.AppKey[OverlayTokens] = web.AppKey("overlay_tokens")
"""Each room's read-only overlay token (persisted by the service, in memory in tests)."""

TRENDING: web.AppKey[Trending] = web.AppKey("trending")
"""Rolling counter of trending words per room; feeds the ticker widget."""

DASHBOARD_PANELS: web.AppKey[list[DashboardPanel]] = web.AppKey("dashboard_panels")
"""Extra dashboard panels; other packages' setup functions append to it (see overlay/panels.py)."""

CLASSIFY: web.AppKey[Callable[[Sequence[str], str | None], list[Prediction]]] = web.AppKey("classify")
"""``classify(texts, model_id)``: blocking (run it in a thread); set by moodcast/service.py."""

MODEL_IDS: web.AppKey[Callable[[], list[str]]] = web.AppKey("model_ids")
"""The model registry's ids, for the dashboard's model picker; set by moodcast/service.py."""

SOURCES_HEALTH: web.AppKey[Callable[[], list[dict[str, object]]]] = web.AppKey("sources_health")
"""Each chat source's name, room, status and counters, for the dashboard; set by moodcast/service.py."""

OBS_CONTROLLER: web.AppKey[ObsController | None] = web.AppKey("obs_controller")
"""The OBS scene automation controller, or None when ``[obs] enabled = false``; see overlay/obs/web.py."""
