"""socket.io: the ``/mood`` namespace and the broadcaster that pushes the feed to socket.io rooms.

Transport (engine.io), room membership (the manager) and our namespace stay separate, as
python-socketio intends: scaling out later swaps the manager for a Redis one and nothing here.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import socketio
from aiohttp import web

from engine.queues import DropOldestQueue
from engine.tasks import cancel_and_wait
from engine.types import MoodSnapshot, TriggerEvent
from overlay import auth as auth_mod
from overlay import keys
from overlay.wire import (
    empty_snapshot_payload,
    event_payload,
    room_name,
    snapshot_payload,
    ticker_payload,
)

log = logging.getLogger(__name__)

NAMESPACE = "/mood"
SNAPSHOT_SUBSCRIBER = "socketio"
EVENT_SUBSCRIBER = "socketio-events"
MIN_UPDATE_INTERVAL = 0.1
"""Seconds between two "mood" emits to one room: at most ~10 a second, however fast snapshots come."""
TOKEN_WATCH_INTERVAL = 2.0
"""Seconds between two looks (one stat) at the token file, for rotations done by the CLI."""
CLOSE_TIMEOUT = 0.5
"""Seconds shutdown gives one socket to close before moving on."""
_DRAIN_LIMIT = 10_000
RECENT_EVENTS = 200


def room_key(room: str) -> str:
    """The socket.io room for a chat room; prefixed so it can never collide with a client's own sid room."""
    return f"room:{room}"


def _requested(environ: Mapping[str, Any], auth: object, name: str) -> object:
    if isinstance(auth, Mapping) and name in auth:
        return auth[name]
    # Clients that cannot send auth (plain query-string URLs) may pass ?room=&token=.
    values = parse_qs(str(environ.get("QUERY_STRING", ""))).get(name)
    return values[0] if values else None


class MoodNamespace(socketio.AsyncNamespace):  # type: ignore[misc]  # socketio ships no types
    """``/mood``: a client joins one room and gets its full snapshot at once, then live updates.

    A client must prove it may read the room: the room's overlay token (``auth: {room, token}``) or
    the dashboard's admin session cookie. Read-only either way: the namespace has no handlers that
    change anything.
    """

    def __init__(self, app: web.Application) -> None:
        super().__init__(NAMESPACE)
        self._app = app
        self._feed = app[keys.FEED]
        self._window_seconds = tuple(app[keys.CONFIG].aggregate.windows)
        self.clients: dict[str, tuple[str, str | None]] = {}
        """sid -> (room, overlay token; None for an admin session)."""

    async def on_connect(self, sid: str, environ: Mapping[str, Any], auth: object = None) -> None:
        """Check the token, join the requested room and send its current snapshot and ticker."""
        room = room_name(_requested(environ, auth, "room"))
        if room is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "auth {room: <name>} or ?room=<name> is required"
            )
        token = _requested(environ, auth, "token")
        request = environ.get("aiohttp.request")
        if self._app[keys.OVERLAY_TOKENS].check(room, token):
            self.clients[sid] = (room, str(token))
        elif isinstance(request, web.Request) and auth_mod.session_of(request) is not None:
            self.clients[sid] = (room, None)
        else:
            raise socketio.exceptions.ConnectionRefusedError("invalid overlay token")
        await self.enter_room(sid, room_key(room))
        latest = self._feed.latest(room)
        payload = snapshot_payload(latest) if latest else empty_snapshot_payload(room, self._window_seconds)
        # Emitting before the handler returns is fine: clients buffer events until the connect completes.
        await self.emit("snapshot", payload, to=sid)
        ticker = ticker_payload(room, self._app[keys.TRENDING].top(room))
        await self.emit("ticker", dict(ticker), to=sid)

    async def on_disconnect(self, sid: str, *_reason: object) -> None:
        """Forget the client."""
        self.clients.pop(sid, None)

    async def revoke_stale(self, room: str | None = None) -> int:
        """Disconnect overlay clients whose token is no longer their room's; returns how many."""
        tokens = self._app[keys.OVERLAY_TOKENS]
        stale = [
            sid
            for sid, (r, token) in list(self.clients.items())
            if token is not None and (room is None or r == room) and not tokens.check(r, token)
        ]
        for sid in stale:
            self.clients.pop(sid, None)
            await self.disconnect(sid)
        return len(stale)


