"""Bounded queues with an explicit overflow policy, and typed fan-out hubs.

Nothing is dropped silently: a full queue drops its *oldest* item (fresh chat matters more than stale
chat on a live stream) and counts it; the counts are shown on the dashboard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(asyncio.Queue[T]):
    """An asyncio.Queue whose ``put_nowait`` never blocks or raises: when full it evicts the oldest item."""

    def __init__(self, maxsize: int, name: str = "") -> None:
        super().__init__(maxsize=maxsize)
        self.name = name
        self.dropped = 0
        self.accepted = 0

    def put_nowait(self, item: T) -> None:
        if self.maxsize > 0 and self.full():
            # Drop-oldest keeps the stream current; the loss is counted, never silent.
            super().get_nowait()
            self.task_done()
            self.dropped += 1
        super().put_nowait(item)
        self.accepted += 1

    def drain_nowait(self, limit: int) -> list[T]:
        """Take up to ``limit`` items that are ready, without waiting."""
        out: list[T] = []
        while len(out) < limit:
            try:
                out.append(self.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue's counters, for the dashboard and doctor."""

    name: str
    size: int
    maxsize: int
    accepted: int
    dropped: int


class Hub(Generic[T]):
    """A typed fan-out point: each subscriber gets its own bounded queue, so a slow one stalls nobody."""

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self._maxsize = maxsize
        self._subscribers: dict[str, DropOldestQueue[T]] = {}
        self.published = 0

    def subscribe(self, name: str, maxsize: int | None = None) -> DropOldestQueue[T]:
        """A new queue that receives every item published from now on."""
        if name in self._subscribers:
            raise ValueError(f"hub {self.name!r} already has a subscriber named {name!r}")
        q: DropOldestQueue[T] = DropOldestQueue(maxsize or self._maxsize, name=f"{self.name}->{name}")
        self._subscribers[name] = q
        return q

    def unsubscribe(self, name: str) -> None:
        """Stop delivering to ``name``; unknown names are ignored."""
        self._subscribers.pop(name, None)

    def publish(self, item: T) -> None:
        """Deliver to every subscriber without waiting."""
        self.published += 1
        for q in self._subscribers.values():
            q.put_nowait(item)

    def queues(self) -> Iterator[DropOldestQueue[T]]:
        return iter(list(self._subscribers.values()))

    def stats(self) -> list[QueueStats]:
        """Counters of every subscriber queue."""
        return [
            QueueStats(q.name, q.qsize(), q.maxsize, q.accepted, q.dropped)
            for q in self._subscribers.values()
        ]
