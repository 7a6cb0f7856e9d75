"""HTML pages: the landing page and the per-room OBS overlay, rendered with jinja2 (autoescape on)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from engine.emotions import EMOTIONS
from overlay import keys
from overlay.wire import empty_snapshot_payload, room_name, snapshot_payload


def make_templates(app: web.Application) -> jinja2.Environment:
    """A jinja2 environment over the app's templates dir, autoescaping every page."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(app[keys.WEB_DIRS].templates),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    def static_url(path: str) -> str:
        # The content hash in the URL makes OBS's cache-happy browser pick up new assets after upgrades.
        resource = app.router["static"]
        assert isinstance(resource, web.StaticResource)
        return str(resource.url_for(filename=path, append_version=True))

    env.globals["static_url"] = static_url
    # Room names are free text: quote everything, "/" included, so a link is always one path segment.
    env.filters["path_segment"] = lambda value: quote(str(value), safe="")
    env.globals["emotions"] = list(EMOTIONS)
    return env


def render(request: web.Request, name: str, **context: Any) -> web.Response:
    """Render ``name`` to an HTML response."""
    html = request.app[keys.TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html")


async def index(request: web.Request) -> web.Response:
    """Landing page: every room seen so far, each linking to its overlay."""
    feed = request.app[keys.FEED]
    return render(request, "index.html", rooms=feed.rooms())


async def overlay(request: web.Request) -> web.Response:
    """The OBS Browser Source page of one room."""
    room = room_name(request.match_info["room"])
    if room is None:
        raise web.HTTPNotFound(text="not a valid room name")
    latest = request.app[keys.FEED].latest(room)
    windows = request.app[keys.CONFIG].aggregate.windows
    # The first paint shows the current mood before socket.io has even connected.
    initial = snapshot_payload(latest) if latest else empty_snapshot_payload(room, windows)
    return render(request, "overlay.html", room=room, initial=initial)


def setup(app: web.Application) -> None:
    """Add the page routes, the static files and the template environment."""
    app.router.add_static("/static", app[keys.WEB_DIRS].static, name="static")
    app[keys.TEMPLATES] = make_templates(app)
    app.router.add_get("/", index, name="index")
    app.router.add_get("/overlay/{room}", overlay, name="overlay")
