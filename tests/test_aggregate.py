"""Aggregation per room with an injected clock: windows, minutes, recent grid, spikes."""

from __future__ import annotations

from engine.aggregate import RoomAggregator
from engine.config import AggregateConfig
from engine.emotions import EMOTIONS, INDEX
from engine.types import ChatMessage, ClassifiedMessage, Prediction

T0 = 1_700_000_040.0  # a minute boundary


def cm(emotion: str, ts: float, weight: float = 1.0, text: str = "x") -> ClassifiedMessage:
    scores = tuple(0.9 if e == emotion else 0.02 for e in EMOTIONS)
    msg = ChatMessage.create(room="r", user="u", text=text, ts=ts)
    return ClassifiedMessage(msg, text, Prediction(emotion, 0.9, scores), weight, "test")


def test_windows_count_only_their_seconds() -> None:
    agg = RoomAggregator("r", AggregateConfig(windows=(10, 60)))
    agg.add(cm("happy", T0), now=T0 + 100)  # clamped into range, not lost
    agg = RoomAggregator("r", AggregateConfig(windows=(10, 60)))
    for s in range(60):
        agg.add(cm("happy" if s < 50 else "angry", T0 + s), now=T0 + s)
    snap, _ = agg.snapshot(T0 + 59.5)
    w10, w60 = snap.windows
    assert w10.counts[INDEX["angry"]] == 10 and w10.total == 10
    assert w60.counts[INDEX["happy"]] == 50 and w60.total == 60
    assert w10.rate == 1.0
    assert snap.dominant == "angry"
    assert snap.trend > 0  # more negative now than over the minute


def test_weights_reduce_counts_but_messages_are_counted() -> None:
    agg = RoomAggregator("r", AggregateConfig(windows=(10,)))
    for _ in range(5):
        agg.add(cm("angry", T0, weight=0.0), now=T0)
    agg.add(cm("happy", T0), now=T0)
    snap, _ = agg.snapshot(T0)
    assert snap.windows[0].total == 1.0
    assert snap.windows[0].messages == 6
    assert snap.flooded_messages == 5
    assert snap.dominant == "happy"


def test_minute_history_and_recent_grid() -> None:
    agg = RoomAggregator("r", AggregateConfig(recent_messages=100, history_minutes=30))
    for m in range(40):
        agg.add(cm("sad", T0 + m * 60), now=T0 + m * 60)
    snap, _ = agg.snapshot(T0 + 39 * 60)
    assert len(snap.minutes) == 31
    assert snap.minutes[-1].minute == int(T0) + 39 * 60
    assert snap.minutes[-1].counts[INDEX["sad"]] == 1
    for i in range(150):
        agg.add(cm("happy", T0 + 2400, text=f"m{i}"), now=T0 + 2400)
    snap, _ = agg.snapshot(T0 + 2400)
    assert len(snap.recent) == 100
    assert snap.recent[-1].text == "m149"


def test_spike_fires_against_the_rooms_own_baseline_then_calms() -> None:
    cfg = AggregateConfig(
        windows=(10, 60, 180), baseline_seconds=120, spike_threshold=3.0, spike_min_messages=15
    )
    agg = RoomAggregator("r", cfg)
    t = T0
    # Two calm minutes: 3 msgs/s, about 10% negative.
    for s in range(120):
        for k in range(3):
            agg.add(cm("sad" if (s * 3 + k) % 10 == 0 else "happy", t + s), now=t + s)
    snap, events = agg.snapshot(t + 119.9)
    assert events == [] and abs(snap.baseline_negative - 0.1) < 0.03
    # Ten angry seconds.
    fired = []
    for s in range(120, 130):
        for _ in range(3):
            agg.add(cm("angry", t + s), now=t + s)
        _, ev = agg.snapshot(t + s + 0.5)
        fired += ev
    assert [e.kind for e in fired] == ["negative_spike"]
    # It fires within seconds, as soon as the "now" window is 3 spreads above the 10% baseline.
    assert fired[0].values["negative_share"] > 0.25
    assert fired[0].values["spike_score"] >= 3.0
    assert "angry" in fired[0].message
    # Calm again.
    calm = []
    for s in range(130, 160):
        for _ in range(3):
            agg.add(cm("happy", t + s), now=t + s)
        _, ev = agg.snapshot(t + s + 0.5)
        calm += ev
    assert [e.kind for e in calm] == ["calm"]


def test_no_spike_without_enough_messages_or_baseline() -> None:
    agg = RoomAggregator("r", AggregateConfig(spike_min_messages=15))
    for s in range(10):
        agg.add(cm("angry", T0 + s), now=T0 + s)
    snap, events = agg.snapshot(T0 + 10)
    assert events == [] and snap.spike_score == 0.0
