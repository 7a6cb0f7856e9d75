"""The reconnect loop every live platform source shares, and the errors that steer it.

A connector's ``_session`` connects once and reads until the connection ends; ``run`` wraps it in a
loop that waits ``backoff(retry, total)`` seconds (with jitter) between attempts and resets ``retry``
after the first good message of a session, so a long healthy connection that drops reconnects fast,
while a platform that keeps refusing is asked less and less often (ARCHITECTURE.md, item 4).

What went wrong decides the health state shown on the dashboard and by ``moodcast doctor``:
``AuthFailed`` -> auth_failed, ``RateLimited`` -> rate_limited, a ``SourceError`` (a setting the user
must fix) stops the source with ``error``, anything else -> reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import aiohttp

from engine.sources.base import Emit, SourceError, SourceState, StateTracker
from engine.types import ChatMessage

log = logging.getLogger(__name__)

Backoff = Callable[[int, int], float]
"""``(retry, total) -> seconds`` before the next attempt; ``retry`` restarts at 0 after a good session."""

AUTH_RETRY_FLOOR = 30.0
"""An auth failure is not retried sooner than this: hammering a platform with bad credentials gets banned."""

LOGGED_BAD_FRAMES = 20
"""Malformed frames logged one by one per source; after that only every 1000th, the rest are counted."""


class AuthFailed(ConnectionError):
    """The platform refused our credentials (token, 身份码, cookie); retried slowly, shown as auth_failed."""


class RateLimited(ConnectionError):
    """The platform throttled us (HTTP 412/429, Bilibili -352); ``retry_after`` seconds is a hint."""

    def __init__(self, message: str, retry_after: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProtocolError(ConnectionError):
    """The server spoke something we cannot follow at the connection level; reconnect."""


def jittered_backoff(
    base: float = 1.0, cap: float = 60.0, rng: Callable[[], float] = random.random
) -> Backoff:
    """Exponential backoff, ``base * 2**retry`` capped at ``cap``, scaled by a random 0.5..1.0 factor.

    The jitter keeps many moodcast processes that lost the same platform at once from reconnecting
    in lockstep.
    """

    def policy(retry: int, total: int) -> float:
        del total  # part of the policy signature; this policy only needs the current streak
        return min(cap, base * 2.0 ** min(retry, 20)) * (0.5 + 0.5 * rng())

    return policy


class Connector:
    """Base class of the live platform sources: state, emit bookkeeping and the reconnect loop."""

    platform = "unknown"

    def __init__(self, *, name: str, room: str, backoff: Backoff | None = None) -> None:
        self.name = name
        self.room = room
        self.backoff = backoff or jittered_backoff()
        self._state = StateTracker(self.platform)
        self._emit: Emit | None = None
        self._retry = 0
        self._bad_frames = 0

    @property
    def state(self) -> SourceState:
        """Status and counters for the dashboard and doctor."""
        return self._state.snapshot()

    async def run(self, emit: Emit) -> None:
        """Connect, read, and reconnect with backoff until cancelled or a setting must be fixed."""
        st = self._state
        self._emit = emit
        total = 0
        while True:
            st.set("connecting", f"connecting ({self._describe()})")
            floor = 0.0
            try:
                await self._session()
                reason = "connection closed by the server"
                st.set("reconnecting", reason)
            except asyncio.CancelledError:
                st.set("finished", "stopped")
                raise
            except SourceError as e:
                st.set("error", str(e))
                log.error("%s: %s", self.name, e)
                return
            except AuthFailed as e:
                reason = f"auth failed: {e}"
                floor = AUTH_RETRY_FLOOR
                st.set("auth_failed", reason)
            except RateLimited as e:
                reason = f"rate limited: {e}"
                floor = e.retry_after
                st.set("rate_limited", reason)
            except (TimeoutError, OSError, ValueError, aiohttp.ClientError) as e:
                # Connection refused/reset, TLS failures, HTTP and WebSocket handshake errors, bad JSON.
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                st.set("reconnecting", reason)
            except Exception as e:  # a bug in a parser must not end the source for good
                log.exception("%s: unexpected error", self.name)
                reason = f"unexpected {type(e).__name__}: {e}"
                st.set("reconnecting", reason)
            delay = max(floor, self.backoff(self._retry, total))
            self._retry += 1
            total += 1
            st.reconnects += 1
            st.detail = f"{reason}; retrying in {delay:.1f} s"
            log.warning("%s: %s", self.name, st.detail)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """Connect once and read until the connection ends (return) or fails (raise)."""
        raise NotImplementedError

    def _describe(self) -> str:
        """Where this connector connects to, for the health detail (never a secret)."""
        return self.platform

    # -- helpers for subclasses -----------------------------------------------------------------------
    def _connected(self, detail: str) -> None:
        self._state.set("connected", detail)

    def _good(self) -> None:
        """A well-formed message arrived: the connection works, so the next drop reconnects quickly."""
        self._retry = 0

    def _deliver(self, msg: ChatMessage) -> None:
        """Hand one message to the pipeline (synchronous, only enqueues) and count it."""
        st = self._state
        st.messages += 1
        st.last_message_ts = time.time()
        self._good()
        if self._emit is not None:
            self._emit(msg)

    def _bump(self, signal: str, by: float = 1.0) -> None:
        self._state.signals[signal] = self._state.signals.get(signal, 0.0) + by

    def _gauge(self, signal: str, value: float) -> None:
        self._state.signals[signal] = value

    def _bad_frame(self, what: str, err: BaseException | str) -> None:
        """Count and log (rate-limited) one frame or message that could not be parsed; reading goes on."""
        self._state.errors += 1
        self._bad_frames += 1
        n = self._bad_frames
        if n <= LOGGED_BAD_FRAMES or n % 1000 == 0:
            log.warning("%s: skipped malformed %s (%s); %d skipped so far", self.name, what, err, n)
