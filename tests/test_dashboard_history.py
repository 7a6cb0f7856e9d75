"""The dashboard's five-minute chart is backfilled from the server: values, API refusals, real Chromium.

A real Pipeline (keyword model, injected clock) replays five and a half minutes of chat, publishing
snapshots three times a simulated second as the snapshot loop would. What the history endpoint returns
must equal what a browser open all along took from those snapshots (the shortest window's shares of the
last snapshot of each second), and a freshly opened dashboard must already show all of it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from engine.aggregate import SecondSeries
from engine.config import ClassifierConfig, Config
from engine.emotions import EMOTIONS
from engine.pipeline import Pipeline
from engine.types import ChatMessage, WindowStats
from overlay import keys
from overlay.app import create_app
from overlay.tokens import OverlayTokens
from overlay.wire import snapshot_payload
from tests.fake_model import FakeRegistry
from tests.servers import run_app
from tests.test_overlay_browser import NEXT_FRAME_JS, RGB, PageWatch, _require_vendor

ADMIN = "history-admin-token"
ROOM = "shop1"
T0 = 1_700_000_000  # simulated time: nothing here reads the wall clock
BEARER = {"Authorization": f"Bearer {ADMIN}"}


def _second(s: int) -> list[tuple[str, str]]:
    """(user, text) of second ``s`` of the script: four phases with known emotions."""
    if s < 100:  # warm-up: two happy, one excited
        return [(f"u{s}a", f"哈哈 {s} a"), (f"u{s}b", f"哈哈 {s} b"), (f"u{s}c", f"666 {s}")]
    if s < 200:  # the missing gift: three angry, one happy
        return [*((f"u{s}{k}", f"退钱 {s} {k}") for k in range(3)), (f"u{s}h", f"哈哈 {s} h")]
    if s < 230:  # silence (the room is not idle yet: snapshots, and points, go on)
        return []
    # Recovery, plus a troll repeating one line: flood weight 0, counted as a message only.
    return [(f"u{s}s", f"呜呜 {s}"), (f"u{s}x", f"急 {s}"), (f"u{s}n", f"包邮吗 {s}"), ("troll", "包邮吗")]


class Sim:
    """The pipeline under an injected clock, driven second by second like the live loops would."""

    def __init__(self) -> None:
        self.now = float(T0)
        self.config = replace(Config(), classifier=ClassifierConfig(model="kw"))
        self.pipe = Pipeline(self.config, FakeRegistry().get, clock=lambda: self.now)
        self.seen = self.pipe.snapshots.subscribe("test-browser", maxsize=100_000)
        self._drawn: dict[int, list[float]] = {}

    async def play(self, start: int, stop: int) -> None:
        for s in range(start, stop):
            chat = _second(s)
            for frac, part in ((0.1, chat[: len(chat) // 2]), (0.5, chat[len(chat) // 2 :])):
                self.now = T0 + s + frac
                msgs = [ChatMessage.create(room=ROOM, user=u, text=t, ts=self.now) for u, t in part]
                if msgs:
                    await self.pipe.process_messages(msgs)
                self.pipe.publish_snapshots(T0 + s + frac + 0.2)
            self.now = T0 + s + 0.9
            self.pipe.publish_snapshots(self.now)

    def live_points(self, seconds: int = 300) -> list[tuple[int, list[float]]]:
        """What dashboard.js drew from the snapshots published so far: per second, the last one wins."""
        for snap in self.seen.drain_nowait(100_000):
            payload = snapshot_payload(snap)  # exactly what socket.io sent
            short = min(payload["windows"], key=lambda w: w["seconds"])
            self._drawn[math.floor(payload["ts"])] = short["shares"]
        first = math.floor(self.now) - seconds + 1
        return sorted((s, v) for s, v in self._drawn.items() if s >= first)


@pytest.fixture
async def sim() -> Sim:
    s = Sim()
    await s.play(0, 330)
    return s


def _app(sim: Sim) -> Any:
    return create_app(sim.pipe, sim.config, tokens=OverlayTokens(), admin_token=ADMIN)


def _shares(**by: float) -> list[float]:
    return [round(by.get(e, 0.0), 4) for e in EMOTIONS]


async def test_history_equals_what_live_snapshots_gave(sim: Sim) -> None:
    async with run_app(_app(sim)) as base, aiohttp.ClientSession(base, headers=BEARER) as http:
        async with http.get("/dashboard/api/history", params={"room": ROOM}) as r:
            assert r.status == 200
            body = await r.json()
        assert body["room"] == ROOM and body["seconds"] == 300 and body["window"] == 10
        assert body["emotions"] == list(EMOTIONS)
        points = body["points"]
        # One point per second of the last five minutes, the silent stretch included.
        assert [p["ts"] for p in points] == list(range(T0 + 30, T0 + 330))
        # Point for point, the values the browser got live.
        assert [(p["ts"], p["shares"]) for p in points] == sim.live_points()
        at = {p["ts"] - T0: p for p in points}
        # And those values are the script's: the 10 s window ending at each second.
        assert at[60]["shares"] == _shares(happy=2 / 3, excited=1 / 3) and at[60]["messages"] == 30
        # Seconds 96..105: 4 s of warm-up (8 happy, 4 excited), 6 s of anger (18 angry, 6 happy).
        assert at[105]["shares"] == _shares(happy=14 / 36, excited=4 / 36, angry=18 / 36)
        assert at[150]["shares"] == _shares(angry=0.75, happy=0.25) and at[150]["messages"] == 40
        assert at[215]["shares"] == _shares() and at[215]["messages"] == 0
        # The troll's repeats are messages with no weight: 4 messages a second, 3 of them counted.
        assert at[300]["shares"] == _shares(sad=1 / 3, anxious=1 / 3, neutral=1 / 3)
        assert at[300]["messages"] == 40

        async with http.get("/dashboard/api/history", params={"room": ROOM, "seconds": "60"}) as r:
            last_minute = (await r.json())["points"]
        assert last_minute == points[-60:]
        async with http.get("/dashboard/api/history", params={"room": ROOM, "seconds": "86400"}) as r:
            capped = await r.json()
        assert capped["seconds"] == 300 and capped["points"] == points
        async with http.get("/dashboard/api/history", params={"room": "nobody-here"}) as r:
            assert r.status == 200 and (await r.json())["points"] == []


async def test_history_refuses_strangers_and_bad_parameters(sim: Sim) -> None:
    async with run_app(_app(sim)) as base, aiohttp.ClientSession(base) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.get("/dashboard/api/history", params={"room": ROOM}, headers=headers) as r:
                assert r.status == 401
                assert "points" not in await r.text()
        for seconds in ("abc", "0", "000", "-5", "1.5", " 5", "+5", "5_0", "٣"):
            async with http.get(
                "/dashboard/api/history", params={"room": ROOM, "seconds": seconds}, headers=BEARER
            ) as r:
                assert r.status == 400, seconds
                assert "seconds" in (await r.json())["error"]
        for room in ("x" * 65, "bad\x01room", "   "):
            async with http.get("/dashboard/api/history", params={"room": room}, headers=BEARER) as r:
                assert r.status == 400, room
                assert "room" in (await r.json())["error"]


def test_second_series_keeps_the_last_snapshot_of_each_second() -> None:
    def w(n: int) -> WindowStats:
        return WindowStats(10, tuple(float(n) if e == "happy" else 0.0 for e in EMOTIONS), n, n / 10)

    series = SecondSeries(capacity=3)
    series.record(100.25, w(1))
    series.record(100.75, w(2))  # same second: replaces
    series.record(99.5, w(9))  # the clock stepped back: that second was already published
    series.record(101.9996, w(3))  # carried on the wire as 102.000: filed under 102, as the browser does
    series.record(103.0, w(4))
    series.record(104.5, w(5))  # capacity 3: 100 falls out
    assert [(p.ts, p.window.messages) for p in series.since(104.5, 300)] == [(102, 3), (103, 4), (104, 5)]
    assert [p.ts for p in series.since(104.5, 2)] == [103, 104]


# -- the page, in a real Chromium ------------------------------------------------------------------
# Counts pixels near each colour in the left `frac` of the canvas (where the oldest seconds are drawn).
COLUMN_PIXELS_JS = """
([id, colors, frac]) => {
  const c = document.getElementById(id);
  const w = Math.max(1, Math.floor(c.width * frac));
  const d = c.getContext("2d").getImageData(0, 0, w, c.height).data;
  const counts = colors.map(() => 0);
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 100) continue;
    colors.forEach(([r, g, b], k) => {
      const near = Math.abs(d[i] - r) < 16 && Math.abs(d[i + 1] - g) < 16 && Math.abs(d[i + 2] - b) < 16;
      if (near) counts[k] += 1;
    });
  }
  return counts;
}
"""


async def _pixels(page: Any, emotions: tuple[str, ...], frac: float) -> dict[str, int]:
    counts = await page.evaluate(COLUMN_PIXELS_JS, ["area-canvas", [RGB[e] for e in emotions], frac])
    return dict(zip(emotions, counts, strict=True))


async def _attr(page: Any, name: str) -> int:
    return int(await page.get_attribute("#area-canvas", name) or "0")


@pytest.mark.browser
async def test_a_freshly_opened_dashboard_shows_the_last_five_minutes(browser: Any, sim: Sim) -> None:
    _require_vendor()
    app = _app(sim)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    watch = PageWatch(page)
    try:
        async with run_app(app) as base:
            await page.goto(f"{base}/dashboard?room={ROOM}")
            await page.fill("#token", ADMIN)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
            # The pipeline is paused between simulated seconds: one live snapshot reaches the page, so
            # a full chart can only have come from the history.
            await page.wait_for_selector("#area-canvas[data-points='300']", timeout=10_000)
            assert await _attr(page, "data-first") == T0 + 30
            assert await _attr(page, "data-last") == T0 + 329
            assert await _attr(page, "data-history") >= 299  # the connect snapshot may bring the last one
            await page.evaluate(NEXT_FRAME_JS)
            # Five minutes ago (the left fifth: seconds 30..89) the room was happy and excited...
            left = await _pixels(page, EMOTIONS, 0.18)
            assert left["happy"] > 0 and left["excited"] > 0, left
            assert left["angry"] == left["sad"] == left["anxious"] == 0, left
            # ...and the whole five minutes show every phase of the script.
            whole = await _pixels(page, EMOTIONS, 1.0)
            assert all(n > 0 for n in whole.values()), whole

            # A reconnect gap: the server drops the socket, 20 seconds pass that the page never sees
            # live, the page reconnects by itself and fills exactly those seconds from the history.
            namespace = app[keys.MOOD_NAMESPACE]
            sids = [sid for sid, (room, token) in namespace.clients.items() if room == ROOM and token is None]
            assert len(sids) == 1
            await namespace.disconnect(sids[0])
            await page.wait_for_selector("#conn[data-state=down]", timeout=10_000)
            await sim.play(330, 350)
            await page.wait_for_selector("#conn[data-state=live]", timeout=15_000)
            await page.wait_for_selector(f"#area-canvas[data-first='{T0 + 50}']", timeout=10_000)
            assert await _attr(page, "data-last") == T0 + 349
            assert await _attr(page, "data-points") == 300  # contiguous: 50..349, no second twice
    finally:
        await context.close()
    assert watch.foreign_hosts() == set()
    assert watch.errors == [] and watch.dialogs == []
