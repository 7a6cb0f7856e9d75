"""Async helpers shared by tests: bounded polling and a running pipeline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from engine.pipeline import Pipeline


async def until(cond: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Wait for ``cond`` (a guard against hangs, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(pipe: Pipeline) -> AsyncIterator[Pipeline]:
    """Run the pipeline's stages for the duration of the block."""
    task = asyncio.create_task(pipe.run())
    try:
        yield pipe
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
