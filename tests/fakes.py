"""Fakes for our own seams: a MoodFeed driven by the test, and a builder of MoodSnapshot values."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from engine.aggregate import HISTORY_SECONDS, SecondSeries
from engine.emotions import EMOTIONS
from engine.feed import MoodFeed
from engine.queues import Hub
from engine.types import (
    ClassifiedMessage,
    MoodPoint,
    MoodSnapshot,
    RecentMessage,
    TriggerEvent,
    WindowStats,
)


class FakeFeed:
    """A MoodFeed whose snapshots and events the test pushes; the hubs are the real ones."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._classified: Hub[ClassifiedMessage] = Hub("classified", maxsize)
        self._snapshots: Hub[MoodSnapshot] = Hub("snapshots", maxsize)
        self._events: Hub[TriggerEvent] = Hub("events", maxsize)
        self._latest: dict[str, MoodSnapshot] = {}
        self._series: dict[str, SecondSeries] = {}

    @property
    def classified(self) -> Hub[ClassifiedMessage]:
        return self._classified

    @property
    def snapshots(self) -> Hub[MoodSnapshot]:
        return self._snapshots

    @property
    def events(self) -> Hub[TriggerEvent]:
        return self._events

    def latest(self, room: str) -> MoodSnapshot | None:
        return self._latest.get(room)

    def history(self, room: str, seconds: int) -> list[MoodPoint]:
        """Points of the pushed snapshots, relative to the room's latest one (the test's clock)."""
        latest, series = self._latest.get(room), self._series.get(room)
        if latest is None or series is None:
            return []
        return series.since(latest.ts, min(seconds, HISTORY_SECONDS))

    def rooms(self) -> list[str]:
        return sorted(self._latest)

    def stats(self) -> dict[str, object]:
        return {
            "snapshots_published": self._snapshots.published,
            "queues": [*self._snapshots.stats(), *self._events.stats()],
        }

    def push(self, snapshot: MoodSnapshot) -> None:
        """Make ``snapshot`` the room's latest and publish it, as the aggregator does."""
        self._latest[snapshot.room] = snapshot
        if snapshot.windows:
            short = min(snapshot.windows, key=lambda w: w.seconds)
            self._series.setdefault(snapshot.room, SecondSeries()).record(snapshot.ts, short)
        self._snapshots.publish(snapshot)

    def push_event(self, event: TriggerEvent) -> None:
        """Publish a trigger event."""
        self._events.publish(event)


def make_snapshot(
    room: str = "demo",
    shares: Mapping[str, float] | None = None,
    *,
    messages: int = 100,
    rate: float = 5.0,
    recent: Sequence[tuple[str, float]] = (),
    ts: float | None = None,
    windows: Sequence[int] = (10, 60, 180),
    total_messages: int | None = None,
) -> MoodSnapshot:
    """A snapshot whose windows all hold ``shares`` of ``messages`` (default: all neutral).

    ``recent`` is (emotion, confidence) per heatmap cell, oldest first; ``dominant`` is the top share.
    """
    shares = dict(shares or {"neutral": 1.0})
    unknown = set(shares) - set(EMOTIONS)
    if unknown:
        raise ValueError(f"unknown emotions {sorted(unknown)}")
    counts = tuple(float(shares.get(e, 0.0)) * messages for e in EMOTIONS)
    now = time.time() if ts is None else ts
    dominant = max(EMOTIONS, key=lambda e: shares.get(e, 0.0))
    return MoodSnapshot(
        room=room,
        ts=now,
        windows=tuple(WindowStats(seconds=s, counts=counts, messages=messages, rate=rate) for s in windows),
        minutes=(),
        recent=tuple(
            RecentMessage(
                ts=now - len(recent) + i, emotion=e, confidence=c, text=f"msg {i}", user=f"u{i}", weight=1.0
            )
            for i, (e, c) in enumerate(recent)
        ),
        spike_score=0.0,
        baseline_negative=0.0,
        total_messages=messages if total_messages is None else total_messages,
        flooded_messages=0,
        dominant=dominant,
        trend=0.0,
    )


def _conforms(feed: FakeFeed) -> MoodFeed:
    # mypy proves here that FakeFeed satisfies the MoodFeed protocol.
    return feed
