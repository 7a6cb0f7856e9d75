"""The bot in the web app: moderator REST API, the dashboard panel, the streamer-only prompts page,
trending products on the overlay ticker, and the cleanup context that runs the bot.

Every state-changing endpoint calls ``overlay.auth.require_admin`` (bearer token, or a dashboard session
plus CSRF token). The streamer page is not for the stream: it needs the streamer token (or an admin).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from bot.build import build_bot
from bot.core import MODES, Bot, Draft, Mode, Prompt
from bot.products import TrendItem
from engine.config import Config
from engine.feed import MoodFeed
from engine.types import ChatMessage, TriggerEvent
from overlay import auth, keys
from overlay.panels import DashboardPanel, add_panel
from overlay.wire import room_name, ticker_payload

log = logging.getLogger(__name__)

BOT = web.AppKey("bot", Bot)
"""The running bot (declared here, not in overlay/keys.py: only the bot's own handlers read it)."""
STREAMER_TOKEN = web.AppKey("bot_streamer_token", str)
"""The token of the streamer-only prompts page."""

TICKER_INTERVAL = 3.0


# -- wire shapes ------------------------------------------------------------------------------------
def draft_payload(d: Draft) -> dict[str, object]:
    return {
        "id": d.id,
        "room": d.room,
        "type": d.type,
        "template": d.template_id,
        "text": d.text,
        "status": d.status,
        "reason": d.reason,
        "attempts": d.attempts,
        "by": d.by,
        "created": round(d.created, 3),
        "updated": round(d.updated, 3),
    }


def prompt_payload(p: Prompt) -> dict[str, object]:
    return {
        "id": p.id,
        "room": p.room,
        "kind": p.kind,
        "text": p.text,
        "ts": round(p.ts, 3),
        "keywords": list(p.keywords),
        "mood": p.mood,
    }


class ProductTickerItem:
    """A trending product as a ticker item (``text``, ``score``, ``emotion``: overlay.wire's shape)."""

    __slots__ = ("emotion", "score", "text")

    def __init__(self, item: TrendItem) -> None:
        self.text = f"{item.product.name} ¥{item.product.price_text}"
        self.score = item.score
        self.emotion = item.emotion


def product_ticker(bot: Bot, room: str, limit: int = 5) -> list[ProductTickerItem]:
    """The room's trending products as ticker items (what the overlay ticker shows for source=products)."""
    return [ProductTickerItem(t) for t in bot.tracker.trending(room, bot.clock(), limit)]


# -- tokens -----------------------------------------------------------------------------------------
def load_streamer_token(env: str, path: Path) -> str:
    """The streamer page's token: from the environment, else a 0600 file (generated once)."""
    value = os.environ.get(env, "").strip() if env else ""
    if value:
        return value
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def _streamer_ok(request: web.Request) -> bool:
    given = request.query.get("token", "")
    expected = request.app.get(STREAMER_TOKEN, "")
    if given and expected and hmac.compare_digest(given.encode(), expected.encode()):
        return True
    return auth.is_admin(request)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "body must be JSON"}', content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error": "body must be a JSON object"}', content_type="application/json"
        )
    return body


# -- REST -------------------------------------------------------------------------------------------
async def get_status(request: web.Request) -> web.Response:
    """``GET /api/bot/status``: kill switch, paused rooms, type modes, counters, sender health."""
    auth.require_admin(request)
    bot = request.app[BOT]
    return web.json_response({**bot.status(), "rooms": request.app[keys.FEED].rooms()})


async def get_drafts(request: web.Request) -> web.Response:
    """``GET /api/bot/drafts?room=&status=``: newest first."""
    auth.require_admin(request)
    bot = request.app[BOT]
    room = request.query.get("room", "")
    status = request.query.get("status", "")
    items = [
        d for d in reversed(bot.drafts) if (not room or d.room == room) and (not status or d.status == status)
    ]
    return web.json_response({"drafts": [draft_payload(d) for d in items[:200]]})


def _draft_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise web.HTTPNotFound(text='{"error": "no such draft"}', content_type="application/json")
    return int(raw)


async def approve(request: web.Request) -> web.Response:
    """``POST /api/bot/drafts/{id}/approve`` with optional ``{"text": "edited line"}``."""
    auth.require_admin(request)
    body = await _json(request) if request.can_read_body else {}
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        return _error(400, "'text' must be a string")
    try:
        d = request.app[BOT].approve(_draft_id(request), text=text, by="dashboard")
    except KeyError:
        return _error(404, "no such draft")
    except ValueError as e:
        return _error(409, str(e))
    return web.json_response(draft_payload(d))


async def reject(request: web.Request) -> web.Response:
    """``POST /api/bot/drafts/{id}/reject``."""
    auth.require_admin(request)
    try:
        d = request.app[BOT].reject(_draft_id(request), by="dashboard")
    except KeyError:
        return _error(404, "no such draft")
    except ValueError as e:
        return _error(409, str(e))
    return web.json_response(draft_payload(d))


async def set_mode(request: web.Request) -> web.Response:
    """``POST /api/bot/modes`` ``{"type": "faq", "mode": "queue"|"auto"|"off"}``."""
    auth.require_admin(request)
    body = await _json(request)
    kind, mode = body.get("type"), body.get("mode")
    if not isinstance(kind, str) or mode not in MODES:
        return _error(400, f"need 'type' and 'mode' (one of {', '.join(MODES)})")
    try:
        request.app[BOT].set_mode(kind, cast(Mode, mode))
    except ValueError as e:
        return _error(400, str(e))
    return web.json_response(request.app[BOT].status())


