"""Security: every route of the built app refuses anonymous callers unless listed public here; socket.io
namespaces check credentials; tokens are compared in constant time and never logged; binds 127.0.0.1.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import socketio
from aiohttp import web

from engine.config import Config, ServerConfig, StoreConfig
from tests.servers import run_app

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin-token-for-security-tests-0123"
INGEST = "ingest-token-for-security-tests-4567"
STREAMER = "streamer-token-for-security-tests-89"

# Anonymous access by design, each with its reason. Anything else must refuse (401/403 or a redirect to
# /login). A new public route fails test_every_route_refuses_anonymous_callers until it is listed here.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/"): "index: links to the dashboard login, no data",
    ("GET", "/static"): "scripts, styles, fonts",
    ("GET", "/login"): "the login form",
    ("POST", "/login"): "the login itself (rate limited per address)",
    ("POST", "/logout"): "ends the caller's own session, if any",
    ("GET", "/user/overlay.css"): "the operator's overlay CSS (loaded by token-protected overlay pages)",
    ("GET", "/api/rooms"): "room names only",
    ("GET", "/healthz"): "liveness and counters for monitoring; no chat text, no tokens",
    ("GET", "/models"): "the model registry: ids, sizes, scores",
    ("POST", "/predict"): "stateless classification of the caller's own text (bounded size)",
    ("POST", "/predict/batch"): "stateless classification of the caller's own texts (bounded size)",
    ("GET", "/socket.io/"): "engine.io transport; the /mood namespace checks credentials on connect",
    ("POST", "/socket.io/"): "engine.io transport (long polling)",
    ("OPTIONS", "/socket.io/"): "engine.io transport (CORS preflight)",
    ("GET", "/reports/{room}/{sid}"): "only redirects to the same path with a slash (which needs admin)",
}
PARAMS = {"room": "demo", "widget": "gauge", "name": "anger", "id": "1", "sid": "1", "name_": "x"}


@pytest.fixture
async def service_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[web.Application]:
    """The app exactly as ``moodcast run`` builds it (no sources), secrets from the environment."""
    monkeypatch.setenv("MOODCAST_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("MOODCAST_INGEST_TOKEN", INGEST)
    monkeypatch.setenv("MOODCAST_STREAMER_TOKEN", STREAMER)
    from moodcast.service import build_app, build_service

    cfg = replace(Config(), base_dir=str(tmp_path), store=StoreConfig(path="s.db"))
    yield build_app(build_service(cfg, with_sources=False))


def _path(canonical: str) -> str:
    return re.sub(r"\{(\w+)[^}]*\}", lambda m: PARAMS.get(m.group(1), "x"), canonical)


def _refused(status: int, location: str) -> bool:
    return status in (401, 403) or (status in (302, 303) and location.startswith("/login"))


async def test_every_route_refuses_anonymous_callers(service_app: web.Application) -> None:
    routes = sorted(
        {(r.method, r.resource.canonical) for r in service_app.router.routes() if r.resource is not None}
    )
    assert len(routes) > 40  # the whole app, bot, OBS, reports and ingest included
    failures = []
    async with run_app(service_app) as base, aiohttp.ClientSession(base) as http:
        for method, canonical in routes:
            key = ("GET" if method == "HEAD" else method, canonical)
            path = _path(canonical) + ("/x.css" if canonical == "/static" else "")
            async with http.request(method, path, allow_redirects=False, data=b"{}") as r:
                status, location = r.status, r.headers.get("Location", "")
            assert status < 500, f"{method} {canonical} answered {status}"
            if key in PUBLIC:
                continue
            if not _refused(status, location):
                failures.append(f"{method} {canonical} -> {status}")
        # A token of the wrong kind opens nothing either.
        async with http.post(
            "/api/bot/kill", json={"on": True}, headers={"Authorization": f"Bearer {INGEST}"}
        ) as r:
            assert r.status == 401
        async with http.get("/api/rooms/demo/snapshot", headers={"Authorization": f"Bearer {STREAMER}"}) as r:
            assert r.status == 401
        async with http.post(
            "/api/bot/kill", json={"on": False}, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as r:
            assert r.status == 200  # and the right one does
    assert not failures, (
        "routes open to anonymous callers (add to PUBLIC only if that is intended):\n" + "\n".join(failures)
    )


async def test_socketio_namespaces_refuse_without_credentials(service_app: web.Application) -> None:
    async with run_app(service_app) as base:
        for namespace, auth in [("/mood", None), ("/mood", {"room": "demo", "token": "wrong"}), ("/", None)]:
            client = socketio.AsyncClient(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect(
                    base, namespaces=[namespace], auth=auth, transports=["websocket"], wait_timeout=5
                )
            await client.disconnect()
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(base, namespaces=["/admin"], transports=["websocket"], wait_timeout=5)
        await client.disconnect()


async def test_tokens_are_never_logged(
    service_app: web.Application,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Generation, use and misuse of every kind of token: no token text in any log record."""
    caplog.set_level(logging.DEBUG)
    from moodcast.service import ingest_token
    from overlay.auth import load_admin_token
    from overlay.tokens import OverlayTokens

    monkeypatch.delenv("MOODCAST_INGEST_TOKEN")
    monkeypatch.delenv("MOODCAST_ADMIN_TOKEN")
    generated = [
        ingest_token(replace(Config(), base_dir=str(tmp_path)))[0],
        load_admin_token(tmp_path / "admin-token")[0],
    ]
    tokens = OverlayTokens(tmp_path / "overlay-tokens.json")
    generated += [tokens.get_or_create("demo"), tokens.rotate("demo")]
    overlay = service_app[_overlay_key()].get_or_create("demo")
    near_miss = ADMIN[:-1] + "X"
    async with run_app(service_app) as base, aiohttp.ClientSession(base) as http:
        for token in (near_miss, INGEST, overlay, "guess"):
            async with http.post(
                "/api/ingest", json={"text": "x"}, headers={"Authorization": f"Bearer {token}"}
            ):
                pass
            async with http.get("/api/bot/status", headers={"Authorization": f"Bearer {token}"}):
                pass
            async with http.post("/login", data={"token": token}, allow_redirects=False):
                pass
            async with http.get(f"/overlay/demo?token={token}"):
                pass
            async with http.get(f"/bot/streamer/demo?token={token}"):
                pass
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                base, namespaces=["/mood"], auth={"room": "demo", "token": near_miss}, wait_timeout=5
            )
        await client.disconnect()
    # tests/servers.run_app keeps aiohttp's access log (request lines carry ?token=); moodcast run turns it
    # off, which the last assertion checks, so those records are not what production writes.
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records)
    assert "rejected a bad token" in text  # failures are logged...
    for secret in [ADMIN, INGEST, STREAMER, overlay, near_miss, *generated]:
        assert secret not in text  # ...without the token, right or wrong
    # The request line (with ?token=) would reach the access log: moodcast run has none.
    from moodcast import cli

    assert "access_log=None" in inspect.getsource(cli._serve)


