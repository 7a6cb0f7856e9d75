"""The aiohttp application factory: builds the app, starts nothing (``main`` in the CLI runs it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from engine.config import Config
from engine.feed import MoodFeed
from overlay import api, broadcast, keys, pages


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
) -> web.Application:
    """Build the overlay web app (pages, REST, socket.io) for ``feed``; nothing runs until it is served."""
    app = web.Application()
    app[keys.FEED] = feed
    app[keys.CONFIG] = config
    app[keys.WEB_DIRS] = find_web_dirs()
    pages.setup(app)
    api.setup(app)
    broadcast.setup(app)
    # Other packages (dashboard, ingest) add their routes and hooks here, before the router freezes.
    for setup in extra_setup:
        setup(app)
    return app