async def set_kill(request: web.Request) -> web.Response:
    """``POST /api/bot/kill`` ``{"on": true}``: nothing is posted anywhere while it is on."""
    auth.require_admin(request)
    on = (await _json(request)).get("on")
    if not isinstance(on, bool):
        return _error(400, "'on' must be true or false")
    request.app[BOT].set_killed(on)
    log.warning("bot kill switch %s from the dashboard", "ON" if on else "off")
    return web.json_response(request.app[BOT].status())


async def set_pause(request: web.Request) -> web.Response:
    """``POST /api/bot/pause`` ``{"room": "shop1", "paused": true}``."""
    auth.require_admin(request)
    body = await _json(request)
    room, paused = room_name(body.get("room")), body.get("paused")
    if room is None or not isinstance(paused, bool):
        return _error(400, "need 'room' and 'paused' (true or false)")
    request.app[BOT].set_paused(room, paused)
    return web.json_response(request.app[BOT].status())


async def get_prompts(request: web.Request) -> web.Response:
    """``GET /api/bot/prompts?room=&since=``: streamer tips and alerts (admin or streamer token)."""
    if not _streamer_ok(request):
        return _error(401, "streamer token or admin credentials required")
    room = request.query.get("room", "")
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return _error(400, "'since' must be an integer")
    bot = request.app[BOT]
    items = [p for p in bot.prompts if p.id > since and (not room or p.room == room)]
    trending = [
        {"text": t.text, "score": round(t.score, 2), "emotion": t.emotion}
        for t in (product_ticker(bot, room) if room else [])
    ]
    return web.json_response({"prompts": [prompt_payload(p) for p in items[-50:]], "trending": trending})


# -- pages ------------------------------------------------------------------------------------------
def _render(request: web.Request, name: str, **context: Any) -> web.Response:
    html = request.app[keys.TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html")


async def panel_page(request: web.Request) -> web.Response:
    """``GET /bot/panel``: the moderator queue and switches (shown inside the dashboard)."""
    auth.require_admin_page(request)
    return _render(request, "bot_panel.html", csrf=auth.csrf_token(request))


async def streamer_page(request: web.Request) -> web.Response:
    """``GET /bot/streamer/{room}?token=``: tips and alerts for the streamer's second screen."""
    room = room_name(request.match_info["room"])
    if room is None:
        raise web.HTTPNotFound(text="not a valid room name")
    if not _streamer_ok(request):
        raise web.HTTPUnauthorized(text="streamer token required: /bot/streamer/ROOM?token=...")
    return _render(request, "bot_streamer.html", room=room, token=request.query.get("token", ""))


# -- lifecycle --------------------------------------------------------------------------------------
async def _ticker_loop(app: web.Application, bot: Bot) -> None:
    """Send each room's trending products to its overlays (ticker event, source "products")."""
    from overlay.broadcast import NAMESPACE, room_key

    last: dict[str, list[Any]] = {}
    while True:
        await asyncio.sleep(TICKER_INTERVAL)
        sio = app.get(keys.SIO)
        if sio is None:
            continue
        for room in app[keys.FEED].rooms():
            if not bot.in_scope(room):
                continue
            payload = ticker_payload(room, product_ticker(bot, room), source="products")
            if payload["items"] != last.get(room, []):
                last[room] = payload["items"]
                try:
                    await sio.emit("ticker", dict(payload), to=room_key(room), namespace=NAMESPACE)
                except Exception as e:
                    bot.on_error("ticker", e)


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the bot while the app serves: start, yield, stop (undelivered lines are reported)."""
    bot = app[BOT]
    await bot.start()
    ticker = asyncio.create_task(_ticker_loop(app, bot), name="bot-ticker")
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await bot.stop()


def setup_bot(
    app: web.Application,
    config: Config,
    feed: MoodFeed,
    *,
    submit: Callable[[ChatMessage], None] | None = None,
    record: Callable[[TriggerEvent], None] | None = None,
    bot: Bot | None = None,
) -> Bot | None:
    """Build the bot from ``[bot]`` and add its routes, panel and lifecycle; None when disabled."""
    if not config.bot.enabled and bot is None:
        return None
    if bot is None:
        bot = build_bot(config, feed, submit=submit, record=record)
    app[BOT] = bot
    app[STREAMER_TOKEN] = load_streamer_token(
        config.bot.streamer_token_env, config.resolve(config.bot.streamer_token_file)
    )
    r = app.router
    r.add_get("/api/bot/status", get_status, name="bot_status")
    r.add_get("/api/bot/drafts", get_drafts, name="bot_drafts")
    r.add_post("/api/bot/drafts/{id}/approve", approve, name="bot_approve")
    r.add_post("/api/bot/drafts/{id}/reject", reject, name="bot_reject")
    r.add_post("/api/bot/modes", set_mode, name="bot_modes")
    r.add_post("/api/bot/kill", set_kill, name="bot_kill")
    r.add_post("/api/bot/pause", set_pause, name="bot_pause")
    r.add_get("/api/bot/prompts", get_prompts, name="bot_prompts")
    r.add_get("/bot/panel", panel_page, name="bot_panel")
    r.add_get("/bot/streamer/{room}", streamer_page, name="bot_streamer")
    if keys.DASHBOARD_PANELS in app:
        add_panel(app, DashboardPanel(id="bot", title="Chat bot", url="/bot/panel", height=520))
    app.cleanup_ctx.append(bot_ctx)
    return bot
