"""Flood control: keep one spammer or a copy-paste wave from moving the room's mood.

Every message is kept and stored; flood control only sets the *weight* it carries in the mood:
- a user's messages beyond ``per_user_cap`` within the window weigh 0 (``user_burst``), and a user
  repeating their own text within the window weighs 0 from the second copy (``user_repeat``);
- the same text from many users keeps full weight up to ``same_text_cap`` copies in the window, then
  each further copy k weighs cap/k (``copy_flood``). A room shouting 666 still reads as excited,
  but a pasted ad wave grows only logarithmically.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TypeVar

from engine.config import FloodConfig

K = TypeVar("K")


@dataclass(slots=True)
class _RoomWindow:
    events: deque[tuple[float, str, str]] = field(default_factory=deque)  # (ts, user, text)
    per_user: Counter[str] = field(default_factory=Counter)
    per_text: Counter[str] = field(default_factory=Counter)
    per_user_text: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(slots=True)
class FloodStats:
    """Counts of messages whose weight flood control lowered, by reason."""

    user_burst: int = 0
    user_repeat: int = 0
    copy_flood: int = 0

    def total(self) -> int:
        return self.user_burst + self.user_repeat + self.copy_flood


class FloodControl:
    """Per-room sliding-window counters deciding each message's weight in the mood."""

    def __init__(self, config: FloodConfig) -> None:
        self._cfg = config
        self._rooms: dict[str, _RoomWindow] = {}
        self.stats: dict[str, FloodStats] = {}

    def weigh(self, room: str, user: str, text: str, ts: float) -> tuple[float, str]:
        """Record a message and return (weight in 0..1, reason or "")."""
        w = self._rooms.get(room)
        if w is None:
            w = self._rooms[room] = _RoomWindow()
            self.stats[room] = FloodStats()
        self._expire(w, ts - self._cfg.window_seconds)
        stats = self.stats[room]
        # Anonymous messages (no user id) cannot be attributed; only the copy rule applies to them.
        user_key = user or ""
        w.events.append((ts, user_key, text))
        w.per_text[text] += 1
        if user_key:
            w.per_user[user_key] += 1
            w.per_user_text[(user_key, text)] += 1
            if w.per_user_text[(user_key, text)] > 1:
                stats.user_repeat += 1
                return 0.0, "user_repeat"
            if w.per_user[user_key] > self._cfg.per_user_cap:
                stats.user_burst += 1
                return 0.0, "user_burst"
        copies = w.per_text[text]
        cap = self._cfg.same_text_cap
        if cap > 0 and copies > cap:
            stats.copy_flood += 1
            return cap / copies, "copy_flood"
        return 1.0, ""

    def _expire(self, w: _RoomWindow, horizon: float) -> None:
        ev = w.events
        while ev and ev[0][0] < horizon:
            _, user, text = ev.popleft()
            _dec(w.per_text, text)
            if user:
                _dec(w.per_user, user)
                _dec(w.per_user_text, (user, text))


def _dec(counter: Counter[K], key: K) -> None:
    n = counter[key] - 1
    if n > 0:
        counter[key] = n
    else:
        del counter[key]
