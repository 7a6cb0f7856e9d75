"""The OBS overlay page in a real headless Chromium, fed live through socket.io from a FakeFeed."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from engine.config import Config
from engine.types import TriggerEvent
from overlay.app import create_app
from tests.conftest import ROOT, require_real
from tests.fakes import FakeFeed, make_snapshot
from tests.servers import run_app

pytestmark = pytest.mark.browser

ANGRY_RGB = (0xE5, 0x39, 0x35)  # DEFAULT_COLORS.angry in static/js/overlay.js
HAPPY_RGB = (0x43, 0xA0, 0x47)
NEUTRAL_RGB = (0x9E, 0x9E, 0x9E)

# Counts opaque canvas pixels near each given colour; runs in the page.
COUNT_PIXELS_JS = """
(colors) => {
  const c = document.getElementById("mood-canvas");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const counts = colors.map(() => 0);
  let painted = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 200) continue;
    painted += 1;
    colors.forEach(([r, g, b], k) => {
      const near = Math.abs(d[i] - r) < 12 && Math.abs(d[i + 1] - g) < 12 && Math.abs(d[i + 2] - b) < 12;
      if (near) counts[k] += 1;
    });
  }
  return { counts, painted, total: d.length / 4 };
}
"""

ANY_PIXEL_JS = """
() => {
  const c = document.getElementById("mood-canvas");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
  return false;
}
"""

NEXT_FRAME_JS = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


async def _share(page: Any, emotion: str) -> float:
    return float(await page.get_attribute(f"#share-{emotion}", "data-value") or "nan")


def _require_vendor() -> None:
    vendored = (ROOT / "static" / "vendor" / "socket.io.min.js").is_file()
    require_real("the vendored socket.io client", vendored, "run `npm ci && npm run build`")


async def test_overlay_shows_live_mood_and_stays_on_loopback(browser: Any, artifacts_dir: Path) -> None:
    _require_vendor()
    feed = FakeFeed()
    feed.push(make_snapshot("demo", {"happy": 0.6, "neutral": 0.4}, rate=2.0, total_messages=10))
    requests: list[str] = []
    errors: list[str] = []
    page = await browser.new_page(viewport={"width": 520, "height": 380})
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        async with run_app(create_app(feed, Config())) as base:
            await page.goto(f"{base}/overlay/demo")
            await page.wait_for_selector('#overlay[data-connected="true"]', timeout=10_000)
            assert await page.is_hidden("#status")
            assert await page.text_content("#dominant") == "happy"

            # A live update: the room turns angry.
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
            await page.evaluate(NEXT_FRAME_JS)

            assert await page.text_content("#dominant") == "angry"
            assert await page.get_attribute("#dominant", "data-emotion") == "angry"
            assert await page.text_content("#share-angry") == "70%"
            assert float(await page.get_attribute("#share-angry", "data-value") or "nan") == pytest.approx(
                0.7
            )
            assert float(await page.get_attribute("#share-sad", "data-value") or "nan") == pytest.approx(0.1)
            assert await page.text_content("#share-happy") == "0%"
            assert await page.text_content("#rate") == "12.5"

            pixels = await page.evaluate(COUNT_PIXELS_JS, [ANGRY_RGB, HAPPY_RGB, NEUTRAL_RGB])
            angry, happy, neutral = pixels["counts"]
            assert pixels["painted"] > 0.1 * pixels["total"], pixels
            # The full heatmap and the longest bar are angry red; happy has no share left.
            assert angry > 0.25 * pixels["total"], pixels
            assert angry > 3 * neutral and happy == 0, pixels

            # Event text is shown as text, never parsed as HTML.
            evil = "<img src=x onerror=alert(1)> room is heating up"
            feed.push_event(TriggerEvent("demo", 1.0, "spike", evil))
            await page.wait_for_selector("#event", state="visible", timeout=5_000)
            assert await page.text_content("#event") == evil
            assert await page.locator("#event img").count() == 0

            await page.screenshot(path=str(artifacts_dir / "overlay-demo.png"), omit_background=True)
            assert errors == []

        # The server is gone: the chip must say so rather than leave a stale mood on stream.
        await page.wait_for_selector("#status", state="visible", timeout=10_000)
        assert await page.text_content("#status") == "disconnected"
        await page.screenshot(path=str(artifacts_dir / "overlay-disconnected.png"), omit_background=True)
    finally:
        await page.close()

    hosts = {urlsplit(u).hostname for u in requests if urlsplit(u).scheme not in ("data", "about", "blob")}
    assert hosts == {"127.0.0.1"}, sorted(requests)
    assert any("/static/vendor/socket.io.min.js" in u for u in requests)


async def test_unknown_room_overlay_is_drawn_not_blank(browser: Any) -> None:
    _require_vendor()
    feed = FakeFeed()
    page = await browser.new_page()
    try:
        async with run_app(create_app(feed, Config())) as base:
            await page.goto(f"{base}/overlay/quiet-room")
            await page.wait_for_selector('#overlay[data-connected="true"]', timeout=10_000)
            await page.evaluate(NEXT_FRAME_JS)
            assert await page.text_content("#dominant") == "neutral"
            assert await page.text_content("#share-neutral") == "0%"
            pixels = await page.evaluate(COUNT_PIXELS_JS, [NEUTRAL_RGB])
            # No mood yet, but the bar tracks and empty grid cells are drawn (faintly), never a blank page.
            assert pixels["painted"] == 0 and pixels["counts"] == [0], pixels
            assert await page.evaluate(ANY_PIXEL_JS), "canvas is blank"
    finally:
        await page.close()
