"""The read-only REST API: rooms, a room's current snapshot, health."""

from __future__ import annotations

import dataclasses
import functools
import json

from aiohttp import web

from overlay import auth, keys
from overlay.wire import room_name, snapshot_payload


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def list_rooms(request: web.Request) -> web.Response:
    """``GET /api/rooms``: every room seen so far, sorted."""
    return web.json_response({"rooms": request.app[keys.FEED].rooms()})


def _may_read_room(request: web.Request, room: str) -> bool:
    """The room's overlay token (``?token=`` or ``Authorization: Bearer``) or the admin's credentials."""
    tokens = request.app[keys.OVERLAY_TOKENS]
    given = request.query.get("token") or auth.bearer_token(request)
    return tokens.check(room, given) or auth.is_admin(request)


async def room_snapshot(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/snapshot``: the room's latest snapshot, or 404 if it has none.

    The snapshot carries recent chat text, so it needs what the room's overlay needs: its token (or admin).
    """
    room = room_name(request.match_info["room"])
    if room is None:
        return _error(404, "not a valid room name")
    if not _may_read_room(request, room):
        return web.json_response(
            {"error": "this room's overlay token (?token=) or admin credentials required"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="moodcast"'},
        )
    latest = request.app[keys.FEED].latest(room)
    if latest is None:
        return _error(404, f"no data for room {room!r}")
    return web.json_response(snapshot_payload(latest))


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: liveness plus the pipeline's counters."""
    return web.json_response({"ok": True, "stats": request.app[keys.FEED].stats()}, dumps=_dumps)


def _jsonable(obj: object) -> object:
    # Stats may carry QueueStats dataclasses or paths; health must never fail over formatting.
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


_dumps = functools.partial(json.dumps, default=_jsonable)


def setup(app: web.Application) -> None:
    """Add the REST routes."""
    app.router.add_get("/api/rooms", list_rooms, name="api_rooms")
    app.router.add_get("/api/rooms/{room}/snapshot", room_snapshot, name="api_room_snapshot")
    app.router.add_get("/healthz", healthz, name="healthz")
