"""The dashboard's "Reports" panel: each room's sessions, and the review of every finished one.

``/reports/panel`` lists sessions (shown in a frame on the dashboard); ``/reports/<room>/<session>/``
serves that session's review, generating it first in a worker thread (one at a time, so a report never
competes with a live stream for more than one core) while a self-refreshing page shows the progress.
Everything is admin-only. A generated report is kept under ``[report] output_dir`` and served as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from engine.config import Config
from overlay import auth, keys
from overlay.pages import render
from overlay.panels import DashboardPanel, add_panel
from overlay.wire import room_name
from report.cli import Span, generate, safe_dir_name, zone
from report.data import ReportDB, ReportError, Session, parse_session_id, session_id
from report.render import FILES, csp_of

log = logging.getLogger(__name__)
_SID = re.compile(r"^\d{8}-\d{4}$")


@dataclass
class Job:
    """One report being generated: how far it got, or why it failed."""

    what: str = "waiting for another report to finish"
    fraction: float = 0.0
    error: str = ""
    done: bool = False
    started: float = field(default_factory=time.time)


@dataclass
class Reports:
    """The panel's state: config, the database path, jobs by (room, session id)."""

    config: Config
    db_path: Path
    jobs: dict[tuple[str, str], Job] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def out_dir(self, room: str, sid: str) -> Path:
        return self.config.resolve(self.config.report.output_dir) / safe_dir_name(room) / sid

    def sessions(self) -> dict[str, list[Session]]:
        """Every room's sessions, newest first (blocking: call in a thread)."""
        rc = self.config.report
        if not self.db_path.is_file():
            return {}
        with ReportDB(self.db_path) as db:
            return {
                room: db.sessions(room, rc.session_gap_minutes, rc.min_session_messages)[::-1]
                for room in db.rooms()
            }


REPORTS = web.AppKey("reports", Reports)


def report_url(room: str, sid: str) -> str:
    """Path of a session's review on the dashboard server."""
    return f"/reports/{quote(room, safe='')}/{sid}/"


async def panel_page(request: web.Request) -> web.Response:
    """The sessions of every room, newest first, with a link to each finished one's review."""
    auth.require_admin_page(request)
    state = request.app[REPORTS]
    try:
        sessions = await asyncio.to_thread(state.sessions)
    except ReportError as e:
        sessions, error = {}, str(e)
    else:
        error = ""
    tz = zone(state.config)
    rows: list[dict[str, Any]] = []
    for room, items in sorted(sessions.items()):
        for s in items:
            from datetime import datetime

            ready = (state.out_dir(room, s.id) / "report.html").is_file()
            rows.append(
                {
                    "room": room,
                    "id": s.id,
                    "when": datetime.fromtimestamp(s.start, tz).strftime("%Y-%m-%d %H:%M"),
                    "length": f"{s.minutes // 60} h {s.minutes % 60:02d}"
                    if s.minutes >= 60
                    else f"{s.minutes} min",
                    "messages": s.messages,
                    "finished": s.finished,
                    "ready": ready,
                    "url": report_url(room, s.id),
                }
            )
    return render(request, "reports_panel.html", rows=rows, error=error)


def _target(request: web.Request) -> tuple[str, str]:
    room = room_name(request.match_info["room"])
    sid = request.match_info["sid"]
    if room is None or not _SID.match(sid):
        raise web.HTTPNotFound(text="no such report")
    return room, sid


async def report_page(request: web.Request) -> web.StreamResponse:
    """A session's review: served if generated, else generated now (progress page meanwhile)."""
    auth.require_admin_page(request)
    room, sid = _target(request)
    state = request.app[REPORTS]
    html_path = state.out_dir(room, sid) / "report.html"
    job = state.jobs.get((room, sid))
    if html_path.is_file() and (job is None or job.done) and "refresh" not in request.query:
        html = await asyncio.to_thread(html_path.read_text, encoding="utf-8")
        # The report allows exactly its own inline script and style (by hash); the header says the same.
        return web.Response(
            text=html, content_type="text/html", headers={"Content-Security-Policy": csp_of(html)}
        )
    if job is not None and job.error:
        state.jobs.pop((room, sid), None)
        return render(
            request, "reports_progress.html", status=500, room=room, sid=sid, job=job, refresh=False
        )
    if job is None or (job.done and "refresh" in request.query):
        sessions = await asyncio.to_thread(state.sessions)
        start = parse_session_id(sid)
        found = [s for s in sessions.get(room, []) if s.start == start]
        if not found:
            raise web.HTTPNotFound(text=f"room {room!r} has no session {sid}")
        s = found[0]
        if not s.finished:
            job = Job(
                what="this session is still live: its review is made once chat has been quiet for "
                f"{state.config.report.session_gap_minutes:g} minutes"
            )
            return render(
                request, "reports_progress.html", status=409, room=room, sid=sid, job=job, refresh=False
            )
        job = state.jobs[(room, sid)] = Job()
        task = asyncio.create_task(_run(state, room, s, job))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
    return render(request, "reports_progress.html", room=room, sid=sid, job=job, refresh=True)


async def _run(state: Reports, room: str, s: Session, job: Job) -> None:
    def progress(what: str, fraction: float) -> None:
        job.what, job.fraction = what, fraction  # plain attribute writes from the worker thread

    async with state.lock:
        job.what = "starting"
        try:
            await asyncio.to_thread(
                generate,
                state.config,
                room,
                Span(s.start, s.end, s.id),
                state.out_dir(room, s.id),
                db_path=state.db_path,
                progress=progress,
            )
        except Exception as e:  # the panel shows it; the server keeps running
            log.exception("report for %s/%s failed", room, s.id)
            job.error = f"{type(e).__name__}: {e}"
        finally:
            job.done = True


async def report_file(request: web.Request) -> web.StreamResponse:
    """One export of a generated review (report.json, minutes.csv, ...)."""
    auth.require_admin(request)
    room, sid = _target(request)
    name = request.match_info["name"]
    if name not in FILES or name == "report.html":
        raise web.HTTPNotFound(text="no such file")
    path = request.app[REPORTS].out_dir(room, sid) / name
    if not path.is_file():
        raise web.HTTPNotFound(text="not generated yet")
    ctype = "application/json" if name.endswith(".json") else "text/csv"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": f"{ctype}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{safe_dir_name(room)}-{sid}-{name}"',
        },
    )


async def _no_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(location=request.path + "/")


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    # A report still being written when the server stops is abandoned (the thread finishes on its own).
    for task in list(app[REPORTS].tasks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def reports_setup(config: Config, db_path: Path | None = None) -> Callable[[web.Application], None]:
    """A create_app setup adding the Reports panel and routes."""

    def setup(app: web.Application) -> None:
        app[REPORTS] = Reports(config, db_path or config.resolve(config.store.path))
        r = app.router
        r.add_get("/reports/panel", panel_page, name="reports_panel")
        r.add_get("/reports/{room}/{sid}", _no_slash)
        r.add_get("/reports/{room}/{sid}/", report_page, name="report_page")
        r.add_get("/reports/{room}/{sid}/{name}", report_file, name="report_file")
        if keys.DASHBOARD_PANELS in app:
            add_panel(app, DashboardPanel(id="reports", title="Reports", url="/reports/panel", height=320))
        app.cleanup_ctx.append(_jobs_ctx)

    return setup


__all__ = ["REPORTS", "Reports", "report_url", "reports_setup", "session_id"]
