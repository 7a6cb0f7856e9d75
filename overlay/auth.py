"""Admin authentication for state-changing endpoints.

Contract other modules rely on: ``require_admin(request)`` returns None for an admin request and raises
``web.HTTPUnauthorized`` otherwise. Scripts and the ``moodcast`` CLI authenticate with
``Authorization: Bearer <admin token>``; the admin token comes from ``$MOODCAST_ADMIN_TOKEN`` or a
0600 file generated on first start (``var/admin-token``).
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from aiohttp import web

ADMIN_TOKEN_ENV = "MOODCAST_ADMIN_TOKEN"
ADMIN_TOKEN = web.AppKey("admin_token", str)
"""The admin token; set by ``install_admin_token``."""


def load_admin_token(token_file: Path) -> tuple[str, str, bool]:
    """(token, where it came from, whether it was generated just now)."""
    env = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if env:
        return env, f"environment variable {ADMIN_TOKEN_ENV}", False
    if token_file.exists():
        return token_file.read_text(encoding="utf-8").strip(), str(token_file), False
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return token, str(token_file), True


def install_admin_token(app: web.Application, token: str) -> None:
    """Make ``token`` the admin credential of ``app``."""
    app[ADMIN_TOKEN] = token


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def is_admin(request: web.Request) -> bool:
    """True when the request carries the admin credential (compared in constant time)."""
    expected = request.app.get(ADMIN_TOKEN, "")
    given = _bearer(request)
    return bool(expected) and bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def require_admin(request: web.Request) -> None:
    """Raise 401 unless the request is an admin's."""
    if not is_admin(request):
        raise web.HTTPUnauthorized(
            text='{"error": "admin credentials required"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="moodcast"'},
        )
