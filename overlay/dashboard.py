"""The producer dashboard: login-protected page, its JSON state, "try a message" and token rotation.

The live parts (mood charts, recent messages, alerts) come over the same ``/mood`` socket.io namespace as
the overlay, authorised by the session cookie; counters and health are polled from
``/dashboard/api/state`` every few seconds. ``/dashboard/api/history`` backfills the five-minute chart
when the page opens or its socket reconnects. Extra panels from other packages: see ``overlay/panels.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from engine.aggregate import HISTORY_SECONDS
from engine.classify.base import ModelError
from engine.types import MAX_TEXT_CHARS
from overlay import auth, keys
from overlay.api import _dumps
from overlay.pages import WIDGETS, overlay_path, render
from overlay.panels import DashboardPanel
from overlay.wire import event_payload, history_payload, room_name

MAX_TRY_TEXTS = 20
MAX_TRY_BODY = 64 * 1024


def _rooms(app: web.Application) -> list[str]:
    return sorted(set(app[keys.FEED].rooms()) | set(app[keys.OVERLAY_TOKENS].rooms()))


def _room_param(request: web.Request) -> str | None:
    raw = request.query.get("room")
    if raw is None:
        rooms = _rooms(request.app)
        return rooms[0] if rooms else None
    room = room_name(raw)
    if room is None:
        raise web.HTTPBadRequest(text='{"error": "not a valid room name"}', content_type="application/json")
    return room


def overlay_urls(request: web.Request, room: str) -> dict[str, str]:
    """Absolute overlay URLs of ``room`` (all widgets, then each one), creating its token if needed."""
    token = request.app[keys.OVERLAY_TOKENS].get_or_create(room)
    public = request.app[keys.CONFIG].server.public_url.rstrip("/")
    base = public or f"{request.scheme}://{request.host}"
    urls = {"all": base + overlay_path(room, token)}
    urls.update({w: base + overlay_path(room, token, w) for w in WIDGETS})
    return urls


async def dashboard_page(request: web.Request) -> web.Response:
    """The dashboard of one room (``?room=``; default the first room)."""
    auth.require_admin_page(request)
    room = _room_param(request)
    models = request.app[keys.MODEL_IDS]() if keys.MODEL_IDS in request.app else []
    config = request.app[keys.CONFIG]
    panels: list[DashboardPanel] = request.app[keys.DASHBOARD_PANELS]
    return render(
        request,
        "dashboard.html",
        room=room,
        rooms=_rooms(request.app),
        csrf=auth.csrf_token(request),
        urls=overlay_urls(request, room) if room else {},
        panels=panels,
        models=models,
        default_model=config.classifier.model,
        colors={
            e: getattr(config.overlay, f"color_{e}")
            for e in ("happy", "excited", "angry", "sad", "anxious", "neutral")
        },
    )


async def dashboard_state(request: web.Request) -> web.Response:
    """Counters and health for the dashboard: drops, floods, sources, model, connected overlays."""
    auth.require_admin(request)
    room = _room_param(request)
    app = request.app
    feed = app[keys.FEED]
    latest = feed.latest(room) if room else None
    broadcaster = app[keys.BROADCASTER]
    namespace = app[keys.MOOD_NAMESPACE]
    body: dict[str, Any] = {
        "room": room,
        "rooms": _rooms(app),
        "pipeline": feed.stats(),
        "sources": app[keys.SOURCES_HEALTH]() if keys.SOURCES_HEALTH in app else [],
        "room_stats": {
            "total_messages": latest.total_messages if latest else 0,
            "flooded_messages": latest.flooded_messages if latest else 0,
            "overlays_connected": sum(
                1 for r, token in namespace.clients.values() if r == room and token is not None
            ),
        },
        "broadcast": {
            "emitted": broadcaster.emitted,
            "coalesced": broadcaster.coalesced,
            "errors": broadcaster.errors,
        },
        "events": [event_payload(e) for e in broadcaster.recent_events if e.room == room][-30:],
        "models": app[keys.MODEL_IDS]() if keys.MODEL_IDS in app else [],
    }
    return web.json_response(body, dumps=_dumps)


async def dashboard_history(request: web.Request) -> web.Response:
    """``GET /dashboard/api/history?room=R&seconds=N``: the room's last N (at most 300) seconds of the
    five-minute chart, so a page opened mid-stream starts full instead of filling for five minutes."""
    auth.require_admin(request)
    room = _room_param(request)
    if room is None:
        return web.json_response({"error": "no room given and no rooms yet"}, status=404)
    raw = request.query.get("seconds", str(HISTORY_SECONDS))
    # Digits only: int() would also take " 5", "+5" and "5_0", which no client means.
    if not (raw.isascii() and raw.isdigit()) or not raw.strip("0"):
        return web.json_response({"error": "'seconds' must be a whole number of at least 1"}, status=400)
    # More is capped, not refused: the chart holds 300. (A huge digit string never reaches int().)
    seconds = min(int(raw), HISTORY_SECONDS) if len(raw) <= 12 else HISTORY_SECONDS
    window = min(request.app[keys.CONFIG].aggregate.windows, default=10)
    # Reads an in-memory deque of at most 300 entries: cheap enough for the event loop, no store access.
    points = request.app[keys.FEED].history(room, seconds)
    return web.json_response(history_payload(room, seconds, window, points), dumps=_dumps)


async def try_message(request: web.Request) -> web.Response:
    """``POST /dashboard/api/classify`` ``{"texts": [...], "model": id}``: classify with a chosen model."""
    auth.require_admin(request)
    if keys.CLASSIFY not in request.app:
        raise web.HTTPServiceUnavailable(
            text='{"error": "no classifier is wired into this server"}', content_type="application/json"
        )
    if (request.content_length or 0) > MAX_TRY_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_TRY_BODY, actual_size=request.content_length or 0)
    try:
        data = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "body must be JSON"}, status=400)
    texts = data.get("texts") if isinstance(data, dict) else None
    model = data.get("model") if isinstance(data, dict) else None
    if (
        not isinstance(texts, list)
        or not texts
        or len(texts) > MAX_TRY_TEXTS
        or not all(isinstance(t, str) and t.strip() for t in texts)
    ):
        return web.json_response(
            {"error": f"'texts' must be 1 to {MAX_TRY_TEXTS} non-empty strings"}, status=400
        )
    if model is not None and not isinstance(model, str):
        return web.json_response({"error": "'model' must be a model id"}, status=400)
    texts = [t[:MAX_TEXT_CHARS] for t in texts]
    classify = request.app[keys.CLASSIFY]
    try:
        # onnxruntime blocks: never on the event loop.
        preds = await asyncio.to_thread(classify, texts, model or None)
    except ModelError as e:
        return web.json_response({"error": str(e)}, status=400)
    results = [
        {
            "text": t,
            "emotion": p.emotion,
            "confidence": round(p.confidence, 4),
            "scores": {k: round(v, 4) for k, v in p.as_dict().items()},
        }
        for t, p in zip(texts, preds, strict=True)
    ]
    return web.json_response(
        {"model": model or request.app[keys.CONFIG].classifier.model, "results": results}
    )


async def rotate_token(request: web.Request) -> web.Response:
    """``POST /api/overlay/{room}/rotate-token``: new overlay token; overlays on the old one are cut off."""
    auth.require_admin(request)
    room = room_name(request.match_info["room"])
    if room is None:
        return web.json_response({"error": "not a valid room name"}, status=400)
    request.app[keys.OVERLAY_TOKENS].rotate(room)
    cut = await request.app[keys.MOOD_NAMESPACE].revoke_stale(room)
    return web.json_response({"room": room, "urls": overlay_urls(request, room), "disconnected": cut})


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (CSRF-checked like every state change)."""
    auth.require_admin(request)
    response = web.json_response({"ok": True})
    auth.end_session(request, response)
    return response


def setup(app: web.Application) -> None:
    """Add the dashboard routes."""
    app.router.add_get("/dashboard", dashboard_page, name="dashboard")
    app.router.add_get("/dashboard/api/state", dashboard_state, name="dashboard_state")
    app.router.add_get("/dashboard/api/history", dashboard_history, name="dashboard_history")
    app.router.add_post("/dashboard/api/classify", try_message, name="dashboard_classify")
    app.router.add_post("/api/overlay/{room}/rotate-token", rotate_token, name="rotate_token")
    app.router.add_post("/logout", logout, name="logout")
