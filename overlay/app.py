"""The aiohttp application factory: builds the app, starts nothing (``main`` in the CLI runs it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from engine.config import Config
from engine.feed import MoodFeed
from overlay import api, auth, broadcast, dashboard, keys, pages, trending
from overlay.security import security_headers
from overlay.tokens import OverlayTokens


@dataclass(frozen=True, slots=True)
class WebDirs:
    """The front end's directories: jinja2 templates and static files."""

    templates: Path
    static: Path


def find_web_dirs() -> WebDirs:
    """``<repo>/templates`` and ``<repo>/static`` in a source checkout, else the copies inside the wheel."""
    package = Path(__file__).resolve().parent
    checkout = package.parent
    # Test for our own file: a stray "templates" dir in site-packages must not be mistaken for ours.
    if (checkout / "templates" / "overlay.html").is_file():
        return WebDirs(checkout / "templates", checkout / "static")
    # pyproject's force-include puts them under the package when built as a wheel.
    return WebDirs(package / "templates", package / "static")


def create_app(
    feed: MoodFeed,
    config: Config,
    *,
    extra_setup: Sequence[Callable[[web.Application], None]] = (),
    tokens: OverlayTokens | None = None,
    admin_token: str = "",
) -> web.Application:
    """Build the overlay web app (pages, dashboard, REST, socket.io) for ``feed``; nothing runs yet.

    ``tokens`` holds the rooms' overlay tokens (default: in memory only); ``admin_token`` enables the
    dashboard login and bearer access (without one, every admin request is refused).
    """
    # Validate the overlay settings now: a bad colour in config.toml stops start-up, not a page.
    pages.overlay_settings(config)
    app = web.Application(middlewares=[security_headers])
    app[keys.FEED] = feed
    app[keys.CONFIG] = config
    app[keys.WEB_DIRS] = find_web_dirs()
    app[keys.OVERLAY_TOKENS] = tokens if tokens is not None else OverlayTokens()
    app[keys.TRENDING] = trending.Trending(config.overlay.ticker_window_seconds, config.overlay.ticker_items)
    app[keys.DASHBOARD_PANELS] = []
    auth.install_admin_token(app, admin_token, session_hours=config.dashboard.session_hours)
    pages.setup(app)
    api.setup(app)
    broadcast.setup(app)
    dashboard.setup(app)
    app.cleanup_ctx.append(trending.trending_ctx)
    # Other packages (ingest, OBS, bot panels) add their routes, hooks and dashboard panels here,
    # before the router freezes.
    for setup in extra_setup:
        setup(app)
    return app
