"""Security headers on every response: a strict Content-Security-Policy and its companions.

Nothing on our pages loads from another origin and nothing is inline (no inline scripts, no style
attributes in markup), so the policy can be 'self' only. Overlay pages may be framed by our own
dashboard (its live preview); every other page refuses to be framed at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_BASE = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    # 'self' covers ws:/wss: to this same host in CSP 3 (Chromium, OBS's CEF).
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
)
OVERLAY_CSP = "; ".join((*_BASE, "frame-ancestors 'self'"))
PAGE_CSP = "; ".join((*_BASE, "frame-src 'self'", "frame-ancestors 'self'"))


def _csp_for(path: str) -> str:
    return OVERLAY_CSP if path.startswith("/overlay/") else PAGE_CSP


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add CSP, nosniff, same-origin referrers (overlay URLs carry their token) and a framing policy."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _apply(request, exc)
        raise
    if not response.prepared:
        _apply(request, response)
    return response


def _apply(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _csp_for(request.path))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.path.startswith("/overlay/"):
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    if request.path.startswith(("/dashboard", "/login")):
        headers.setdefault("Cache-Control", "no-store")
