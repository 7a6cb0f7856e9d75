"""The overlay server end to end on loopback: socket.io (python client), REST and HTML pages."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import socketio

from engine.config import Config
from engine.types import RecentMessage, TriggerEvent
from overlay.app import create_app
from overlay.broadcast import NAMESPACE
from overlay.tokens import OverlayTokens
from overlay.wire import SnapshotPayload, snapshot_payload
from tests.fakes import FakeFeed, make_snapshot
from tests.servers import run_app

WAIT = 5.0
TOKENS = OverlayTokens()
"""In-memory overlay tokens shared by these tests' apps; each room gets one on first use."""


class Received:
    """Every socket.io event one client got, in order, with a way to wait for the next of a kind."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

    async def add(self, name: str, data: Any) -> None:
        async with self._changed:
            self.events.append((name, data))
            self._changed.notify_all()

    def of(self, name: str) -> list[Any]:
        return [d for n, d in self.events if n == name]

    async def wait_for(self, name: str, count: int = 1) -> list[Any]:
        """Wait (at most WAIT seconds) until ``count`` events called ``name`` have arrived."""
        await self.until(lambda: len(self.of(name)) >= count)
        return self.of(name)

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait (at most WAIT seconds) until ``predicate`` holds after some event."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(predicate)


@contextlib.asynccontextmanager
async def sio_client(
    base_url: str,
    room: str | None = "demo",
    *,
    via_query: bool = False,
    transports: list[str] | None = None,
    token: str | None = None,
) -> AsyncIterator[tuple[socketio.AsyncClient, Received]]:
    """A connected python-socketio client on ``/mood`` that records what it receives."""
    client = socketio.AsyncClient(reconnection=False)
    received = Received()
    for name in ("snapshot", "mood", "event", "ticker", "disconnect"):
        # Bind name per handler; disconnect carries a reason argument in recent versions.
        async def handler(*args: Any, _name: str = name) -> None:
            await received.add(_name, args[0] if args else None)

        client.on(name, handler, namespace=NAMESPACE)
    if token is None and room is not None:
        token = TOKENS.get_or_create(room)
    url = f"{base_url}?room={room}&token={token}" if via_query and room else base_url
    auth = {"room": room, "token": token} if room is not None and not via_query else None
    await client.connect(
        url, namespaces=[NAMESPACE], auth=auth, transports=transports or ["websocket"], wait_timeout=5
    )
    try:
        yield client, received
    finally:
        await client.disconnect()


@pytest.fixture
def feed() -> FakeFeed:
    return FakeFeed()


async def test_create_app_has_no_side_effects(feed: FakeFeed) -> None:
    tasks_before = asyncio.all_tasks()
    create_app(feed, Config(), tokens=TOKENS)
    assert asyncio.all_tasks() == tasks_before
    assert feed.snapshots.stats() == [] and feed.events.stats() == []


async def test_snapshot_on_connect_for_known_room(feed: FakeFeed) -> None:
    snap = make_snapshot("demo", {"angry": 0.7, "neutral": 0.3}, recent=[("angry", 0.9)] * 5)
    feed.push(snap)
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        sio_client(base, "demo") as (_, got),
    ):
        (payload,) = await got.wait_for("snapshot")
        assert payload == json.loads(json.dumps(snapshot_payload(snap)))
        assert payload["dominant"] == "angry"


@pytest.mark.parametrize("via_query", [False, True])
async def test_snapshot_on_connect_for_unknown_room_is_valid_and_empty(
    feed: FakeFeed, via_query: bool
) -> None:
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        sio_client(base, "nobody-here", via_query=via_query) as (_, got),
    ):
        (payload,) = await got.wait_for("snapshot")
    assert set(payload) == SnapshotPayload.__required_keys__
    assert payload["room"] == "nobody-here"
    assert payload["ts"] == 0
    assert payload["dominant"] == "neutral"
    assert payload["emotions"] == ["happy", "excited", "angry", "sad", "anxious", "neutral"]
    assert [w["seconds"] for w in payload["windows"]] == list(Config().aggregate.windows)
    assert all(w["shares"] == [0.0] * 6 for w in payload["windows"])
    assert payload["recent"] == []


async def test_connect_without_room_is_refused(feed: FakeFeed) -> None:
    async with run_app(create_app(feed, Config(), tokens=TOKENS)) as base:
        with pytest.raises(socketio.exceptions.ConnectionError):
            async with sio_client(base, None):
                pass


async def test_live_mood_reaches_only_its_room(feed: FakeFeed) -> None:
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        sio_client(base, "demo", transports=["polling", "websocket"]) as (_, demo),
        sio_client(base, "other") as (_, other),
    ):
        await demo.wait_for("snapshot")
        await other.wait_for("snapshot")
        snap = make_snapshot("demo", {"happy": 0.8, "excited": 0.2}, total_messages=42)
        feed.push(snap)
        (mood,) = await demo.wait_for("mood")
        assert mood["total_messages"] == 42 and mood["dominant"] == "happy"
        await asyncio.sleep(0.3)
        assert other.of("mood") == []


async def test_snapshots_are_coalesced_and_the_last_one_arrives(feed: FakeFeed) -> None:
    app = create_app(feed, Config(), tokens=TOKENS)
    async with run_app(app) as base, sio_client(base, "demo") as (_, got):
        await got.wait_for("snapshot")
        # A burst in one loop turn, then a steady 200/s stream for ~0.6 s: both far above 10/s.
        for i in range(50):
            feed.push(make_snapshot("demo", total_messages=i))
        started = time.monotonic()
        for i in range(50, 100):
            feed.push(make_snapshot("demo", total_messages=i))
            await asyncio.sleep(0.012)
        elapsed = time.monotonic() - started

        await got.until(lambda: bool(got.of("mood")) and got.of("mood")[-1]["total_messages"] == 99)
        moods = got.of("mood")
        # ~10/s over the run, plus the immediate first emit and the trailing last state.
        assert len(moods) <= elapsed * 10 + 3, (len(moods), elapsed)
        assert len(moods) < 20
        totals = [m["total_messages"] for m in moods]
        assert totals == sorted(totals), "updates must never go back in time"
        await asyncio.sleep(0.3)
        assert got.of("mood")[-1]["total_messages"] == 99


async def test_trigger_events_are_emitted_to_the_room(feed: FakeFeed) -> None:
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        sio_client(base, "demo") as (_, got),
    ):
        await got.wait_for("snapshot")
        feed.push_event(TriggerEvent("demo", 1000.0, "spike", "angry spike <b>!</b>", {"z": 4.25}))
        (event,) = await got.wait_for("event")
    assert event == {
        "room": "demo",
        "ts": 1000.0,
        "kind": "spike",
        "message": "angry spike <b>!</b>",
        "values": {"z": 4.25},
    }


async def test_shutdown_closes_live_sockets_promptly_and_unsubscribes(feed: FakeFeed) -> None:
    client = socketio.AsyncClient(reconnection=False)
    disconnected = asyncio.Event()
    client.on("disconnect", lambda *_: disconnected.set(), namespace=NAMESPACE)
    async with run_app(create_app(feed, Config(), tokens=TOKENS)) as base:
        await client.connect(
            base,
            namespaces=[NAMESPACE],
            auth={"room": "demo", "token": TOKENS.get_or_create("demo")},
            transports=["websocket"],
        )
        assert len(feed.snapshots.stats()) == 1
        started = time.monotonic()
    # run_app's shutdown_timeout is 2 s: a socket left open would hold shutdown that long.
    assert time.monotonic() - started < 1.5
    async with asyncio.timeout(3):
        await disconnected.wait()
    await client.disconnect()
    assert feed.snapshots.stats() == [] and feed.events.stats() == []


async def test_rest_endpoints(feed: FakeFeed) -> None:
    snap = make_snapshot("demo", {"sad": 0.6, "neutral": 0.4})
    feed.push(snap)
    feed.push(make_snapshot("直播间 42"))
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        aiohttp.ClientSession(base) as http,
    ):
        async with http.get("/api/rooms") as r:
            assert r.status == 200
            assert await r.json() == {"rooms": ["demo", "直播间 42"]}
        async with http.get("/api/rooms/demo/snapshot") as r:
            assert r.status == 401  # chat text: the room's overlay token (or admin) is required
        other = {"token": TOKENS.get_or_create("直播间 42")}
        async with http.get("/api/rooms/demo/snapshot", params=other) as r:
            assert r.status == 401  # another room's token does not open this one
        async with http.get("/api/rooms/demo/snapshot", params={"token": TOKENS.get_or_create("demo")}) as r:
            assert r.status == 200
            assert await r.json() == json.loads(json.dumps(snapshot_payload(snap)))
        headers = {"Authorization": f"Bearer {TOKENS.get_or_create('直播间 42')}"}
        async with http.get("/api/rooms/%E7%9B%B4%E6%92%AD%E9%97%B4%2042/snapshot", headers=headers) as r:
            assert r.status == 200 and (await r.json())["room"] == "直播间 42"
        missing = {"token": TOKENS.get_or_create("missing")}
        async with http.get("/api/rooms/missing/snapshot", params=missing) as r:
            assert r.status == 404
            assert "missing" in (await r.json())["error"]
        async with http.get("/healthz") as r:
            assert r.status == 200
            body = await r.json()
            assert body["ok"] is True and body["stats"]["snapshots_published"] == 2
            assert {q["name"] for q in body["stats"]["queues"]} == {
                "snapshots->socketio",
                "events->socketio-events",
            }


def _q(room: str) -> str:
    return f"?token={TOKENS.get_or_create(room)}"


async def test_pages_render_and_escape_chat_text(feed: FakeFeed) -> None:
    evil = "</script><script>alert(1)</script>"
    feed.push(make_snapshot("demo", recent=[("angry", 1.0)]))
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        aiohttp.ClientSession(base) as http,
    ):
        async with http.get("/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/dashboard"
        async with http.get("/overlay/demo" + _q("demo")) as r:
            assert r.status == 200
            page = await r.text()
            csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert 'id="gauge-canvas"' in page and 'data-room="demo"' in page
        assert "/static/vendor/socket.io.min.js" in page
        for widget in ("gauge", "heatmap", "timeline", "ticker", "alert"):
            async with http.get(f"/overlay/demo/{widget}" + _q("demo")) as r:
                assert r.status == 200 and f'data-widget="{widget}"' in await r.text()
        async with http.get("/overlay/demo/nope" + _q("demo")) as r:
            assert r.status == 404
        async with http.get("/overlay/nobody" + _q("nobody")) as r:
            assert r.status == 200 and '"ts": 0.0' in await r.text()
        async with http.get("/static/js/overlay.js") as r:
            assert r.status == 200

    # Chat text travels inside the page's initial JSON; it must not be able to close the script tag.
    recent = (RecentMessage(1.0, "angry", 1.0, evil, "<u>", 1.0),)
    feed.push(dataclasses.replace(make_snapshot("evil"), recent=recent))
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        aiohttp.ClientSession(base) as http,
        http.get("/overlay/evil" + _q("evil")) as r,
    ):
        page = await r.text()
    assert evil not in page and "<u>" not in page
    assert "\\u003c/script\\u003e" in page


@pytest.mark.parametrize("token", [None, "", "wrong", "x" * 5000])
async def test_overlay_page_and_socket_need_the_rooms_token(feed: FakeFeed, token: str | None) -> None:
    TOKENS.get_or_create("demo")
    async with (
        run_app(create_app(feed, Config(), tokens=TOKENS)) as base,
        aiohttp.ClientSession(base) as http,
    ):
        query = "" if token is None else f"?token={token}"
        async with http.get("/overlay/demo" + query) as r:
            assert r.status == 403
            text = await r.text()
        assert "not valid" in text and TOKENS.get_or_create("demo") not in text
        with pytest.raises(socketio.exceptions.ConnectionError):
            async with sio_client(base, "demo", token=token or ""):
                pass
        # Another room's token does not open this room.
        with pytest.raises(socketio.exceptions.ConnectionError):
            async with sio_client(base, "demo", token=TOKENS.get_or_create("other")):
                pass


async def test_rotation_cuts_off_live_overlays_and_the_old_url(feed: FakeFeed, tmp_path: Any) -> None:
    tokens = OverlayTokens(tmp_path / "var" / "overlay-tokens.json")
    old = tokens.get_or_create("demo")
    app = create_app(feed, Config(), tokens=tokens, admin_token="admin-secret")
    async with (
        run_app(app) as base,
        aiohttp.ClientSession(base) as http,
        sio_client(base, "demo", token=old) as (_, got),
    ):
        await got.wait_for("snapshot")
        # Without admin credentials nothing rotates.
        async with http.post("/api/overlay/demo/rotate-token") as r:
            assert r.status == 401
        async with http.post(
            "/api/overlay/demo/rotate-token", headers={"Authorization": "Bearer admin-secret"}
        ) as r:
            assert r.status == 200
            body = await r.json()
        new = tokens.get("demo")
        assert new and new != old and body["disconnected"] == 1
        assert body["urls"]["all"].endswith(f"/overlay/demo?token={new}")
        await got.wait_for("disconnect")
        async with http.get(f"/overlay/demo?token={old}") as r:
            assert r.status == 403
        async with http.get(f"/overlay/demo?token={new}") as r:
            assert r.status == 200
    # The file holds only the new token, readable by its owner alone.
    assert (tmp_path / "var" / "overlay-tokens.json").stat().st_mode & 0o777 == 0o600
    assert OverlayTokens(tmp_path / "var" / "overlay-tokens.json").get("demo") == new


async def test_rotation_by_another_process_is_noticed(feed: FakeFeed, tmp_path: Any) -> None:
    path = tmp_path / "tokens.json"
    tokens = OverlayTokens(path)
    old = tokens.get_or_create("demo")
    async with (
        run_app(create_app(feed, Config(), tokens=tokens)) as base,
        sio_client(base, "demo", token=old) as (_, got),
    ):
        await got.wait_for("snapshot")
        OverlayTokens(path).rotate("demo")  # what `moodcast overlay rotate-token demo` does
        got_disconnect = got.until(lambda: bool(got.of("disconnect")))
        await asyncio.wait_for(got_disconnect, 8)


async def test_ticker_is_sent_on_connect_and_when_trending_words_change(feed: FakeFeed) -> None:
    from engine.types import ChatMessage, ClassifiedMessage, Prediction

    app = create_app(feed, Config(), tokens=TOKENS)
    async with run_app(app) as base, sio_client(base, "shop") as (_, got):
        (first,) = await got.wait_for("ticker")
        assert first == {"room": "shop", "source": "words", "items": []}
        for i in range(12):
            text = "退钱 骗子" if i % 3 else "好看 好看"
            msg = ChatMessage.create(room="shop", user=f"u{i}", text=text)
            pred = Prediction("angry" if i % 3 else "happy", 0.9, (0.0,) * 6)
            feed.classified.publish(ClassifiedMessage(msg, text, pred, 1.0, "fake"))
        tickers = await got.wait_for("ticker", 2)
    items = tickers[-1]["items"]
    assert [i["text"] for i in items] == ["退钱", "骗子", "好看"]
    assert items[0] == {"text": "退钱", "score": 8.0, "emotion": "angry"}
    assert items[2]["emotion"] == "happy"
