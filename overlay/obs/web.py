"""OBS automation on the web: REST endpoints, the dashboard panel, and the controller's lifecycle.

Every endpoint needs an admin (``overlay.auth.require_admin``: the bearer token for scripts and the
``moodcast obs`` CLI, the dashboard session plus CSRF token for browsers).

- ``GET  /api/obs``                state, rules, recent actions
- ``POST /api/obs/pause``          producer override: automation does nothing in OBS until resumed
- ``POST /api/obs/resume``
- ``POST /api/obs/rules/{name}``   JSON with any of ``engine.rules.EDITABLE``; saved to ``rules_state_file``
- ``GET  /obs/panel``              the dashboard panel page
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from overlay import auth, keys
from overlay.obs.controller import ObsController
from overlay.pages import render

SNAPSHOT_SUBSCRIBER = "obs"


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _disabled_status() -> dict[str, Any]:
    return {
        "enabled": False,
        "state": "disabled",
        "detail": "scene automation is off ([obs] enabled = false)",
        "rules": [],
        "recent": [],
    }


async def obs_status(request: web.Request) -> web.Response:
    """``GET /api/obs``."""
    auth.require_admin(request)
    ctl = request.app[keys.OBS_CONTROLLER]
    return web.json_response(ctl.status() if ctl else _disabled_status())


def _set_paused(paused: bool) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        auth.require_admin(request)
        ctl = request.app[keys.OBS_CONTROLLER]
        if ctl is None:
            return _json_error(409, "scene automation is off ([obs] enabled = false)")
        via = " from the CLI" if request.headers.get("Authorization") else " from the dashboard"
        await ctl.set_paused(paused, via)
        return web.json_response({"paused": ctl.director.paused})

    return handler


async def edit_rule(request: web.Request) -> web.Response:
    """``POST /api/obs/rules/{name}`` with e.g. ``{"enabled": false}`` or ``{"threshold": 0.6}``."""
    auth.require_admin(request)
    ctl = request.app[keys.OBS_CONTROLLER]
    if ctl is None:
        return _json_error(409, "scene automation is off ([obs] enabled = false)")
    try:
        body = await request.json()
    except ValueError:
        return _json_error(400, "body must be a JSON object")
    if not isinstance(body, dict) or not body:
        return _json_error(400, "body must be a non-empty JSON object of rule fields")
    name = request.match_info["name"]
    try:
        rule = await ctl.edit_rule(name, body)
    except KeyError:
        return _json_error(404, f"no rule called {name!r}")
    except ValueError as e:
        return _json_error(400, str(e))
    return web.json_response(rule.describe())


async def panel_page(request: web.Request) -> web.Response:
    """The OBS panel (shown in a frame on the dashboard, or on its own)."""
    auth.require_admin_page(request)
    return render(request, "obs_panel.html", csrf=auth.csrf_token(request))


async def _run_controller(app: web.Application) -> AsyncIterator[None]:
    ctl = app[keys.OBS_CONTROLLER]
    if ctl is None:
        yield
        return
    feed = app[keys.FEED]
    queue = feed.snapshots.subscribe(SNAPSHOT_SUBSCRIBER)
    task = asyncio.create_task(ctl.run(queue), name="obs-controller")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        feed.snapshots.unsubscribe(SNAPSHOT_SUBSCRIBER)


def setup(app: web.Application, controller: ObsController | None) -> None:
    """Add the OBS routes and panel; run ``controller`` (if any) while the app serves."""
    app[keys.OBS_CONTROLLER] = controller
    app.router.add_get("/api/obs", obs_status, name="api_obs")
    app.router.add_post("/api/obs/pause", _set_paused(True), name="api_obs_pause")
    app.router.add_post("/api/obs/resume", _set_paused(False), name="api_obs_resume")
    app.router.add_post("/api/obs/rules/{name}", edit_rule, name="api_obs_rule")
    app.router.add_get("/obs/panel", panel_page, name="obs_panel")
    app.cleanup_ctx.append(_run_controller)
    if keys.DASHBOARD_PANELS in app:
        from overlay.panels import DashboardPanel, add_panel

        add_panel(app, DashboardPanel(id="obs", title="OBS scene automation", url="/obs/panel", height=520))
