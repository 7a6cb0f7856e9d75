"""The dashboard's extension point: other packages add their own panels without touching the dashboard.

A setup function passed to ``create_app(extra_setup=[...])`` (OBS scene automation, the bot's moderator
queue, ...) calls::

    from overlay.panels import DashboardPanel, add_panel

    def setup(app: web.Application) -> None:
        app.router.add_get("/obs/panel", obs_panel_page)          # your own page, your own module
        add_panel(app, DashboardPanel(id="obs", title="OBS scenes", url="/obs/panel"))
        # or render a jinja2 template of yours inside the dashboard page itself:
        add_panel(app, DashboardPanel(id="modq", title="Moderator queue", template="bot/modq.html"))

``url`` panels are shown in a same-origin ``<iframe>`` (the dashboard's CSP allows only 'self'): the
page behind it should call ``overlay.auth.require_admin_page`` and, for its POSTs, send the
``X-CSRF-Token`` from ``overlay.auth.csrf_token(request)`` (``require_admin`` checks it). ``template``
panels are included with the dashboard's context (``room``, ``rooms``, ``csrf``); the template lives in
``templates/`` and must not use inline scripts or styles (the CSP forbids them): add a static JS module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from overlay import keys

_ID = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


@dataclass(frozen=True, slots=True)
class DashboardPanel:
    """One extra dashboard panel: a same-origin page shown in a frame, or a template included inline."""

    id: str
    title: str
    url: str = ""
    template: str = ""
    height: int = 360
    """Frame height in CSS pixels (``url`` panels)."""

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"panel id {self.id!r} must be lowercase letters, digits and '-'")
        if bool(self.url) == bool(self.template):
            raise ValueError(f"panel {self.id!r} needs exactly one of url or template")
        if self.url and (not self.url.startswith("/") or self.url.startswith("//")):
            raise ValueError(f"panel {self.id!r}: url must be a path on this server, got {self.url!r}")


def add_panel(app: web.Application, panel: DashboardPanel) -> None:
    """Append ``panel`` to the dashboard (call from a setup function, before the app starts)."""
    panels = app[keys.DASHBOARD_PANELS]
    if any(p.id == panel.id for p in panels):
        raise ValueError(f"a dashboard panel with id {panel.id!r} is already registered")
    panels.append(panel)
