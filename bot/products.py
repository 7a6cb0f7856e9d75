"""Product mentions in chat, their emotion-weighted trend, and the pick for the room's mood."""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

from bot.content import Catalogue, Product
from engine.normalise import normalise

_CN_DIGITS = "零一二三四五六七八九十"
_NUM_LINK = re.compile(r"^(\d{1,2})号链接$")

EMOTION_WEIGHT = {
    "excited": 1.5,
    "happy": 1.2,
    "neutral": 1.0,
    "anxious": 0.8,  # asking about stock or size is interest, with a worry attached
    "sad": 0.5,
    "angry": 0.2,  # named in a complaint: the product is hot, but not for selling right now
}
"""How much one mention counts, by the emotion of the message it is in."""


def _canon(text: str) -> str:
    # The engine's normaliser (width, case, clutter) plus: spaces and separators never matter to a name.
    return re.sub(r"[\s\-_·•.]+", "", normalise(text, max_run=0))


def _cn_number(n: int) -> str:
    if n <= 10:
        return _CN_DIGITS[n]
    tens, ones = divmod(n, 10)
    return (_CN_DIGITS[tens] if tens > 1 else "") + "十" + (_CN_DIGITS[ones] if ones else "")


def alias_variants(alias: str) -> set[str]:
    """Forms chat uses for one alias: canonical, and for "3号链接" also "三号链接", "链接3", "3号宝贝"."""
    a = _canon(alias)
    out = {a} if a else set()
    m = _NUM_LINK.match(a)
    if m:
        n = int(m.group(1))
        for num in (str(n), _cn_number(n)):
            out |= {f"{num}号链接", f"链接{num}", f"{num}号宝贝", f"{num}号商品"}
    return out


class ProductMatcher:
    """Finds which products a message mentions (each product once per message)."""

    def __init__(self, catalogue: Catalogue) -> None:
        pairs: list[tuple[str, str]] = []
        for p in catalogue.products:
            for alias in (p.name, *p.aliases):
                pairs.extend((v, p.id) for v in alias_variants(alias))
        # Longest first, so "羽绒服" claims its text before a shorter alias like "羽绒" would.
        self._pairs = sorted(set(pairs), key=lambda x: -len(x[0]))

    def mentions(self, text: str) -> list[str]:
        """Product ids mentioned in ``text``, in catalogue-alias order, without duplicates."""
        t = _canon(text)
        found: list[str] = []
        for alias, pid in self._pairs:
            if alias in t and pid not in found:
                found.append(pid)
                t = t.replace(alias, "\x00")
        return found


@dataclass(frozen=True, slots=True)
class TrendItem:
    """One product's trend in one room."""

    product: Product
    score: float
    mentions: int
    emotion: str  # the emotion most of its recent mentions carried


class TrendTracker:
    """Per-room mention history with exponential decay; scores are sums of decayed emotion weights."""

    def __init__(self, catalogue: Catalogue, half_life: float = 120.0, horizon: float = 600.0) -> None:
        self.catalogue = catalogue
        self.matcher = ProductMatcher(catalogue)
        self.half_life = max(1.0, half_life)
        self.horizon = horizon
        self._mentions: dict[str, deque[tuple[float, str, str, float]]] = {}

    def observe(self, room: str, text: str, emotion: str, weight: float, ts: float) -> list[str]:
        """Record the products ``text`` mentions; returns their ids."""
        ids = self.matcher.mentions(text)
        if ids and weight > 0:
            q = self._mentions.setdefault(room, deque(maxlen=20000))
            for pid in ids:
                q.append((ts, pid, emotion, weight * EMOTION_WEIGHT.get(emotion, 1.0)))
        return ids

    def trending(self, room: str, now: float, limit: int = 10) -> list[TrendItem]:
        """Products by trend score, hottest first (only products mentioned within the horizon)."""
        q = self._mentions.get(room)
        if not q:
            return []
        while q and now - q[0][0] > self.horizon:
            q.popleft()
        scores: dict[str, float] = {}
        counts: dict[str, int] = {}
        emotions: dict[str, dict[str, float]] = {}
        for ts, pid, emotion, w in q:
            decayed = w * math.pow(0.5, max(0.0, now - ts) / self.half_life)
            scores[pid] = scores.get(pid, 0.0) + decayed
            counts[pid] = counts.get(pid, 0) + 1
            em = emotions.setdefault(pid, {})
            em[emotion] = em.get(emotion, 0.0) + decayed
        out: list[TrendItem] = []
        for pid, score in scores.items():
            product = self.catalogue.get(pid)
            if product is not None:
                top = max(emotions[pid].items(), key=lambda kv: kv[1])[0]
                out.append(TrendItem(product, score, counts[pid], top))
        out.sort(key=lambda t: -t.score)
        return out[:limit]

    def pick(self, room: str, mood: str, now: float) -> Product | None:
        """The product to talk about in this mood: the hottest in stock with a favoured tag.

        Angry: none. When no favoured product is trending, the first favoured one in the catalogue; when
        the catalogue has none with the tags, the hottest in-stock product (except for angry).
        """
        if mood == "angry":
            return None
        tags = set(self.catalogue.mood_tags.get(mood, ()))
        hot = [t.product for t in self.trending(room, now, limit=100) if t.product.stock > 0]
        favoured = [p for p in hot if tags & set(p.tags)]
        if favoured:
            return favoured[0]
        tagged = [p for p in self.catalogue.products if p.stock > 0 and tags & set(p.tags)]
        if tagged:
            return tagged[0]
        return hot[0] if hot else None
