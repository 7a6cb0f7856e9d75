"""HTML pages: the per-room OBS overlay and its widgets, rendered with jinja2 (autoescape on).

Every overlay URL carries the room's read-only token: ``/overlay/<room>?token=...`` shows every widget,
``/overlay/<room>/<widget>?token=...`` one of them, so a streamer can place each one in OBS separately.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from engine.config import Config
from engine.emotions import EMOTIONS
from overlay import auth, keys
from overlay.broadcast import NAMESPACE
from overlay.wire import OverlaySettingsPayload, empty_snapshot_payload, room_name, snapshot_payload

WIDGETS = ("gauge", "heatmap", "timeline", "ticker", "alert")
"""Widgets that have their own URL; ``/overlay/<room>`` shows them all together."""
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_FONT = re.compile(r"^[\w \-]{0,64}$")


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
    env.globals["widgets"] = list(WIDGETS)
    return env


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    """Render ``name`` to an HTML response."""
    html = request.app[keys.TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html", status=status)


def overlay_settings(config: Config) -> OverlaySettingsPayload:
    """The overlay defaults from ``[overlay]``; raises ValueError naming a bad key."""
    oc = config.overlay
    colors: dict[str, str] = {e: str(getattr(oc, f"color_{e}")) for e in EMOTIONS}
    for emotion, value in colors.items():
        if not _HEX.match(value):
            raise ValueError(f'overlay.color_{emotion} must be a colour like "#43a047", got {value!r}')
    if not _FONT.match(oc.font):
        raise ValueError(
            f"overlay.font must be a font family name (letters, digits, spaces), got {oc.font!r}"
        )
    if not 1 <= oc.grid_rows <= 40 or not 1 <= oc.grid_cols <= 40:
        raise ValueError("overlay.grid_rows and overlay.grid_cols must be between 1 and 40")
    return {
        "theme": oc.theme,
        "font": oc.font,
        "scale": oc.scale or 1.0,
        "rows": oc.grid_rows,
        "cols": oc.grid_cols,
        "minutes": max(1, min(oc.timeline_minutes, config.aggregate.history_minutes)),
        "alert_seconds": oc.alert_seconds,
        "colors": colors,
        "namespace": NAMESPACE,
    }


def overlay_path(room: str, token: str, widget: str = "") -> str:
    """The path (with query) of a room's overlay, or of one widget of it."""
    path = f"/overlay/{quote(room, safe='')}" + (f"/{widget}" if widget else "")
    return f"{path}?{urlencode({'token': token})}"


async def index(request: web.Request) -> web.Response:
    """The landing page is the dashboard (which sends a browser without a session to the login)."""
    raise web.HTTPSeeOther(location="/dashboard")


async def overlay(request: web.Request) -> web.Response:
    """The OBS Browser Source page of one room: every widget, or the one named in the path."""
    room = room_name(request.match_info["room"])
    widget = request.match_info.get("widget", "")
    if room is None or (widget and widget not in WIDGETS):
        raise web.HTTPNotFound(text="not a valid room or widget")
    token = request.query.get("token", "")
    if not request.app[keys.OVERLAY_TOKENS].check(room, token):
        # 403 with a page OBS shows as-is: says what happened, never which token would have worked.
        return render(request, "overlay_denied.html", status=403, room=room)
    latest = request.app[keys.FEED].latest(room)
    config = request.app[keys.CONFIG]
    # The first paint shows the current mood before socket.io has even connected.
    initial = snapshot_payload(latest) if latest else empty_snapshot_payload(room, config.aggregate.windows)
    return render(
        request,
        "overlay.html",
        room=room,
        widget=widget or "all",
        shown=[widget] if widget else list(WIDGETS),
        initial=initial,
        settings=overlay_settings(config),
        user_css=bool(config.overlay.user_css),
    )


async def user_css(request: web.Request) -> web.Response:
    """The streamer's own stylesheet (``[overlay] user_css``), served from here so the CSP allows it."""
    config = request.app[keys.CONFIG]
    if not config.overlay.user_css:
        raise web.HTTPNotFound()
    try:
        text = config.resolve(config.overlay.user_css).read_text(encoding="utf-8")
    except OSError as e:
        raise web.HTTPNotFound(text=f"user CSS not readable: {e.strerror}") from None
    return web.Response(text=text, content_type="text/css", headers={"Cache-Control": "no-cache"})


async def login_page(request: web.Request) -> web.Response:
    """The dashboard login form."""
    return render(request, "login.html", next=auth.safe_next(request.query.get("next")), error="")


async def login_submit(request: web.Request) -> web.StreamResponse:
    """Check the admin token; on success set the session cookie and go where the user was heading."""
    form = await request.post()
    nxt = auth.safe_next(str(form.get("next", "")))
    if not auth.login_allowed(request):
        return render(request, "login.html", status=429, next=nxt, error="Too many attempts; wait a minute.")
    session = auth.try_login(request, str(form.get("token", "")))
    if session is None:
        return render(request, "login.html", status=401, next=nxt, error="That is not the admin token.")
    response = web.Response(status=303, headers={"Location": nxt})
    auth.set_session_cookie(request, response, session)
    return response


def setup(app: web.Application) -> None:
    """Add the page routes, the static files and the template environment."""
    app.router.add_static("/static", app[keys.WEB_DIRS].static, name="static")
    app[keys.TEMPLATES] = make_templates(app)
    app.router.add_get("/", index, name="index")
    app.router.add_get("/overlay/{room}", overlay, name="overlay")
    app.router.add_get("/overlay/{room}/{widget}", overlay, name="overlay_widget")
    app.router.add_get("/user/overlay.css", user_css, name="user_css")
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login_submit, name="login_submit")
