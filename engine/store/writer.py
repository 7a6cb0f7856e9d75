"""StoreWriter: batches the pipeline's classified messages and events into SQLite, off the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from engine.config import StoreConfig
from engine.queues import DropOldestQueue
from engine.store.db import Store
from engine.store.errors import StoreError
from engine.types import ClassifiedMessage, TriggerEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

PURGE_EVERY_S: Final = 600.0
RETRY_DELAYS_S: Final = (0.25, 1.0, 4.0)
"""Pauses between attempts at one batch; after the last, the batch is counted as lost."""


class StoreWriter:
    """Writes the message and event queues to the store in batches; a clean shutdown loses nothing."""

    def __init__(
        self,
        store_path: Path,
        config: StoreConfig,
        messages: DropOldestQueue[ClassifiedMessage],
        events: DropOldestQueue[TriggerEvent],
        *,
        opener: Callable[[Path], Store] = Store.open,
        purge_every_s: float = PURGE_EVERY_S,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = store_path
        self._config = config
        self._messages = messages
        self._events = events
        self._opener = opener
        self._purge_every_s = purge_every_s
        self._retry_delays_s = tuple(retry_delays_s)
        self._clock = clock
        self._batch = max(1, config.batch_size)
        # sqlite3 connections belong to one thread: every store call goes through this single worker.
        self._executor: ThreadPoolExecutor | None = None
        self._store: Store | None = None
        self._pending_messages: list[ClassifiedMessage] = []
        self._pending_events: list[TriggerEvent] = []
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._cancelled = False
        # After a batch is given up, later batches get one attempt each until a write succeeds again, so a
        # dead disk does not stall the writer for the whole retry schedule on every batch.
        self._failing = False
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "written_messages",
                "written_events",
                "batches",
                "write_errors",
                "lost_messages",
                "lost_events",
                "purged_messages",
                "purge_errors",
            ),
            0,
        )
        self._last_error = ""

    def stats(self) -> dict[str, object]:
        """Counters for the dashboard: rows written, write errors, rows lost, backlog, last error."""
        return {
            **self._counters,
            "pending_messages": self._messages.qsize() + len(self._pending_messages),
            "pending_events": self._events.qsize() + len(self._pending_events),
            "open": self._store is not None,
            "last_error": self._last_error,
        }

    async def open(self) -> None:
        """Open the database in the writer thread; raises StoreError once (no retry loop on a bad path)."""
        if self._store is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodcast-store")
        try:
            self._store = await self._call(lambda: self._opener(self._path))
        except StoreError as e:
            self._last_error = str(e)
            log.error("%s", e)
            self._shutdown_executor()
            raise

    async def run(self) -> None:
        """Write batches until closed or cancelled; either way drain both queues and flush them first."""
        if self._started:
            if not self._stop.is_set():
                raise RuntimeError("StoreWriter.run() may only be called once")
            # close() got here first (a task scheduled but not yet started at shutdown): nothing left to do.
            await self._done.wait()
            return
        await self._run_main()

    async def close(self) -> None:
        """Stop, write everything still queued, checkpoint and close the database."""
        self._stop.set()
        if self._started:
            await self._done.wait()
        else:
            await self._run_main()

    async def _run_main(self) -> None:
        self._started = True
        try:
            await self._main()
        finally:
            self._done.set()
        if self._cancelled:
            raise asyncio.CancelledError

    # -- the loop -------------------------------------------------------------------------------

    async def _main(self) -> None:
        await self.open()
        try:
            loop = asyncio.get_running_loop()
            next_purge = loop.time()
            while not self._stop.is_set():
                if loop.time() >= next_purge:
                    await self._purge()
                    next_purge = loop.time() + self._purge_every_s
                await self._collect(max(0.0, next_purge - loop.time()))
                await self._flush()
            await self._drain()
        finally:
            await self._close_store()

    async def _collect(self, idle_timeout: float) -> None:
        """Fill the pending batch: wait for a first item, then up to flush_ms for more, at most batch_size."""
        self._take()
        if not self._has_pending():
            await self._wait_first_item(idle_timeout)
            self._take()
        if self._has_pending() and not self._full():
            await self._pause(self._config.flush_ms / 1000.0)
            self._take()

    async def _drain(self) -> None:
        """Flush until both queues are empty, bounded so producers that never stop cannot hold shutdown."""
        budget = self._messages.qsize() + self._events.qsize() + self._messages.maxsize + self._events.maxsize
        while True:
            self._take()
            if not self._has_pending():
                return
            budget -= len(self._pending_messages) + len(self._pending_events)
            await self._flush()
            if budget < 0:
                log.warning("store writer: producers still running at shutdown; stopped draining")
                return

    def _take(self) -> None:
        self._pending_messages += self._messages.drain_nowait(self._batch - len(self._pending_messages))
        self._pending_events += self._events.drain_nowait(self._batch - len(self._pending_events))

    def _has_pending(self) -> bool:
        return bool(self._pending_messages or self._pending_events)

    def _full(self) -> bool:
        return len(self._pending_messages) >= self._batch or len(self._pending_events) >= self._batch

    async def _flush(self) -> None:
        store = self._store
        assert store is not None, "flush before open"
        messages, self._pending_messages = self._pending_messages, []
        events, self._pending_events = self._pending_events, []
        if messages:
            await self._write("messages", len(messages), lambda: store.write_messages(messages))
        if events:
            await self._write("events", len(events), lambda: store.write_events(events))
        # Written or counted lost, each item is done: keeps Queue.join() usable for whoever wants it.
        for _ in messages:
            self._messages.task_done()
        for _ in events:
            self._events.task_done()

    async def _write(self, kind: str, n: int, write: Callable[[], None]) -> None:
        """One batch, retried with backoff; a batch that keeps failing is counted as lost, never silently."""
        attempts = 1 if self._failing else 1 + len(self._retry_delays_s)
        for attempt in range(attempts):
            try:
                await self._call(write)
            except Exception as e:
                self._counters["write_errors"] += 1
                self._last_error = str(e)
                log.warning(
                    "store writer: writing %d %s failed (attempt %d of %d): %s",
                    *(n, kind, attempt + 1, attempts, e),
                    exc_info=not isinstance(e, StoreError),
                )
                if attempt + 1 < attempts:
                    await self._pause(self._retry_delays_s[attempt])
                continue
            self._counters[f"written_{kind}"] += n
            self._counters["batches"] += 1
            self._failing = False
            return
        self._counters[f"lost_{kind}"] += n
        self._failing = True
        log.error("store writer: gave up on %d %s after %d attempts: %s", n, kind, attempts, self._last_error)

    async def _purge(self) -> None:
        store, hours = self._store, self._config.retention_hours
        if store is None or hours <= 0:  # 0 keeps message detail forever
            return
        try:
            purged = await self._call(lambda: store.purge(self._clock(), hours))
        except Exception as e:
            self._counters["purge_errors"] += 1
            self._last_error = str(e)
            log.warning("store writer: purge failed: %s", e, exc_info=not isinstance(e, StoreError))
            return
        self._counters["purged_messages"] += purged
        if purged:
            log.info("store writer: purged %d messages older than %g hours", purged, hours)

    async def _close_store(self) -> None:
        store, self._store = self._store, None
        try:
            if store is not None:
                await self._call(store.close)
        except StoreError as e:
            self._last_error = str(e)
            log.error("%s", e)
        finally:
            self._shutdown_executor()

    def _shutdown_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    # -- waiting: cancellation becomes a request to drain and stop --------------------------------

    def _note_cancel(self) -> None:
        # Swallowed here and re-raised by _run_main() once the queues are flushed: a cancelled writer must not
        # abandon what it holds. A second cancellation while waiting on the thread is not caught.
        self._cancelled = True
        self._stop.set()

    async def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the writer thread."""
        if self._executor is None:
            # run_in_executor(None) would silently use the default pool, i.e. some other thread.
            raise StoreError(self._path, "write", "the store writer is closed")
        fut = asyncio.get_running_loop().run_in_executor(self._executor, fn)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            self._note_cancel()
            # A thread cannot be interrupted: wait for the outcome, so the batch is neither lost nor doubled.
            return await fut

    async def _pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``, ending early when stopping (so shutdown does not wait out a backoff)."""
        if self._stop.is_set():
            return
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._note_cancel()

    async def _wait_first_item(self, wait_s: float) -> None:
        """Wait until either queue holds an item, stop is requested, or ``wait_s`` passes."""
        if self._stop.is_set():
            return
        msg_get = asyncio.ensure_future(self._messages.get())
        event_get = asyncio.ensure_future(self._events.get())
        stopper = asyncio.ensure_future(self._stop.wait())
        tasks: list[asyncio.Future[Any]] = [msg_get, event_get, stopper]
        try:
            await asyncio.wait(tasks, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._note_cancel()
        finally:
            for t in tasks:
                t.cancel()
            # A getter cancelled before it ran leaves its item queued; one that had finished keeps its result.
            await asyncio.wait(tasks)
            if _succeeded(msg_get):
                self._pending_messages.append(msg_get.result())
            if _succeeded(event_get):
                self._pending_events.append(event_get.result())


def _succeeded(fut: asyncio.Future[T]) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None
