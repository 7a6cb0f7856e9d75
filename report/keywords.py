"""What chat said in a moment, against the session's baseline: jieba words ranked by the weighted
log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words").

Each message counts a word once (a flood of "哈哈哈" is one voice per message, not fifty), scaled by the
message's flood weight. The prior is the baseline's own word distribution scaled to ``alpha0``
pseudo-messages, which shrinks rare words towards the baseline so one odd message cannot top the list.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.keywords import STOPWORDS

_EXTRA_STOP = frozenset(
    """
    这个 那个 一下 就是 还是 真的 可以 没有 不是 什么 怎么 我们 你们 他们 已经 然后 但是 因为 所以 如果
    自己 还有 这么 那么 一样 时候 一点 有点 不要 不会 应该 需要 这样 那样 出来 起来 下来 上来 过来
    """.split()  # noqa: SIM905 - a word list reads best as text
)
_WORD = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Keyword:
    """A word that stands out in a window: its z-score and how many messages used it there."""

    word: str
    z: float
    count: float
    share: float
    """Fraction of the window's messages that used it."""
    baseline_share: float


class Tokenizer:
    """jieba words worth showing: two characters or more, not filler, not punctuation; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tk: Any = None

    def _load(self) -> Any:
        with self._lock:
            if self._tk is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tk = jieba.Tokenizer()
                tk.initialize()
                self._tk = tk
            return self._tk

    def words(self, text: str) -> set[str]:
        """The distinct words of one message."""
        tk = self._load()
        out: set[str] = set()
        for w in tk.lcut(text):
            w = w.strip().lower()
            if len(w) < 2 or w in STOPWORDS or w in _EXTRA_STOP or not _WORD.search(w):
                continue
            if w.isdigit() and (len(set(w)) > 1 or len(w) < 3):  # numbers, but keep "666"-style cheers
                continue
            out.add(w)
        return out


class WordCounts:
    """Per-message word counts of a set of messages (each message counts a word once, times its weight)."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.messages = 0.0

    def add(self, words: Iterable[str], weight: float = 1.0) -> None:
        self.messages += weight
        for w in words:
            self.counts[w] = self.counts.get(w, 0.0) + weight


def log_odds(
    window: WordCounts, baseline: WordCounts, *, alpha0: float = 500.0, top: int = 6, min_count: float = 3.0
) -> list[Keyword]:
    """Words over-represented in ``window`` against ``baseline``, strongest first (z >= 1.96 only).

    delta_w = log((y_w + a_w) / (n + a0 - y_w - a_w)) - log((b_w + a_w) / (m + a0 - b_w - a_w)),
    var ~ 1/(y_w + a_w) + 1/(b_w + a_w), z = delta / sqrt(var), with a_w = a0 * b_w / sum(b).
    """
    n, m = window.messages, baseline.messages
    total_b = sum(baseline.counts.values())
    if n <= 0 or m <= 0 or total_b <= 0:
        return []
    out: list[Keyword] = []
    for w, y in window.counts.items():
        if y < min_count:
            continue
        b = baseline.counts.get(w, 0.0)
        # A word the baseline never saw still gets a small prior mass, as if seen half a time.
        a = alpha0 * max(b, 0.5) / total_b
        num_w = n + alpha0 - y - a
        num_b = m + alpha0 - b - a
        if num_w <= 0 or num_b <= 0:
            continue
        delta = math.log((y + a) / num_w) - math.log((b + a) / num_b)
        z = delta / math.sqrt(1.0 / (y + a) + 1.0 / (b + a))
        if z >= 1.959963984540054:
            out.append(Keyword(w, z, y, y / n, b / m))
    out.sort(key=lambda k: (-k.z, k.word))
    return out[:top]
