"""The engine's pipeline: ingest queue -> normalise/flood -> classify (micro-batched) -> aggregate -> fan-out.

Sources call ``submit`` (synchronous, only enqueues). One task classifies in micro-batches off the event
loop; another publishes per-room snapshots at the configured rate. Consumers subscribe to the three hubs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.aggregate import RoomAggregator
from engine.classify.base import EmotionModel, ModelError
from engine.classify.cache import PredictionCache
from engine.config import Config
from engine.emotions import EMOTIONS, NEUTRAL_INDEX
from engine.flood import FloodControl
from engine.normalise import normalise_cached
from engine.queues import DropOldestQueue, Hub
from engine.types import ChatMessage, ClassifiedMessage, MoodPoint, MoodSnapshot, Prediction, TriggerEvent

log = logging.getLogger(__name__)

ModelLoader = Callable[[str], EmotionModel]
Clock = Callable[[], float]

_EMPTY = Prediction("neutral", 1.0, tuple(1.0 if i == NEUTRAL_INDEX else 0.0 for i in range(len(EMOTIONS))))


@dataclass(slots=True)
class _Pending:
    msg: ChatMessage
    enqueued: float  # monotonic, for latency accounting


@dataclass(slots=True)
class PipelineCounters:
    """Running totals for the dashboard, doctor and benchmarks."""

    submitted: int = 0
    classified: int = 0
    batches: int = 0
    batch_items: int = 0
    classify_seconds: float = 0.0
    model_errors: int = 0


class Pipeline:
    """Implements engine.feed.MoodFeed; owns the rooms' aggregators and the classification stage."""

    def __init__(self, config: Config, load_model: ModelLoader, *, clock: Clock = time.time) -> None:
        self.config = config
        self._load_model = load_model
        self._clock = clock
        pc = config.pipeline
        self._inbox: DropOldestQueue[_Pending] = DropOldestQueue(pc.ingest_queue, name="ingest")
        self._classified: Hub[ClassifiedMessage] = Hub("classified", pc.subscriber_queue)
        self._snapshots: Hub[MoodSnapshot] = Hub("snapshots", 256)
        self._events: Hub[TriggerEvent] = Hub("events", 1024)
        self._flood = FloodControl(config.flood)
        self._cache = PredictionCache(config.classifier.cache_size)
        self._rooms: dict[str, RoomAggregator] = {}
        self._latest: dict[str, MoodSnapshot] = {}
        self._default_model = config.classifier.model
        self._room_models: dict[str, str] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.counters = PipelineCounters()
        self.latency_hook: Callable[[Sequence[ClassifiedMessage], Sequence[float]], None] | None = None
        self.source_health: Callable[[], dict[str, dict[str, object]]] | None = None
        """Set by the service: each source's health (SourceState.as_dict) under ``stats()["sources"]``."""
        self.stats_hooks: dict[str, Callable[[], object]] = {}
        """Extra sections of ``stats()`` (the service adds "store", "ingest"); name -> counters."""
        # Load the default model now: a broken model must stop start-up, not the first message.
        self._load_model(self._default_model)

    # -- MoodFeed -----------------------------------------------------------------------------------
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
        agg = self._rooms.get(room)
        return agg.history(self._clock(), seconds) if agg is not None else []

    def rooms(self) -> list[str]:
        return sorted(self._rooms)

    def stats(self) -> dict[str, object]:
        c = self.counters
        return {
            "submitted": c.submitted,
            "classified": c.classified,
            "queued": self._inbox.qsize(),
            "dropped": self._inbox.dropped + sum(s.dropped for h in self._hubs() for s in h.stats()),
            "ingest_dropped": self._inbox.dropped,
            "subscribers": {
                s.name: {"queued": s.size, "dropped": s.dropped} for h in self._hubs() for s in h.stats()
            },
            "flooded": {room: st.total() for room, st in self._flood.stats.items()},
            "avg_batch": round(c.batch_items / c.batches, 1) if c.batches else 0.0,
            "classify_ms_per_batch": round(1000 * c.classify_seconds / c.batches, 2) if c.batches else 0.0,
            "cache_hit_rate": round(self._cache.hits / max(1, self._cache.hits + self._cache.misses), 3),
            "model": self._default_model,
            "room_models": dict(self._room_models),
            "model_errors": c.model_errors,
            "sources": self.source_health() if self.source_health is not None else {},
            **{name: hook() for name, hook in self.stats_hooks.items()},
        }

    def backlog(self) -> int:
        """Messages waiting in the inbox (cheap: ingest admission asks on every batch)."""
        return self._inbox.qsize()

    def _hubs(self) -> tuple[Hub[ClassifiedMessage], Hub[MoodSnapshot], Hub[TriggerEvent]]:
        return (self._classified, self._snapshots, self._events)

    # -- input --------------------------------------------------------------------------------------
    def submit(self, msg: ChatMessage) -> None:
        """Enqueue one message; never blocks (a full inbox drops its oldest message and counts it)."""
        self.counters.submitted += 1
        self._idle.clear()
        self._inbox.put_nowait(_Pending(msg, time.monotonic()))

    # -- models -------------------------------------------------------------------------------------
    def set_model(self, model_id: str, room: str | None = None) -> None:
        """Switch the model for one room or for all rooms, without a restart; loads it before switching."""
        self._load_model(model_id)
        if room is None:
            self._default_model = model_id
        else:
            self._room_models[room] = model_id

    def model_for(self, room: str) -> str:
        return self._room_models.get(room, self._default_model)

    # -- stages -------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the classify and snapshot stages until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._classify_loop(), name="classify")
            tg.create_task(self._snapshot_loop(), name="snapshots")

    async def drain(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - returns False, never raises
        """Wait until everything submitted so far has been classified and published; True if it was."""
        try:
            await asyncio.wait_for(self._wait_idle(), timeout)
        except TimeoutError:
            return False
        self.publish_snapshots()
        return True

    async def _wait_idle(self) -> None:
        while not (self._idle.is_set() and self._inbox.empty()):
            await self._idle.wait()
            await asyncio.sleep(0)

    async def _classify_loop(self) -> None:
        pc = self.config.pipeline
        wait = pc.batch_wait_ms / 1000.0
        while True:
            if self._inbox.empty():
                self._idle.set()
            first = await self._inbox.get()
            self._idle.clear()
            batch = [first, *self._inbox.drain_nowait(pc.batch_max - 1)]
            if len(batch) < pc.batch_max and wait > 0:
                # Micro-batching: give a trickle a few ms to fill the batch; a busy room fills it at once.
                deadline = time.monotonic() + wait
                while len(batch) < pc.batch_max:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._inbox.get(), left))
                    except TimeoutError:
                        break
                    batch.extend(self._inbox.drain_nowait(pc.batch_max - len(batch)))
            try:
                await self.process(batch)
            except Exception:  # a stage must survive anything a batch throws at it
                log.exception("classification batch of %d failed", len(batch))
                self.counters.model_errors += 1

    async def process(self, batch: Sequence[_Pending]) -> list[ClassifiedMessage]:
        """Normalise, weigh, classify and aggregate one batch; publish each classified message."""
        max_run = self.config.flood.max_run
        floor = self.config.classifier.confidence_floor
        norms = [normalise_cached(p.msg.text, max_run) for p in batch]
        preds: list[Prediction | None] = []
        todo: dict[str, dict[str, None]] = {}  # model id -> unique texts to run
        for p, norm in zip(batch, norms, strict=True):
            mid = self.model_for(p.msg.room)
            hit = _EMPTY if not norm else self._cache.get(mid, norm)
            preds.append(hit)
            if hit is None:
                todo.setdefault(mid, {})[norm] = None
        fresh: dict[tuple[str, str], Prediction] = {}
        for mid, texts in todo.items():
            fresh.update(await self._run_model(mid, list(texts)))
        now = self._clock()
        out: list[ClassifiedMessage] = []
        for p, norm, pred in zip(batch, norms, preds, strict=True):
            mid = self.model_for(p.msg.room)
            pr = pred or fresh.get((mid, norm), _EMPTY)
            if floor > 0 and pr.confidence < floor and pr.emotion != "neutral":
                pr = Prediction("neutral", pr.confidence, pr.scores)
            weight, reason = self._flood.weigh(p.msg.room, p.msg.user, norm, p.msg.ts)
            cm = ClassifiedMessage(p.msg, norm, pr, weight, mid, reason)
            agg = self._rooms.get(p.msg.room)
            if agg is None:
                agg = self._rooms[p.msg.room] = RoomAggregator(p.msg.room, self.config.aggregate)
            agg.add(cm, now)
            self._classified.publish(cm)
            out.append(cm)
        self.counters.classified += len(out)
        if self.latency_hook is not None:
            done = time.monotonic()
            self.latency_hook(out, [done - p.enqueued for p in batch])
        return out

    async def _run_model(self, model_id: str, texts: list[str]) -> dict[tuple[str, str], Prediction]:
        try:
            model = self._load_model(model_id)
        except ModelError:
            log.exception("model %r unavailable; falling back to %r", model_id, self.config.classifier.model)
            self.counters.model_errors += 1
            model_id = self.config.classifier.model
            model = self._load_model(model_id)
        t0 = time.perf_counter()
        # onnxruntime blocks: run it in a worker thread so sockets keep flowing meanwhile.
        preds = await asyncio.to_thread(model.predict, texts)
        self.counters.classify_seconds += time.perf_counter() - t0
        self.counters.batches += 1
        self.counters.batch_items += len(texts)
        result: dict[tuple[str, str], Prediction] = {}
        for t, pr in zip(texts, preds, strict=True):
            self._cache.put(model_id, t, pr)
            result[(model_id, t)] = pr
        return result

    def publish_snapshots(self, now: float | None = None) -> list[MoodSnapshot]:
        """Build and publish a snapshot of every active room (and any trigger events)."""
        t = self._clock() if now is None else now
        published: list[MoodSnapshot] = []
        for room, agg in self._rooms.items():
            if agg.idle(t) and room in self._latest:
                continue
            snap, events = agg.snapshot(t)
            self._latest[room] = snap
            self._snapshots.publish(snap)
            published.append(snap)
            for e in events:
                log.info("%s: %s", room, e.message)
                self._events.publish(e)
        return published

    async def _snapshot_loop(self) -> None:
        period = 1.0 / max(0.1, self.config.aggregate.snapshot_hz)
        next_at = time.monotonic()
        while True:
            next_at += period
            try:
                self.publish_snapshots()
            except Exception:
                log.exception("snapshot publication failed")
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def publish_event(self, event: TriggerEvent) -> None:
        """Publish an event from outside the aggregators (actions, source health changes)."""
        self._events.publish(event)

    async def process_messages(self, messages: Sequence[ChatMessage]) -> list[ClassifiedMessage]:
        """Classify and aggregate ``messages`` now, bypassing the inbox (``moodcast simulate``, tests)."""
        self.counters.submitted += len(messages)
        now = time.monotonic()
        return await self.process([_Pending(m, now) for m in messages])
