"""The OBS overlay and the dashboard in a real headless Chromium, fed live through socket.io."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from engine.config import Config
from engine.emotions import EMOTIONS
from engine.types import MinuteCounts, Prediction, RecentMessage, TriggerEvent
from overlay import keys
from overlay.app import create_app
from overlay.tokens import OverlayTokens
from tests.conftest import ROOT, require_real
from tests.fakes import FakeFeed, make_snapshot
from tests.servers import run_app

pytestmark = pytest.mark.browser

RGB = {  # the default colours of config.toml [overlay]
    "happy": (0x43, 0xA0, 0x47),
    "excited": (0xFB, 0x8C, 0x00),
    "angry": (0xE5, 0x39, 0x35),
    "sad": (0x1E, 0x88, 0xE5),
    "anxious": (0x8E, 0x24, 0xAA),
    "neutral": (0x9E, 0x9E, 0x9E),
}
ADMIN = "browser-admin-token"

# Counts canvas pixels near each given colour (any opacity above 40%); runs in the page.
COUNT_PIXELS_JS = """
([id, colors]) => {
  const c = document.getElementById(id);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const counts = colors.map(() => 0);
  let painted = 0;
  for (let i = 0; i < d.length; i += 4) {
    const a = d[i + 3];
    if (a < 100) continue;
    painted += 1;
    colors.forEach(([r, g, b], k) => {
      // Un-premultiply against the transparent background before comparing.
      const near = Math.abs(d[i] - r) < 16 && Math.abs(d[i + 1] - g) < 16 && Math.abs(d[i + 2] - b) < 16;
      if (near) counts[k] += 1;
    });
  }
  return { counts, painted, total: d.length / 4 };
}
"""
NEXT_FRAME_JS = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
SETTLE_JS = "() => new Promise((r) => setTimeout(r, 700))"  # heatmap cells finish growing in

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned=2">',
    '"><svg onload=window.__pwned=3>',
    "javascript:window.__pwned=4",
    '<a href="javascript:window.__pwned=5">click</a>',
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "</script><script>window.__pwned=6</script>",
    "\u202eRTL override: evil.exe\u202c and \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "zero\u200bwidth\u200d\u200cjoiners\ufeff" * 20,
    "W" * 2000,
    "哈" * 2000,
    "\U0001f600" * 500,
    "<style>body{display:none}</style>",
    "<iframe src=//evil.example></iframe>",
]


def _require_vendor() -> None:
    vendored = (ROOT / "static" / "vendor" / "socket.io.min.js").is_file()
    require_real("the vendored socket.io client", vendored, "run `make assets` (npm ci && npm run build)")


def _rich_snapshot(room: str = "demo", seed: int = 7) -> Any:
    rnd = random.Random(seed)
    weights = [4, 3, 2, 1, 1, 2]
    recent = [(rnd.choices(EMOTIONS, weights)[0], rnd.uniform(0.5, 1.0)) for _ in range(100)]
    shares = {"happy": 0.34, "excited": 0.26, "angry": 0.14, "sad": 0.06, "anxious": 0.06, "neutral": 0.14}
    snap = make_snapshot(room, shares, rate=18.4, recent=recent, total_messages=4321)
    end = int(snap.ts // 60 * 60)
    minutes = tuple(
        MinuteCounts(end - 60 * k, tuple(float(rnd.randint(2, 30)) for _ in EMOTIONS), 90) for k in range(30)
    )
    return dataclasses.replace(snap, minutes=minutes, trend=0.12)


def _publish_chat(feed: FakeFeed, room: str, texts: Sequence[tuple[str, str]]) -> None:
    from engine.types import ChatMessage, ClassifiedMessage

    for i, (text, emotion) in enumerate(texts):
        msg = ChatMessage.create(room=room, user=f"u{i}", text=text)
        feed.classified.publish(ClassifiedMessage(msg, text, Prediction(emotion, 0.9, (0.0,) * 6), 1.0, "t"))


def _fake_classify(texts: Sequence[str], model_id: str | None) -> list[Prediction]:
    return [Prediction("angry" if "退钱" in t else "happy", 0.91, (0.05, 0, 0.91, 0, 0.04, 0)) for t in texts]


def _app(feed: FakeFeed, tokens: OverlayTokens) -> web.Application:
    def extra(app: web.Application) -> None:
        app[keys.CLASSIFY] = _fake_classify
        app[keys.MODEL_IDS] = lambda: ["fast"]

    return create_app(feed, Config(), extra_setup=[extra], tokens=tokens, admin_token=ADMIN)


@contextlib.asynccontextmanager
async def _serve_on(app: web.Application, port: int) -> AsyncIterator[str]:
    """Like run_app, on a fixed port, so a "restarted server" is found where OBS expects it."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PageWatch:
    """Collects what must never happen on our pages: errors, CSP violations, dialogs, foreign requests."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self._pending: list[asyncio.Future[None]] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        self._pending.append(asyncio.ensure_future(dialog.dismiss()))

    def foreign_hosts(self) -> set[str | None]:
        hosts = {urlsplit(u).hostname for u in self.requests if urlsplit(u).scheme not in ("data", "about")}
        return hosts - {"127.0.0.1"}


async def _pixels(page: Any, canvas: str, emotions: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(COUNT_PIXELS_JS, [canvas, [RGB[e] for e in emotions]])
    result["by"] = dict(zip(emotions, result["counts"], strict=True))
    return result


async def test_overlay_shows_live_mood_and_stays_on_loopback(browser: Any, artifacts_dir: Path) -> None:
    _require_vendor()
    feed = FakeFeed()
    feed.push(make_snapshot("demo", {"happy": 0.6, "neutral": 0.4}, rate=2.0, total_messages=10))
    tokens = OverlayTokens()
    page = await browser.new_page(viewport={"width": 760, "height": 560})
    watch = PageWatch(page)
    try:
        async with run_app(_app(feed, tokens)) as base:
            await page.goto(f"{base}/overlay/demo?token={tokens.get_or_create('demo')}")
            await page.wait_for_selector('#overlay[data-connected="true"]', timeout=10_000)
            assert await page.is_hidden("#status")
            assert await page.get_attribute("#dominant", "data-emotion") == "happy"

            feed.push(
                make_snapshot(
                    "demo",
                    {"angry": 0.7, "sad": 0.1, "neutral": 0.2},
                    rate=12.5,
                    total_messages=777,
                    recent=[("angry", 1.0)] * 100,
                )
            )
            await page.wait_for_selector('#overlay[data-total-messages="777"]', timeout=5_000)
            await page.evaluate(SETTLE_JS)
            await page.evaluate(NEXT_FRAME_JS)
            assert await page.get_attribute("#dominant", "data-emotion") == "angry"
            assert await page.text_content("#share-angry") == "70%"
            assert float(await page.get_attribute("#share-sad", "data-value") or "nan") == pytest.approx(0.1)
            assert await page.text_content("#rate") == "12.5"
            heat = await _pixels(page, "heatmap-canvas", ["angry", "happy", "neutral"])
            assert heat["by"]["angry"] > 0.5 * heat["total"], heat
            assert heat["by"]["happy"] == 0, heat
            gauge = await _pixels(page, "gauge-canvas", ["angry", "sad", "neutral", "happy"])
            assert gauge["by"]["angry"] > 3 * gauge["by"]["sad"] > 0, gauge
            assert gauge["by"]["angry"] > 2 * gauge["by"]["neutral"] and gauge["by"]["happy"] == 0, gauge

            # A negative spike raises the banner; its text is text, never HTML.
            evil = "<img src=x onerror=alert(1)> room is heating up"
            feed.push_event(
                TriggerEvent("demo", time.time(), "negative_spike", evil, {"negative_share": 0.8})
            )
            await page.wait_for_selector("#event", state="visible", timeout=5_000)
            assert await page.text_content("#event-text") == evil
            assert await page.text_content("#event-share") == "80%"
            assert await page.locator("#event img").count() == 0
            await page.screenshot(path=str(artifacts_dir / "overlay-live.png"), omit_background=True)

        # The server is gone: the chip must say so rather than leave a stale mood on stream.
        await page.wait_for_selector("#status", state="visible", timeout=10_000)
        await page.screenshot(path=str(artifacts_dir / "overlay-disconnected.png"), omit_background=True)
    finally:
        await page.close()
    assert watch.foreign_hosts() == set(), sorted(watch.requests)
    assert any("/static/vendor/socket.io.min.js" in u for u in watch.requests)
    assert [e for e in watch.errors if "ERR_CONNECTION_REFUSED" not in e] == []


@pytest.mark.parametrize("widget", ["all", "gauge", "heatmap", "timeline", "ticker", "alert"])
async def test_each_widget_on_its_own_url(browser: Any, artifacts_dir: Path, widget: str) -> None:
    _require_vendor()
    feed = FakeFeed()
    feed.push(_rich_snapshot())
    tokens = OverlayTokens()
    size = {"all": (760, 600), "ticker": (900, 90), "alert": (760, 110)}.get(widget, (520, 300))
    page = await browser.new_page(viewport={"width": size[0], "height": size[1]})
    watch = PageWatch(page)
    path = "" if widget == "all" else f"/{widget}"
    try:
        async with run_app(_app(feed, tokens)) as base:
            await page.goto(f"{base}/overlay/demo{path}?token={tokens.get_or_create('demo')}")
            await page.wait_for_selector('#overlay[data-connected="true"]', timeout=10_000)
            if widget in ("all", "ticker"):
                words = [("退钱", "angry"), ("好看", "happy"), ("包邮", "neutral"), ("666", "excited")]
                _publish_chat(
                    feed, "demo", [(w, e) for w, e in words for _ in range(6 - words.index((w, e)))]
                )
                await page.wait_for_selector('#ticker-track[data-count="4"]', timeout=8_000)
                assert await page.locator("#ticker-track .tick").count() == 8  # two copies: a seamless loop
                assert "退钱" in (await page.text_content("#ticker-track") or "")
            if widget in ("all", "alert"):
                message = "negative spike: 62% negative in the last 10s (baseline 12%), mostly angry"
                feed.push_event(
                    TriggerEvent("demo", time.time(), "negative_spike", message, {"negative_share": 0.62})
                )
                await page.wait_for_selector("#event", state="visible", timeout=5_000)
            await page.evaluate(SETTLE_JS)
            await page.evaluate(NEXT_FRAME_JS)
            if widget in ("all", "heatmap"):
                px = await _pixels(page, "heatmap-canvas", list(EMOTIONS))
                assert all(px["by"][e] > 0 for e in EMOTIONS), px
            if widget in ("all", "timeline"):
                px = await _pixels(page, "timeline-canvas", list(EMOTIONS))
                assert all(px["by"][e] > 0 for e in EMOTIONS), px
            if widget in ("all", "gauge"):
                px = await _pixels(page, "gauge-canvas", list(EMOTIONS))
                assert px["by"]["happy"] > px["by"]["excited"] > px["by"]["angry"] > px["by"]["sad"] > 0, px
            # Only the widgets of this URL are on the page.
            for other in ("gauge", "heatmap", "timeline"):
                shown = await page.locator(f"#{other}-canvas").count()
                assert shown == (1 if widget in ("all", other) else 0)
            await page.screenshot(path=str(artifacts_dir / f"overlay-{widget}.png"), omit_background=True)
    finally:
        await page.close()
    assert watch.errors == [] and watch.foreign_hosts() == set()


async def test_theme_and_colours_from_url_parameters(browser: Any, artifacts_dir: Path) -> None:
    _require_vendor()
    feed = FakeFeed()
    feed.push(make_snapshot("demo", {"angry": 1.0}, recent=[("angry", 1.0)] * 100))
    tokens = OverlayTokens()
    page = await browser.new_page(viewport={"width": 420, "height": 420})
    try:
        async with run_app(_app(feed, tokens)) as base:
            token = tokens.get_or_create("demo")
            params = "theme=light&color.angry=00ff00&rows=5&cols=5&scale=1.5&lang=zh&font=Evil%22%3B%7D"
            await page.goto(f"{base}/overlay/demo/heatmap?token={token}&{params}")
            await page.wait_for_selector('#overlay[data-connected="true"]', timeout=10_000)
            await page.evaluate(SETTLE_JS)
            await page.evaluate(NEXT_FRAME_JS)
            assert await page.get_attribute("#overlay", "data-theme") == "light"
            assert await page.text_content("#heatmap-title") == "最近 25 条弹幕"
            green = await page.evaluate(COUNT_PIXELS_JS, ["heatmap-canvas", [(0, 255, 0), RGB["angry"]]])
            assert green["counts"][0] > 0.3 * green["total"] and green["counts"][1] == 0, green
            # A font name that is not a plain family name is ignored, never spliced into CSS.
            assert "Evil" not in await page.evaluate(
                "getComputedStyle(document.getElementById('overlay')).fontFamily"
            )
            await page.screenshot(path=str(artifacts_dir / "overlay-heatmap-light.png"), omit_background=True)
    finally:
        await page.close()


async def test_overlay_recovers_by_itself_after_a_server_restart(browser: Any, tmp_path: Path) -> None:
    _require_vendor()
    tokens_file = tmp_path / "var" / "overlay-tokens.json"
    token = OverlayTokens(tokens_file).get_or_create("demo")
    port = _free_port()
    page = await browser.new_page(viewport={"width": 760, "height": 560})
    try:
        first = FakeFeed()
        first.push(make_snapshot("demo", {"happy": 1.0}, total_messages=11))
        async with _serve_on(_app(first, OverlayTokens(tokens_file)), port) as base:
            await page.goto(f"{base}/overlay/demo?token={token}")
            await page.wait_for_selector('#overlay[data-total-messages="11"][data-connected="true"]')
        await page.wait_for_selector("#status", state="visible", timeout=10_000)
        await asyncio.sleep(1.0)  # OBS keeps the page open through the outage
        # A new process: new feed, same token file. The page reconnects and gets the full snapshot.
        second = FakeFeed()
        second.push(make_snapshot("demo", {"sad": 1.0}, total_messages=22, recent=[("sad", 1.0)] * 50))
        async with _serve_on(_app(second, OverlayTokens(tokens_file)), port):
            await page.wait_for_selector(
                '#overlay[data-total-messages="22"][data-connected="true"]', timeout=15_000
            )
            assert await page.is_hidden("#status")
            assert await page.get_attribute("#dominant", "data-emotion") == "sad"
            second.push(make_snapshot("demo", {"excited": 1.0}, total_messages=23))
            await page.wait_for_selector('#overlay[data-total-messages="23"]', timeout=5_000)
    finally:
        await page.close()


async def test_rotated_token_locks_the_old_url_out(browser: Any, artifacts_dir: Path) -> None:
    _require_vendor()
    feed = FakeFeed()
    feed.push(make_snapshot("demo", {"happy": 1.0}, total_messages=5))
    tokens = OverlayTokens()
    old = tokens.get_or_create("demo")
    page = await browser.new_page(viewport={"width": 760, "height": 560})
    try:
        async with run_app(_app(feed, tokens)) as base:
            await page.goto(f"{base}/overlay/demo?token={old}")
            await page.wait_for_selector('#overlay[data-connected="true"]')
            response = await page.request.post(
                f"{base}/api/overlay/demo/rotate-token", headers={"Authorization": f"Bearer {ADMIN}"}
            )
            assert response.status == 200
            # The open page is cut off and told why; live data stops reaching it.
            await page.wait_for_selector('#overlay[data-revoked="true"]', timeout=10_000)
            assert "revoked" in (await page.text_content("#status") or "")
            feed.push(make_snapshot("demo", {"angry": 1.0}, total_messages=6))
            await asyncio.sleep(0.5)
            assert await page.get_attribute("#overlay", "data-total-messages") == "5"
            reload = await page.goto(f"{base}/overlay/demo?token={old}")
            assert reload is not None and reload.status == 403
            await page.screenshot(path=str(artifacts_dir / "overlay-revoked.png"))
            fresh = await page.goto(f"{base}/overlay/demo?token={tokens.get('demo')}")
            assert fresh is not None and fresh.status == 200
            await page.wait_for_selector('#overlay[data-total-messages="6"][data-connected="true"]')
    finally:
        await page.close()


async def _login(page: Any, base: str) -> None:
    await page.goto(f"{base}/dashboard?room=demo")
    assert "/login" in page.url
    await page.fill("#token", ADMIN)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#conn[data-state=live]", timeout=10_000)


async def test_hostile_chat_never_executes_and_never_breaks_the_layout(
    browser: Any, artifacts_dir: Path
) -> None:
    _require_vendor()
    feed = FakeFeed()
    base_snap = _rich_snapshot()
    recent = tuple(
        RecentMessage(time.time() - 50 + i, EMOTIONS[i % 6], 0.9, text, text[:80], 1.0)
        for i, text in enumerate(HOSTILE * 3)
    )
    feed.push(dataclasses.replace(base_snap, recent=recent))
    tokens = OverlayTokens()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    overlay, dash = await context.new_page(), await context.new_page()
    watches = [PageWatch(overlay), PageWatch(dash)]
    try:
        async with run_app(_app(feed, tokens)) as base:
            await overlay.goto(f"{base}/overlay/demo?token={tokens.get_or_create('demo')}")
            await overlay.wait_for_selector('#overlay[data-connected="true"]')
            await _login(dash, base)
            await dash.wait_for_selector("#recent li")
            for i, text in enumerate(HOSTILE):
                feed.push_event(
                    TriggerEvent("demo", time.time() + i, "negative_spike", text, {"negative_share": 0.5})
                )
            await overlay.wait_for_function(
                "(t) => document.getElementById('event-text').textContent === t", arg=HOSTILE[-1]
            )
            await dash.wait_for_function(
                "(n) => document.querySelectorAll('#alerts li').length >= n", arg=len(HOSTILE)
            )
            await overlay.evaluate(SETTLE_JS)
            for page in (overlay, dash):
                assert await page.evaluate("window.__pwned === undefined")
                injected = await page.locator(
                    "#recent img, #recent svg, #recent script, #recent iframe, #recent a, #recent style,"
                    "#alerts img, #alerts svg, #alerts a, #event img, #event svg, #event a, #event script"
                ).count()
                assert injected == 0
            # The texts are shown as written (escaped), including the markup.
            shown = await dash.locator("#recent .msg-text").all_text_contents()
            assert HOSTILE[0] in shown and HOSTILE[1] in shown
            # Nothing overflows: giant strings wrap or clip inside their boxes.
            assert await dash.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            heights = await dash.evaluate(
                "[...document.querySelectorAll('#recent li')].map((li) => li.getBoundingClientRect().height)"
            )
            assert max(heights) < 120, heights
            alert_box = await overlay.locator("#event").bounding_box()
            assert alert_box is not None and alert_box["height"] < 140 and alert_box["width"] <= 1280
            await overlay.screenshot(path=str(artifacts_dir / "overlay-hostile.png"), omit_background=True)
            await dash.screenshot(path=str(artifacts_dir / "dashboard-hostile.png"))
    finally:
        await context.close()
    for w in watches:
        assert w.dialogs == [] and w.foreign_hosts() == set()
        assert [e for e in w.errors if "Content Security Policy" in e] == []


async def test_dashboard_actions_work(browser: Any, artifacts_dir: Path) -> None:
    _require_vendor()
    feed = FakeFeed()
    feed.push(_rich_snapshot())
    tokens = OverlayTokens()
    context = await browser.new_context(viewport={"width": 1400, "height": 1400})
    page = await context.new_page()
    watch = PageWatch(page)
    try:
        async with run_app(_app(feed, tokens)) as base:
            await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            await _login(page, base)
            await page.wait_for_selector("#dashboard[data-total-messages='4321']")
            assert await page.text_content("#dominant") == "happy"
            assert await page.locator("#recent li").count() == 40
            feed.push_event(TriggerEvent("demo", time.time(), "negative_spike", "negative spike: 60%", {}))
            await page.wait_for_selector("#alerts li[data-kind='negative_spike']")

            # Try a message.
            await page.fill("#try-text", "退钱！骗子\n主播好可爱")
            await page.click("#try-form button[type=submit]")
            await page.wait_for_selector(".try-row >> nth=1")
            chips = await page.locator(".try-row .chip").all_text_contents()
            assert chips == ["angry", "happy"]

            # Copy an overlay URL.
            await page.click("button.copy[data-copy='url-all']")
            await page.wait_for_selector("button.copy[data-copied='true']")
            copied = await page.evaluate("navigator.clipboard.readText()")
            assert copied == f"{base}/overlay/demo?token={tokens.get('demo')}"

            # The live preview shows the overlay itself.
            preview = page.frame_locator("#preview")
            await preview.locator('#overlay[data-connected="true"]').wait_for(timeout=10_000)
            await page.click("button.preview[data-preview='heatmap']")
            await preview.locator('#overlay[data-widget="heatmap"]').wait_for(timeout=10_000)

            # Rotate: two clicks, new URLs everywhere, old token dead.
            old = tokens.get("demo")
            await page.click("#rotate")
            assert await page.get_attribute("#rotate", "data-armed") == "true"
            await page.click("#rotate")
            await page.wait_for_selector("#dashboard[data-rotations='1']")
            new = tokens.get("demo")
            assert new != old
            assert await page.input_value("#url-ticker") == f"{base}/overlay/demo/ticker?token={new}"

            await page.wait_for_function("() => document.getElementById('c-overlays').textContent === '1'")
            await page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)

            # Phone: one column, nothing wider than the screen.
            phone = await context.new_page()
            await phone.set_viewport_size({"width": 390, "height": 844})
            await phone.goto(f"{base}/dashboard?room=demo")
            await phone.wait_for_selector("#conn[data-state=live]")
            assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await phone.screenshot(path=str(artifacts_dir / "dashboard-phone.png"))

            await page.click("#logout")
            await page.wait_for_url("**/login")
            state = await page.request.get(f"{base}/dashboard/api/state")
            assert state.status == 401
    finally:
        await context.close()
    assert watch.foreign_hosts() == set()
    assert [e for e in watch.errors if "Content Security Policy" in e] == []
