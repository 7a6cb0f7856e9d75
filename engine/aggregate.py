"""Per-room aggregation: per-second buckets, rolling windows, minute history, recent messages, spikes,
and the last five minutes of the "now" window as snapshots carried it (the dashboard's area chart)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from engine.config import AggregateConfig
from engine.emotions import EMOTIONS, INDEX, NEGATIVE_INDEXES
from engine.types import (
    ClassifiedMessage,
    MinuteCounts,
    MoodPoint,
    MoodSnapshot,
    RecentMessage,
    TriggerEvent,
    WindowStats,
)

_N = len(EMOTIONS)
_BLOCK_SECONDS = 10  # baseline is measured in blocks as long as the default short window
_MIN_BASELINE_BLOCKS = 3
_STD_FLOOR = 0.05  # a room that was perfectly calm must not turn one angry message into a huge z-score
_RECENT_TEXT_CHARS = 80
HISTORY_SECONDS = 300
"""Seconds of per-second points a room keeps for charts that open late (the dashboard's five minutes)."""


class SecondSeries:
    """The "now" window as the last snapshot of each second carried it, for the last few minutes.

    Why recorded snapshots, not the 1 s buckets or SQLite: a browser open all along drew exactly these
    values (one point per second, the last snapshot of the second wins), so a chart backfilled from them
    is that same chart, idle pauses included (an idle room publishes nothing, so it has no points there).
    Buckets summed after the fact would count late messages that no live snapshot saw, and the ring would
    have to keep 300 s plus the window; the store would redo the aggregation (flood weights included) in
    SQL on a thread, a flush behind the writer. The cost is ``capacity`` small entries per room: the
    windows are the snapshots' own objects.
    """

    def __init__(self, capacity: int = HISTORY_SECONDS) -> None:
        self._points: deque[MoodPoint] = deque(maxlen=max(1, capacity))

    def record(self, now: float, window: WindowStats) -> None:
        """Note the window of a snapshot taken at ``now``; a later one in the same second replaces it."""
        # The millisecond ``ts`` the wire carries, floored: the second a browser files this snapshot under.
        sec = math.floor(round(now, 3))
        last = self._points[-1] if self._points else None
        if last is not None and last.ts == sec:
            self._points[-1] = MoodPoint(sec, window)
        elif last is None or sec > last.ts:
            self._points.append(MoodPoint(sec, window))
        # An earlier second (the clock stepped back) is already covered by what was published then.

    def since(self, now: float, seconds: int) -> list[MoodPoint]:
        """Points of the last ``seconds`` whole seconds up to ``now``, oldest first."""
        first = math.floor(now) - seconds + 1
        return [p for p in self._points if p.ts >= first]


class RoomAggregator:
    """Rolling mood of one room. Fed classified messages; asked for snapshots. Not thread-safe."""

    def __init__(self, room: str, config: AggregateConfig) -> None:
        self.room = room
        self._cfg = config
        self._windows = tuple(sorted(set(config.windows))) or (10,)
        horizon = max(max(self._windows), config.baseline_seconds + self._windows[0])
        self._h = horizon + 2
        # Ring buffer of seconds: weighted counts per emotion, messages, and which second a row holds.
        self._counts = np.zeros((self._h, _N), dtype=np.float64)
        self._msgs = np.zeros(self._h, dtype=np.int64)
        self._stamp = np.full(self._h, -1, dtype=np.int64)
        self._minutes: dict[int, MinuteCounts] = {}
        self._recent: deque[RecentMessage] = deque(maxlen=max(1, config.recent_messages))
        self.total_messages = 0
        self.flooded_messages = 0
        self.last_ts = 0.0
        self._spiking = False
        self._last_alert = -math.inf
        self._series = SecondSeries()

    def add(self, cm: ClassifiedMessage, now: float) -> None:
        """Count one classified message; its time is clamped to the window so clock skew cannot lose it."""
        ts = min(max(cm.message.ts, now - self._h + 2), now)
        sec = int(ts)
        i = sec % self._h
        if self._stamp[i] != sec:
            self._counts[i].fill(0.0)
            self._msgs[i] = 0
            self._stamp[i] = sec
        e = INDEX[cm.prediction.emotion]
        self._counts[i, e] += cm.weight
        self._msgs[i] += 1
        minute = sec // 60 * 60
        m = self._minutes.get(minute)
        counts = list(m.counts) if m else [0.0] * _N
        counts[e] += cm.weight
        self._minutes[minute] = MinuteCounts(minute, tuple(counts), (m.messages if m else 0) + 1)
        if len(self._minutes) > self._cfg.history_minutes + 1:
            for old in sorted(self._minutes)[: len(self._minutes) - self._cfg.history_minutes - 1]:
                del self._minutes[old]
        self._recent.append(
            RecentMessage(
                ts=cm.message.ts,
                emotion=cm.prediction.emotion,
                confidence=cm.prediction.confidence,
                text=cm.message.text[:_RECENT_TEXT_CHARS],
                user=cm.message.user,
                weight=cm.weight,
            )
        )
        self.total_messages += 1
        if cm.weight < 1.0:
            self.flooded_messages += 1
        self.last_ts = max(self.last_ts, ts)

    def _span(self, now: float, start: float, end: float) -> tuple[np.ndarray, int]:
        """Summed counts and messages for whole seconds in [start, end)."""
        s0, s1 = int(start), int(end)
        valid = (self._stamp >= s0) & (self._stamp < s1) & (self._stamp <= int(now))
        return self._counts[valid].sum(axis=0), int(self._msgs[valid].sum())

    def window(self, now: float, seconds: int) -> WindowStats:
        """Weighted counts over the last ``seconds`` whole seconds up to ``now``."""
        counts, msgs = self._span(now, now - seconds + 1, now + 1)
        return WindowStats(seconds, tuple(float(c) for c in counts), msgs, msgs / seconds)

    def _baseline(self, now: float) -> tuple[float, float]:
        """Mean and spread of the negative share over recent blocks before the short window."""
        short = self._windows[0]
        end = now - short + 1
        shares: list[float] = []
        weights: list[float] = []
        t = end - self._cfg.baseline_seconds
        while t + _BLOCK_SECONDS <= end:
            c, _ = self._span(now, t, t + _BLOCK_SECONDS)
            total = float(c.sum())
            if total >= 3:  # blocks with a couple of messages are noise, not a baseline
                shares.append(float(sum(c[i] for i in NEGATIVE_INDEXES)) / total)
                weights.append(total)
            t += _BLOCK_SECONDS
        if len(shares) < _MIN_BASELINE_BLOCKS:
            return math.nan, math.nan
        w = np.asarray(weights)
        s = np.asarray(shares)
        mean = float((w * s).sum() / w.sum())
        std = float(np.sqrt((w * (s - mean) ** 2).sum() / w.sum()))
        return mean, std

    def snapshot(self, now: float) -> tuple[MoodSnapshot, list[TriggerEvent]]:
        """The room's mood at ``now`` plus any spike/calm events that this moment triggers."""
        windows = tuple(self.window(now, w) for w in self._windows)
        short, long_ = windows[0], windows[-1]
        base_mean, base_std = self._baseline(now)
        score = 0.0
        if not math.isnan(base_mean) and short.messages >= self._cfg.spike_min_messages:
            score = (short.negative_share - base_mean) / max(base_std, _STD_FLOOR)
        events = self._spike_events(now, score, short, base_mean)
        shares = short.shares
        dominant = EMOTIONS[int(np.argmax(shares))] if short.total > 0 else "neutral"
        snap = MoodSnapshot(
            room=self.room,
            ts=now,
            windows=windows,
            minutes=tuple(self._minutes[k] for k in sorted(self._minutes)),
            recent=tuple(self._recent),
            spike_score=score,
            baseline_negative=0.0 if math.isnan(base_mean) else base_mean,
            total_messages=self.total_messages,
            flooded_messages=self.flooded_messages,
            dominant=dominant,
            trend=short.negative_share - long_.negative_share if long_.total > 0 else 0.0,
        )
        self._series.record(now, short)
        return snap, events

    def history(self, now: float, seconds: int) -> list[MoodPoint]:
        """The "now" window of the last ``seconds`` seconds of snapshots (one per second, oldest first)."""
        return self._series.since(now, min(seconds, HISTORY_SECONDS))

    def _spike_events(self, now: float, score: float, short: WindowStats, base: float) -> list[TriggerEvent]:
        values = {
            "spike_score": score,
            "negative_share": short.negative_share,
            "baseline_negative": 0.0 if math.isnan(base) else base,
            "messages": float(short.messages),
        }
        if not self._spiking and score >= self._cfg.spike_threshold:
            self._spiking = True
            if now - self._last_alert >= self._cfg.spike_cooldown_seconds:
                self._last_alert = now
                top = max(NEGATIVE_INDEXES, key=lambda i: short.counts[i])
                msg = (
                    f"negative spike: {short.negative_share:.0%} negative in the last {short.seconds}s "
                    f"(baseline {values['baseline_negative']:.0%}), mostly {EMOTIONS[top]}"
                )
                return [TriggerEvent(self.room, now, "negative_spike", msg, values)]
        elif self._spiking and score < self._cfg.spike_threshold / 2:
            self._spiking = False
            return [TriggerEvent(self.room, now, "calm", "the room has calmed down", values)]
        return []

    def idle(self, now: float) -> bool:
        """True when nothing arrived within the longest window: no need to keep publishing."""
        return now - self.last_ts > max(self._windows) + 1