class Broadcaster:
    """Emits the feed's snapshots ("mood", coalesced per room) and trigger events ("event") to rooms."""

    def __init__(
        self,
        sio: Any,
        *,
        min_interval: float = MIN_UPDATE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sio = sio
        self.min_interval = min_interval
        self._clock = clock
        self._last_sent: dict[str, float] = {}
        self.emitted = 0
        """"mood" and "event" emits so far."""
        self.coalesced = 0
        """Snapshots replaced by a newer one of the same room before they were sent."""
        self.errors = 0
        self.recent_events: collections.deque[TriggerEvent] = collections.deque(maxlen=RECENT_EVENTS)
        """The last alerts and actions, for a dashboard opened after they fired."""

    async def run_snapshots(self, queue: DropOldestQueue[MoodSnapshot]) -> None:
        """Forever: send each room its newest snapshot, at most once per ``min_interval``."""
        pending: dict[str, MoodSnapshot] = {}
        while True:
            if not pending:
                self._keep_newest(pending, await queue.get())
            for snap in queue.drain_nowait(_DRAIN_LIMIT):
                self._keep_newest(pending, snap)
            wait = await self._flush_due(pending)
            if wait > 0:
                # Snapshots arriving meanwhile wait in the queue; the next drain keeps only the newest.
                await asyncio.sleep(wait)

    async def run_events(self, queue: DropOldestQueue[TriggerEvent]) -> None:
        """Forever: send each trigger event to its room as it comes (rules rate-limit them already)."""
        while True:
            event = await queue.get()
            self.recent_events.append(event)
            await self._emit("event", dict(event_payload(event)), event.room)

    def _keep_newest(self, pending: dict[str, MoodSnapshot], snap: MoodSnapshot) -> None:
        if snap.room in pending:
            self.coalesced += 1
        pending[snap.room] = snap

    async def _flush_due(self, pending: dict[str, MoodSnapshot]) -> float:
        """Emit the rooms whose interval has passed; return seconds until the next one is due (0: none)."""
        now = self._clock()
        next_due = math.inf
        for room in list(pending):
            due = self._last_sent.get(room, -math.inf) + self.min_interval
            if due <= now:
                snap = pending.pop(room)
                self._last_sent[room] = now
                await self._emit("mood", dict(snapshot_payload(snap)), room)
            else:
                next_due = min(next_due, due)
        return max(0.0, next_due - now) if pending else 0.0

    async def _emit(self, event: str, payload: dict[str, Any], room: str) -> None:
        try:
            await self._sio.emit(event, payload, to=room_key(room), namespace=NAMESPACE)
        except Exception:
            # One failed emit must not end the loop: the overlay would freeze for the rest of the stream.
            self.errors += 1
            log.exception("socket.io emit of %r to room %r failed", event, room)
        else:
            self.emitted += 1


async def _broadcast_ctx(app: web.Application) -> AsyncIterator[None]:
    """Subscribe to the feed and run the broadcaster while the app serves; cancel and await on cleanup."""
    feed = app[keys.FEED]
    broadcaster = app[keys.BROADCASTER]
    snapshots = feed.snapshots.subscribe(SNAPSHOT_SUBSCRIBER)
    events = feed.events.subscribe(EVENT_SUBSCRIBER)
    tasks = [
        asyncio.create_task(broadcaster.run_snapshots(snapshots), name="socketio-snapshots"),
        asyncio.create_task(broadcaster.run_events(events), name="socketio-events"),
        asyncio.create_task(_watch_tokens(app), name="overlay-token-watch"),
    ]
    try:
        yield
    finally:
        await cancel_and_wait(tasks)
        feed.snapshots.unsubscribe(SNAPSHOT_SUBSCRIBER)
        feed.events.unsubscribe(EVENT_SUBSCRIBER)


async def _watch_tokens(app: web.Application) -> None:
    """Lock out overlays whose token was rotated by another process (``moodcast overlay rotate-token``)."""
    tokens = app[keys.OVERLAY_TOKENS]
    namespace = app[keys.MOOD_NAMESPACE]
    while True:
        await asyncio.sleep(TOKEN_WATCH_INTERVAL)
        try:
            if tokens.changed():
                await namespace.revoke_stale()
        except Exception:
            log.exception("checking the overlay token file failed")


async def _close_sockets(app: web.Application) -> None:
    """Close live socket.io connections, so shutdown need not wait out their long-lived handlers."""
    sio = app[keys.SIO]

    async def close(sid: str, sock: Any) -> None:
        try:
            await asyncio.wait_for(sio.eio.disconnect(sid), CLOSE_TIMEOUT)
        except TimeoutError:
            # engine.io waits for the socket's send queue to drain; a peer that left a moment ago
            # never drains it, and engine.io's own disconnect-all would wait for it forever.
            log.debug("engine.io socket %s did not close in %.1f s", sid, CLOSE_TIMEOUT)
        # engine.io has only queued a CLOSE packet, which browsers ignore on a websocket (only polling
        # honours it); a None ends the socket's writer, which then closes the websocket itself.
        sock.queue.put_nowait(None)

    await asyncio.gather(*(close(sid, sock) for sid, sock in list(sio.eio.sockets.items())))
    await sio.shutdown()


def setup(app: web.Application) -> None:
    """Attach the socket.io server, the ``/mood`` namespace and the broadcaster to ``app``."""
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        # A stream PC that vanishes without closing is noticed within ~20 s, so the chip shows.
        ping_interval=10,
        ping_timeout=10,
        # Only /mood (which checks credentials on connect); the default "/" would accept anyone.
        namespaces=[NAMESPACE],
    )
    namespace = MoodNamespace(app)
    sio.register_namespace(namespace)
    sio.attach(app)
    app[keys.SIO] = sio
    app[keys.MOOD_NAMESPACE] = namespace
    app[keys.BROADCASTER] = Broadcaster(sio)
    app.cleanup_ctx.append(_broadcast_ctx)
    app.on_shutdown.append(_close_sockets)
