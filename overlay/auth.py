"""Admin authentication: bearer token for scripts, a login session for the dashboard, CSRF for browsers.

Contract other modules rely on: ``require_admin(request)`` returns None for an admin request and raises
``web.HTTPUnauthorized`` otherwise. Scripts and the ``moodcast`` CLI authenticate with
``Authorization: Bearer <admin token>``; the admin token comes from ``$MOODCAST_ADMIN_TOKEN`` or a
0600 file generated on first start (``var/admin-token``).

Browsers log in once (``POST /login`` with the admin token) and get a session cookie (HttpOnly,
SameSite=Strict). The cookie is signed with a key derived from the admin token, so sessions survive a
server restart and all end when the token changes. A state-changing request (POST, PUT, PATCH, DELETE)
that authenticates by cookie must also carry ``X-CSRF-Token`` (the page's ``<meta name="csrf-token">``)
and, when the browser sends one, a same-origin ``Origin`` header; ``require_admin`` checks both, so every
handler that calls it is CSRF-safe. Bearer requests need no CSRF token: a browser never adds that header
on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

ADMIN_TOKEN_ENV = "MOODCAST_ADMIN_TOKEN"
ADMIN_TOKEN = web.AppKey("admin_token", str)
"""The admin token; set by ``install_admin_token``."""

SESSION_COOKIE = "moodcast_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_FAILURES_PER_MINUTE = 10
"""Wrong tokens accepted per client address per minute before login answers 429."""


@dataclass
class _AuthState:
    """Per-app session settings and the small amount of mutable state logins need."""

    session_seconds: float = 12 * 3600.0
    revoked: set[str] = field(default_factory=set)
    failures: dict[str, list[float]] = field(default_factory=dict)


AUTH_STATE = web.AppKey("auth_state", _AuthState)


def load_admin_token(token_file: Path) -> tuple[str, str, bool]:
    """(token, where it came from, whether it was generated just now)."""
    env = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if env:
        return env, f"environment variable {ADMIN_TOKEN_ENV}", False
    if token_file.exists():
        return token_file.read_text(encoding="utf-8").strip(), str(token_file), False
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    # Created 0600 from the start: there is no moment when another user could read it.
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, str(token_file), True


def install_admin_token(app: web.Application, token: str, *, session_hours: float = 12.0) -> None:
    """Make ``token`` the admin credential of ``app`` (bearer and dashboard login)."""
    app[ADMIN_TOKEN] = token
    app[AUTH_STATE] = _AuthState(session_seconds=session_hours * 3600.0)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key(app: web.Application, purpose: str) -> bytes:
    # Derived, never the token itself: a leaked cookie reveals nothing that logs in elsewhere.
    return hashlib.sha256(f"moodcast:{purpose}:{app.get(ADMIN_TOKEN, '')}".encode()).digest()


def _sign(app: web.Application, purpose: str, msg: str) -> str:
    return _b64(hmac.new(_key(app, purpose), msg.encode(), hashlib.sha256).digest())


def _check_token(app: web.Application, given: str) -> bool:
    expected = app.get(ADMIN_TOKEN, "")
    return bool(expected) and bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def bearer_token(request: web.Request) -> str:
    """The request's ``Authorization: Bearer`` value ("" without one)."""
    return _bearer(request)


# -- sessions ---------------------------------------------------------------------------------------
def new_session(app: web.Application, now: float | None = None) -> str:
    """A signed session cookie value: ``expires.nonce.signature``."""
    state = app[AUTH_STATE]
    expires = int((time.time() if now is None else now) + state.session_seconds)
    body = f"{expires}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_sign(app, 'session', body)}"


def session_of(request: web.Request) -> str | None:
    """The request's valid session cookie value, or None."""
    value = request.cookies.get(SESSION_COOKIE, "")
    if not value or not request.app.get(ADMIN_TOKEN) or AUTH_STATE not in request.app:
        return None
    body, _, sig = value.rpartition(".")
    expires, _, _nonce = body.partition(".")
    if not expires.isdigit() or not hmac.compare_digest(sig, _sign(request.app, "session", body)):
        return None
    if int(expires) < time.time() or value in request.app[AUTH_STATE].revoked:
        return None
    return value


def csrf_token(request: web.Request) -> str:
    """The CSRF token of the request's session ("" without one); pages put it in a meta tag."""
    session = session_of(request)
    return _sign(request.app, "csrf", session) if session else ""


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        # Browsers send Sec-Fetch-Site even where they omit Origin (or send "null" under a strict
        # referrer policy); scripts send neither.
        return request.headers.get("Sec-Fetch-Site", "same-origin") in {"same-origin", "none"}
    return origin == f"{request.scheme}://{request.host}"


def is_admin(request: web.Request) -> bool:
    """True when the request carries the admin bearer token or a valid dashboard session."""
    if _check_token(request.app, _bearer(request)):
        return True
    return session_of(request) is not None


def require_admin(request: web.Request) -> None:
    """Raise 401 unless the request is an admin's; 403 for a cookie request failing the CSRF checks."""
    if _check_token(request.app, _bearer(request)):
        return
    session = session_of(request)
    if session is None:
        raise web.HTTPUnauthorized(
            text='{"error": "admin credentials required"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="moodcast"'},
        )
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER, "")
    expected = _sign(request.app, "csrf", session)
    if not (given and hmac.compare_digest(given, expected) and _same_origin(request)):
        raise web.HTTPForbidden(
            text='{"error": "missing or wrong CSRF token"}', content_type="application/json"
        )


def require_admin_page(request: web.Request) -> None:
    """For HTML pages: send a browser without a session to the login page."""
    if not is_admin(request):
        raise web.HTTPSeeOther(location=f"/login?next={request.rel_url.path_qs}")


# -- login / logout ----------------------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """A local path to go to after login; anything that could leave the site becomes the dashboard."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/dashboard"
    return value


def login_allowed(request: web.Request) -> bool:
    """False when this client has failed too often in the last minute (slows guessing to a crawl)."""
    fails = request.app[AUTH_STATE].failures.get(request.remote or "", [])
    now = time.monotonic()
    return sum(1 for t in fails if now - t < 60) < LOGIN_FAILURES_PER_MINUTE


def try_login(request: web.Request, token: str) -> str | None:
    """A new session cookie value when ``token`` is the admin token (and the request same-origin)."""
    state = request.app[AUTH_STATE]
    if _same_origin(request) and _check_token(request.app, token.strip()):
        return new_session(request.app)
    now = time.monotonic()
    key = request.remote or ""
    state.failures[key] = [t for t in state.failures.get(key, []) if now - t < 60] + [now]
    return None


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    """Attach the session cookie: HttpOnly, SameSite=Strict, Secure behind https."""
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(request.app[AUTH_STATE].session_seconds),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def end_session(request: web.Request, response: web.StreamResponse) -> None:
    """Revoke the request's session (until the process ends; the cookie is deleted too)."""
    session = session_of(request)
    if session is not None:
        request.app[AUTH_STATE].revoked.add(session)
    response.del_cookie(SESSION_COOKIE, path="/")
