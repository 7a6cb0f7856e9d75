"""Token-bucket rate limits per client key (an address or a token), with a bounded number of keys."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """``rate`` units per second per key, up to ``burst`` at once; ``rate <= 0`` means no limit.

    Keys are kept in LRU order and capped at ``max_keys``, so a flood of spoofed or distinct clients
    cannot grow memory without bound (an evicted key simply starts again with a full bucket).
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.burst = max(float(burst), 1.0)
        self._max_keys = max(1, max_keys)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.limited = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, amount: float = 1.0) -> float:
        """Spend ``amount`` from ``key``'s bucket: 0.0 when allowed, else seconds to wait before a retry."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        level, last = self._buckets.pop(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate)
        # A request bigger than the whole bucket could never pass; let it through a full bucket alone.
        need = min(amount, self.burst)
        if level >= need:
            self._buckets[key] = (level - need, now)
            self._trim()
            return 0.0
        self._buckets[key] = (level, now)
        self._trim()
        self.limited += 1
        return (need - level) / self.rate

    def _trim(self) -> None:
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
