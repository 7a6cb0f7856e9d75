"""Per-room model selection over HTTP: ``GET/POST /api/rooms/{room}/model`` and a dashboard panel.

``POST /api/rooms/{room}/model`` ``{"model_id": "accurate"}`` (admin: bearer token, or the dashboard
session plus its CSRF header) switches the model that reads that room's chat, with no restart; the
pipeline loads the model before switching, so messages in flight finish on the old one and none is lost.
Per-request choice is ``POST /predict`` ``{"model_id": ...}`` (overlay/predict_api.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Protocol, TypedDict

from aiohttp import web

from engine.classify.base import ModelError
from overlay import auth
from overlay.panels import DashboardPanel, add_panel
from overlay.wire import room_name

MAX_BODY = 4096


class ModelSwitch(Protocol):
    """What this module needs of the pipeline (engine.pipeline.Pipeline has both methods)."""

    def set_model(self, model_id: str, room: str | None = None) -> None:
        """Switch the model of ``room`` (all rooms when None); loads it first, raises ModelError."""
        ...

    def model_for(self, room: str) -> str:
        """The model id that reads ``room`` now."""
        ...


class RoomModelPayload(TypedDict):
    """The answer of both routes: the room, its model now, and the ids it could switch to."""

    room: str
    model_id: str
    models: list[str]


class ModelSelect:
    """The routes' state: the pipeline's switch, the registry's ids and a loader run off the loop."""

    def __init__(
        self,
        switch: ModelSwitch,
        model_ids: Callable[[], list[str]],
        load: Callable[[str], object] | None = None,
    ) -> None:
        self.switch = switch
        self.model_ids = model_ids
        self.load = load

    def payload(self, room: str) -> RoomModelPayload:
        """The JSON body describing ``room``'s model."""
        return {"room": room, "model_id": self.switch.model_for(room), "models": self.model_ids()}


MODEL_SELECT: web.AppKey[ModelSelect] = web.AppKey("model_select", ModelSelect)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _room(request: web.Request) -> str | None:
    return room_name(request.match_info["room"])


async def get_room_model(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/model``: the room's model and the selectable ids."""
    auth.require_admin(request)
    room = _room(request)
    if room is None:
        return _error(400, "not a valid room name")
    return web.json_response(request.app[MODEL_SELECT].payload(room))


async def set_room_model(request: web.Request) -> web.Response:
    """``POST /api/rooms/{room}/model`` ``{"model_id": id}``: switch the room's model, no restart."""
    auth.require_admin(request)
    room = _room(request)
    if room is None:
        return _error(400, "not a valid room name")
    if (request.content_length or 0) > MAX_BODY:
        return _error(413, f"body over {MAX_BODY} bytes")
    try:
        data = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, 'body must be JSON: {"model_id": "..."}')
    model_id = data.get("model_id") if isinstance(data, dict) else None
    if not isinstance(model_id, str) or not model_id.strip():
        return _error(400, "'model_id' must be a non-empty string (GET this URL for the known ids)")
    model_id = model_id.strip()
    sel = request.app[MODEL_SELECT]
    try:
        if sel.load is not None:
            # Loading an ONNX file blocks for a while: never on the event loop. set_model then finds
            # it loaded and the switch itself is a dict assignment between two batches.
            await asyncio.to_thread(sel.load, model_id)
        sel.switch.set_model(model_id, room)
    except ModelError as exc:
        return _error(404, str(exc))
    return web.json_response(sel.payload(room))


def model_select_setup(
    switch: ModelSwitch,
    model_ids: Callable[[], list[str]],
    load: Callable[[str], object] | None = None,
    *,
    panel: bool = True,
) -> Callable[[web.Application], None]:
    """A ``create_app(extra_setup=...)`` function adding the routes and (optionally) the dashboard panel."""

    def setup(app: web.Application) -> None:
        app[MODEL_SELECT] = ModelSelect(switch, model_ids, load)
        app.router.add_get("/api/rooms/{room}/model", get_room_model, name="room_model")
        app.router.add_post("/api/rooms/{room}/model", set_room_model, name="room_model_set")
        if panel:
            add_panel(
                app, DashboardPanel(id="model", title="Model for this room", template="model_select.html")
            )

    return setup
