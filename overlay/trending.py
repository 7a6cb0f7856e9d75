"""Trending words per room: a rolling count of frequent terms in the classified chat, for the ticker.

Terms are Chinese character bigrams and Latin/digit words of the *normalised* text (so URLs, mentions
and emote codes are already gone), each counted once per message and weighted by the flood weight, so
a spammer or a pasted wave cannot own the ticker. Counts live in 10-second buckets; the running total
is kept incrementally, so asking for the top terms never re-sums the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from engine.emotions import EMOTIONS, INDEX
from engine.queues import DropOldestQueue
from engine.tasks import cancel_and_wait
from engine.types import ClassifiedMessage
from overlay import keys
from overlay.wire import TickerItemPayload, ticker_payload

BUCKET_SECONDS = 10.0
TICKER_INTERVAL = 2.0
"""Seconds between two ticker recomputations of a busy room (the ticker moves slowly anyway)."""
SUBSCRIBER = "trending"
_DRAIN = 2048

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z][a-z0-9'+-]{1,23}|\d{3,12}")

# Chat filler that would otherwise top every ticker. Chinese: bigrams, and characters a term may not
# start or end with (particles, pronouns); English: the usual function words plus chat filler.
_STOP_BIGRAMS_TEXT = """
主播 什么 怎么 这个 那个 我们 你们 他们 就是 还是 可以 没有 真的 一个 不是 现在 知道 大家 自己 已经
这么 那么 为什么 因为 所以 但是 然后 如果 时候 觉得 感觉 一下 有没 是不 有点
"""
_STOP_WORDS_TEXT = """
the a an and or but is are was were be been am i you he she it we they me my your our their this
that these those to of in on at for with as by from so not no yes do does did have has had just
like lol lmao omg ok okay oh ah uh um hi hey its it's im i'm u ur can will would could should what
who how why when where all any some very too really there here then than get got
"""
STOP_BIGRAMS = frozenset(_STOP_BIGRAMS_TEXT.split())
STOP_EDGE_CHARS = frozenset("的了是我你他她它们这那吗呢吧啊呀哦嗯么个在和也就都还又把被给让着过得地之")
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def terms_of(text: str) -> set[str]:
    """The distinct trending-candidate terms of one normalised message."""
    out: set[str] = set()
    for run in _CJK_RUN.findall(text):
        # A filler word's characters must not pair with their neighbours either (主播好 -> not 播好).
        filler = {i for i in range(len(run) - 1) if run[i : i + 2] in STOP_BIGRAMS}
        for i in range(len(run) - 1):
            bigram = run[i : i + 2]
            if bigram[0] == bigram[1] or {i - 1, i, i + 1} & filler:
                continue
            if bigram[0] in STOP_EDGE_CHARS or bigram[1] in STOP_EDGE_CHARS:
                continue
            out.add(bigram)
    for word in _WORD.findall(text):
        if word not in STOP_WORDS:
            out.add(word)
    return out


@dataclass(frozen=True, slots=True)
class TrendingTerm:
    """One ticker entry: the term, its weighted count in the window, its most common emotion."""

    text: str
    score: float
    emotion: str


class _RoomCounts:
    __slots__ = ("buckets", "totals")

    def __init__(self) -> None:
        self.buckets: deque[tuple[int, dict[str, list[float]]]] = deque()
        self.totals: dict[str, list[float]] = {}


class Trending:
    """Rolling per-room term counts over ``window`` seconds."""

    def __init__(
        self, window: float = 120.0, size: int = 8, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.size = size
        self._clock = clock
        self._rooms: dict[str, _RoomCounts] = {}
        self.dirty: set[str] = set()
        """Rooms whose counts changed since the ticker loop last looked."""
        self.wake = asyncio.Event()
        """Set when a message is counted, so an idle ticker loop sleeps without polling."""

    def add(self, room: str, text: str, emotion: str, weight: float = 1.0) -> None:
        """Count one classified message (its normalised text)."""
        if weight <= 0:
            return
        terms = terms_of(text)
        if not terms:
            return
        rc = self._rooms.setdefault(room, _RoomCounts())
        bucket_id = int(self._clock() // BUCKET_SECONDS)
        self._expire(rc, bucket_id)
        if not rc.buckets or rc.buckets[-1][0] != bucket_id:
            rc.buckets.append((bucket_id, {}))
        bucket = rc.buckets[-1][1]
        e = INDEX.get(emotion, INDEX["neutral"])
        for term in terms:
            for counts in (bucket.setdefault(term, [0.0] * 6), rc.totals.setdefault(term, [0.0] * 6)):
                counts[e] += weight
        self.dirty.add(room)
        self.wake.set()

    def add_classified(self, messages: Iterable[ClassifiedMessage]) -> None:
        """Count a batch from the classified hub."""
        for m in messages:
            self.add(m.message.room, m.norm_text, m.emotion, m.weight)

    def _expire(self, rc: _RoomCounts, bucket_id: int) -> None:
        oldest = bucket_id - int(self.window // BUCKET_SECONDS) + 1
        while rc.buckets and rc.buckets[0][0] < oldest:
            _, old = rc.buckets.popleft()
            for term, counts in old.items():
                total = rc.totals[term]
                for i, c in enumerate(counts):
                    total[i] -= c
                if sum(total) <= 1e-9:
                    del rc.totals[term]

    def active_rooms(self) -> list[str]:
        """Rooms that still have counts in the window."""
        return [room for room, rc in self._rooms.items() if rc.totals]

    def top(self, room: str) -> list[TrendingTerm]:
        """The room's ``size`` most frequent terms now, best first, near-duplicate bigrams merged."""
        rc = self._rooms.get(room)
        if rc is None:
            return []
        self._expire(rc, int(self._clock() // BUCKET_SECONDS))
        candidates = heapq.nlargest(self.size * 4, rc.totals.items(), key=lambda kv: sum(kv[1]))
        candidates.sort(key=lambda kv: (-sum(kv[1]), kv[0]))  # ties in a stable, readable order
        chosen: list[TrendingTerm] = []
        for term, counts in candidates:
            score = sum(counts)
            if score < 2:  # one message is not a trend
                break
            # 可爱/好可 from 好可爱: a bigram overlapping a stronger chosen one by a char is the same word.
            if any(_overlaps(term, c.text) and score >= 0.6 * c.score for c in chosen):
                continue
            emotion = EMOTIONS[max(range(6), key=lambda i: counts[i])]
            chosen.append(TrendingTerm(term, round(score, 2), emotion))
            if len(chosen) >= self.size:
                break
        return chosen


def _overlaps(a: str, b: str) -> bool:
    if len(a) != 2 or len(b) != 2:
        return False
    return a[1] == b[0] or a[0] == b[1]


async def _consume(trending: Trending, queue: DropOldestQueue[ClassifiedMessage]) -> None:
    while True:
        first = await queue.get()
        trending.add_classified([first, *queue.drain_nowait(_DRAIN)])


async def _emit_loop(app: web.Application) -> None:
    """Every TICKER_INTERVAL while a room is active: send its ticker if it changed; sleep when idle."""
    from overlay.broadcast import NAMESPACE, room_key  # broadcast imports this module's payloads

    trending = app[keys.TRENDING]
    sio = app[keys.SIO]
    last: dict[str, list[TickerItemPayload]] = {}
    while True:
        await asyncio.sleep(TICKER_INTERVAL)
        rooms = set(trending.dirty) | set(trending.active_rooms()) | {r for r, v in last.items() if v}
        if not rooms:
            # Nothing to show or clear: sleep until chat arrives (idle CPU stays at zero).
            trending.wake.clear()
            await trending.wake.wait()
            continue
        trending.dirty.clear()
        for room in rooms:
            payload = ticker_payload(room, trending.top(room))
            if payload["items"] != last.get(room):
                last[room] = payload["items"]
                with contextlib.suppress(Exception):
                    await sio.emit("ticker", dict(payload), to=room_key(room), namespace=NAMESPACE)


async def trending_ctx(app: web.Application) -> AsyncIterator[None]:
    """Subscribe to classified messages and run the counter and the ticker loop while the app serves."""
    feed = app[keys.FEED]
    queue = feed.classified.subscribe(SUBSCRIBER)
    tasks = [
        asyncio.create_task(_consume(app[keys.TRENDING], queue), name="trending"),
        asyncio.create_task(_emit_loop(app), name="ticker"),
    ]
    try:
        yield
    finally:
        await cancel_and_wait(tasks)
        feed.classified.unsubscribe(SUBSCRIBER)
