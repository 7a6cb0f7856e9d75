"""Bounded queues drop the oldest item and count it; hubs fan out so no consumer stalls another."""

from __future__ import annotations

from engine.queues import DropOldestQueue, Hub


def test_drop_oldest_counts_and_keeps_newest() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    for i in range(10):
        q.put_nowait(i)
    assert q.dropped == 7
    assert q.accepted == 10
    assert q.drain_nowait(10) == [7, 8, 9]


def test_hub_gives_each_subscriber_its_own_queue() -> None:
    h: Hub[int] = Hub("h", 2)
    fast = h.subscribe("fast", maxsize=100)
    slow = h.subscribe("slow")
    for i in range(5):
        h.publish(i)
    assert fast.drain_nowait(10) == [0, 1, 2, 3, 4]
    assert slow.drain_nowait(10) == [3, 4]
    assert {s.name: s.dropped for s in h.stats()} == {"h->fast": 0, "h->slow": 3}
