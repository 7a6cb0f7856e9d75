"""A bounded prediction cache: chat repeats itself (666, 哈哈哈, floods); most texts were seen seconds ago."""

from __future__ import annotations

from collections import OrderedDict

from engine.types import Prediction


class PredictionCache:
    """LRU of (model id, normalised text) -> Prediction. Used from the event loop only."""

    def __init__(self, maxsize: int) -> None:
        self._max = maxsize
        self._d: OrderedDict[tuple[str, str], Prediction] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, model_id: str, text: str) -> Prediction | None:
        key = (model_id, text)
        p = self._d.get(key)
        if p is None:
            self.misses += 1
            return None
        self.hits += 1
        self._d.move_to_end(key)
        return p

    def put(self, model_id: str, text: str, p: Prediction) -> None:
        if self._max <= 0:
            return
        self._d[(model_id, text)] = p
        if len(self._d) > self._max:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()
