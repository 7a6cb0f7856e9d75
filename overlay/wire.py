"""Everything that goes over the wire (socket.io payloads, REST JSON), built by pure functions.

The browser code in ``static/js`` reads exactly these shapes; change them here and there together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypedDict

from engine.emotions import EMOTIONS
from engine.types import MoodPoint, MoodSnapshot, TriggerEvent, WindowStats


class WindowPayload(TypedDict):
    seconds: int
    counts: list[float]
    shares: list[float]
    messages: int
    rate: float
    negative_share: float


class MinutePayload(TypedDict):
    minute: int
    counts: list[float]
    messages: int


class RecentPayload(TypedDict):
    ts: float
    emotion: str
    confidence: float
    text: str
    user: str
    weight: float


class SnapshotPayload(TypedDict):
    room: str
    ts: float
    emotions: list[str]
    windows: list[WindowPayload]
    minutes: list[MinutePayload]
    recent: list[RecentPayload]
    dominant: str
    negative_share: float
    spike_score: float
    baseline_negative: float
    trend: float
    total_messages: int
    flooded_messages: int


class EventPayload(TypedDict):
    room: str
    ts: float
    kind: str
    message: str
    values: dict[str, float]


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def window_payload(w: WindowStats) -> WindowPayload:
    """One rolling window, shares rounded for the wire."""
    return {
        "seconds": w.seconds,
        "counts": [_r(c, 2) for c in w.counts],
        "shares": [_r(s) for s in w.shares],
        "messages": w.messages,
        "rate": _r(w.rate, 2),
        "negative_share": _r(w.negative_share),
    }


def snapshot_payload(s: MoodSnapshot) -> SnapshotPayload:
    """The full mood of one room: sent on connect and at the snapshot rate."""
    short = min(s.windows, key=lambda w: w.seconds) if s.windows else None
    return {
        "room": s.room,
        "ts": _r(s.ts, 3),
        "emotions": list(EMOTIONS),
        "windows": [window_payload(w) for w in s.windows],
        "minutes": [
            {"minute": m.minute, "counts": [_r(c, 2) for c in m.counts], "messages": m.messages}
            for m in s.minutes
        ],
        "recent": [
            {
                "ts": _r(m.ts, 3),
                "emotion": m.emotion,
                "confidence": _r(m.confidence, 3),
                "text": m.text,
                "user": m.user,
                "weight": _r(m.weight, 3),
            }
            for m in s.recent
        ],
        "dominant": s.dominant,
        "negative_share": _r(short.negative_share) if short else 0.0,
        "spike_score": _r(s.spike_score, 3),
        "baseline_negative": _r(s.baseline_negative),
        "trend": _r(s.trend),
        "total_messages": s.total_messages,
        "flooded_messages": s.flooded_messages,
    }


def event_payload(e: TriggerEvent) -> EventPayload:
    """An alert or action, for the overlay banner and the dashboard log."""
    return {
        "room": e.room,
        "ts": _r(e.ts, 3),
        "kind": e.kind,
        "message": e.message,
        "values": {k: _r(v) for k, v in e.values.items()},
    }


class HistoryPointPayload(TypedDict):
    ts: int
    shares: list[float]
    messages: int


class HistoryPayload(TypedDict):
    """The dashboard's five-minute chart so far: one point per second, oldest first."""

    room: str
    seconds: int
    window: int
    emotions: list[str]
    points: list[HistoryPointPayload]


def history_payload(room: str, seconds: int, window: int, points: Sequence[MoodPoint]) -> HistoryPayload:
    """Per-second points of the "now" window; ``shares`` are rounded exactly as in ``window_payload``,
    so a backfilled point equals the one a live snapshot of that second gave the browser."""
    return {
        "room": room,
        "seconds": seconds,
        "window": window,
        "emotions": list(EMOTIONS),
        "points": [
            {"ts": p.ts, "shares": window_payload(p.window)["shares"], "messages": p.window.messages}
            for p in points
        ],
    }


MAX_ROOM_CHARS = 64
"""Same bound as ChatMessage room names: a longer one cannot match any room the pipeline produces."""


def room_name(value: object) -> str | None:
    """A room name from a URL, query or socket.io auth, or None if it cannot name a room."""
    if not isinstance(value, str):
        return None
    room = value.strip()
    if not room or len(room) > MAX_ROOM_CHARS:
        return None
    # Control characters never survive ChatMessage.create, so no real room contains one.
    if any(ch < " " or ch == "\x7f" for ch in room):
        return None
    return room


def empty_snapshot_payload(room: str, window_seconds: Sequence[int]) -> SnapshotPayload:
    """A valid snapshot of a room with no data yet (``ts`` 0), so an overlay is never blank."""
    zeros = tuple(0.0 for _ in EMOTIONS)
    return snapshot_payload(
        MoodSnapshot(
            room=room,
            ts=0.0,
            windows=tuple(WindowStats(seconds=s, counts=zeros, messages=0, rate=0.0) for s in window_seconds),
            minutes=(),
            recent=(),
            spike_score=0.0,
            baseline_negative=0.0,
            total_messages=0,
            flooded_messages=0,
            dominant="neutral",
            trend=0.0,
        )
    )


class TickerItemPayload(TypedDict):
    text: str
    score: float
    emotion: str


class TickerPayload(TypedDict):
    """The ticker's content. Generic on purpose: trending words today, the bot's trending products later
    (``source`` says which; each item is just text, a score and an emotion colour)."""

    room: str
    source: str
    items: list[TickerItemPayload]


class _HasTicker(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def emotion(self) -> str: ...


def ticker_payload(room: str, items: Sequence[_HasTicker], source: str = "words") -> TickerPayload:
    """The ticker event: any items with ``text``, ``score`` and ``emotion`` (words now, products later)."""
    return {
        "room": room,
        "source": source,
        "items": [
            {
                "text": i.text,
                "score": _r(i.score, 2),
                "emotion": i.emotion if i.emotion in EMOTIONS else "neutral",
            }
            for i in items
        ],
    }


class OverlaySettingsPayload(TypedDict):
    """Config defaults for the overlay page; the page's URL parameters override each one."""

    theme: str
    font: str
    scale: float
    rows: int
    cols: int
    minutes: int
    alert_seconds: float
    colors: dict[str, str]
    namespace: str