def _overlay_key() -> object:
    from overlay import keys

    return keys.OVERLAY_TOKENS


def test_tokens_are_compared_in_constant_time_only() -> None:
    """No ``==``/``!=`` on anything named like a secret; hmac.compare_digest everywhere tokens are checked."""
    pattern = re.compile(
        r"(token|secret|password|signature|sig)\w*['\"\])]*\s*(==|!=)\s|\s(==|!=)\s*[\w.]*(token|secret|password)\b",
        re.IGNORECASE,
    )
    offenders = []
    for pkg in ("engine", "overlay", "bot", "moodcast", "report"):
        for path in (ROOT / pkg).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if pattern.search(code) and "is None" not in code and '""' not in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    checks = {
        "engine/sources/ingest.py": "compare_digest",
        "overlay/auth.py": "compare_digest",
        "overlay/tokens.py": "compare_digest",
        "bot/web.py": "compare_digest",
    }
    for rel, needle in checks.items():
        assert needle in (ROOT / rel).read_text(encoding="utf-8"), rel


def test_default_bind_is_loopback() -> None:
    assert ServerConfig().host == "127.0.0.1"
    assert Config().obs.host == "127.0.0.1"
    toml = (ROOT / "config.toml").read_text(encoding="utf-8")
    assert re.search(r'^host = "127\.0\.0\.1"$', toml, re.MULTILINE)
