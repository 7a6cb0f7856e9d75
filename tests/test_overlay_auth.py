"""Dashboard login, session cookie, CSRF and the bearer path, against a real server on loopback."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from engine.config import Config
from engine.types import Prediction
from overlay import keys
from overlay.app import create_app
from overlay.auth import SESSION_COOKIE, load_admin_token, require_admin, safe_next
from overlay.panels import DashboardPanel, add_panel
from overlay.tokens import OverlayTokens
from tests.fakes import FakeFeed, make_snapshot
from tests.servers import run_app

ADMIN = "correct-horse-battery"


def _fake_classify(texts: Sequence[str], model_id: str | None) -> list[Prediction]:
    if model_id == "missing":
        from engine.classify.base import ModelError

        raise ModelError("unknown model 'missing'; known models: fast")
    return [Prediction("angry" if "退钱" in t else "happy", 0.8, (0.8, 0, 0.2, 0, 0, 0)) for t in texts]


async def _protected(request: web.Request) -> web.Response:
    require_admin(request)  # what other packages' endpoints (e.g. `moodcast obs pause`) do
    return web.json_response({"ok": True})


def _app() -> web.Application:
    def extra(app: web.Application) -> None:
        app[keys.CLASSIFY] = _fake_classify
        app[keys.MODEL_IDS] = lambda: ["fast", "other"]
        app.router.add_post("/api/other/pause", _protected)
        add_panel(app, DashboardPanel(id="obs", title="OBS <scenes>", url="/api/rooms"))

    feed = FakeFeed()
    feed.push(make_snapshot("demo"))
    return create_app(feed, Config(), extra_setup=[extra], tokens=OverlayTokens(), admin_token=ADMIN)


def _session(base: str) -> aiohttp.ClientSession:
    # unsafe=True: aiohttp's jar otherwise ignores cookies set by an IP address such as 127.0.0.1.
    return aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _login(http: aiohttp.ClientSession, base: str, token: str = ADMIN) -> aiohttp.ClientResponse:
    return await http.post(
        "/login",
        data={"token": token, "next": "/dashboard?room=demo"},
        headers={"Origin": base},
        allow_redirects=False,
    )


async def _csrf(http: aiohttp.ClientSession) -> str:
    async with http.get("/dashboard?room=demo") as r:
        assert r.status == 200
        page = await r.text()
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert m
    return m.group(1)


async def test_dashboard_needs_login_and_sets_a_strict_httponly_cookie() -> None:
    async with run_app(_app()) as base, _session(base) as http:
        async with http.get("/dashboard", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/login?next=/dashboard")
        async with http.get("/dashboard/api/state") as r:
            assert r.status == 401
        r = await _login(http, base, "wrong")
        assert r.status == 401 and SESSION_COOKIE not in r.cookies
        r = await _login(http, base)
        assert r.status == 303 and r.headers["Location"] == "/dashboard?room=demo"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        async with http.get("/dashboard?room=demo") as r:
            page = await r.text()
        assert r.status == 200 and "Try a message" in page
        assert "OBS &lt;scenes&gt;" in page and 'src="/api/rooms"' in page  # the extension panel
        assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
        async with http.get("/dashboard/api/state?room=demo") as r:
            state = await r.json()
        assert state["room"] == "demo" and state["models"] == ["fast", "other"]
        assert state["room_stats"]["total_messages"] == 100


async def test_login_from_another_origin_is_refused_and_guessing_is_throttled() -> None:
    async with run_app(_app()) as base, _session(base) as http:
        r = await http.post(
            "/login", data={"token": ADMIN}, headers={"Origin": "http://evil.example"}, allow_redirects=False
        )
        assert r.status == 401
        statuses = [(await _login(http, base, f"guess{i}")).status for i in range(12)]
        assert statuses[-1] == 429
        # Even the right token waits out the lockout.
        assert (await _login(http, base)).status == 429


async def test_state_changes_need_csrf_token_and_same_origin() -> None:
    async with run_app(_app()) as base, _session(base) as http:
        await _login(http, base)
        csrf = await _csrf(http)
        body = {"texts": ["退钱！骗子", "主播好可爱"], "model": "fast"}
        async with http.post("/dashboard/api/classify", json=body) as r:
            assert r.status == 403  # cookie alone: a cross-site form could do that
        async with http.post("/dashboard/api/classify", json=body, headers={"X-CSRF-Token": "x" + csrf}) as r:
            assert r.status == 403
        async with http.post(
            "/dashboard/api/classify",
            json=body,
            headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
        ) as r:
            assert r.status == 403
        async with http.post(
            "/dashboard/api/classify", json=body, headers={"X-CSRF-Token": csrf, "Origin": base}
        ) as r:
            assert r.status == 200
            result = await r.json()
        assert [x["emotion"] for x in result["results"]] == ["angry", "happy"]
        assert result["results"][0]["scores"]["happy"] == 0.8
        bad = {"texts": ["x"], "model": "missing"}
        async with http.post("/dashboard/api/classify", json=bad, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 400 and "missing" in (await r.json())["error"]
        async with http.post(
            "/dashboard/api/classify", json={"texts": []}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 400
        # Another package's endpoint gets the same protection through require_admin.
        async with http.post("/api/other/pause") as r:
            assert r.status == 403
        async with http.post("/api/other/pause", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        # Logging out ends the session server-side, not just in this cookie jar.
        cookie = http.cookie_jar.filter_cookies(URL(base))[SESSION_COOKIE].value
        replayed = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
        async with (
            aiohttp.ClientSession(base) as other,
            other.get("/dashboard/api/state", headers=replayed) as r,
        ):
            assert r.status == 200
        async with http.post("/logout", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        async with (
            aiohttp.ClientSession(base) as other,
            other.get("/dashboard/api/state", headers=replayed) as r,
        ):
            assert r.status == 401


async def test_bearer_token_needs_no_csrf_and_forged_cookies_fail() -> None:
    async with run_app(_app()) as base:
        async with _session(base) as http:
            async with http.post("/api/other/pause", headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                assert r.status == 200
            async with http.post("/api/other/pause", headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401 and "Bearer" in r.headers["WWW-Authenticate"]
        forged = "9999999999.abc.AAAA"
        async with (
            aiohttp.ClientSession(base) as http,
            http.get("/dashboard/api/state", headers={"Cookie": f"{SESSION_COOKIE}={forged}"}) as r,
        ):
            assert r.status == 401


async def test_app_without_admin_token_refuses_everyone() -> None:
    app = create_app(FakeFeed(), Config())
    async with run_app(app) as base, _session(base) as http:
        assert (await _login(http, base, "")).status == 401
        async with http.post("/api/overlay/demo/rotate-token", headers={"Authorization": "Bearer "}) as r:
            assert r.status == 401


def test_admin_token_is_generated_once_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOODCAST_ADMIN_TOKEN", raising=False)
    path = tmp_path / "var" / "admin-token"
    token, where, generated = load_admin_token(path)
    assert generated and where == str(path) and len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_admin_token(path) == (token, str(path), False)
    monkeypatch.setenv("MOODCAST_ADMIN_TOKEN", "from-env")
    assert load_admin_token(path)[:2] == ("from-env", "environment variable MOODCAST_ADMIN_TOKEN")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/dashboard?room=a", "/dashboard?room=a"),
        ("//evil.example/x", "/dashboard"),
        ("https://evil.example", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("", "/dashboard"),
    ],
)
def test_login_redirects_only_to_local_paths(value: str, expected: str) -> None:
    assert safe_next(value) == expected


def test_panels_validate_their_shape() -> None:
    with pytest.raises(ValueError, match="url must be a path"):
        DashboardPanel(id="x", title="x", url="https://evil.example/")
    with pytest.raises(ValueError, match="exactly one"):
        DashboardPanel(id="x", title="x")
    with pytest.raises(ValueError, match="lowercase"):
        DashboardPanel(id="X Y", title="x", url="/x")
