"""A deterministic keyword model for pipeline tests: a fake for our own seam (EmotionModel)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from engine.classify.base import ModelError, ModelInfo
from engine.emotions import EMOTIONS
from engine.types import Prediction

KEYWORDS = {"哈": "happy", "666": "excited", "退钱": "angry", "呜": "sad", "急": "anxious"}


def keyword_emotion(text: str) -> str:
    """The emotion the fake model assigns: the first keyword found, else neutral."""
    for k, e in KEYWORDS.items():
        if k in text:
            return e
    return "neutral"


class KeywordModel:
    """Implements EmotionModel; counts calls and can be told to fail."""

    def __init__(self, model_id: str = "kw", fail: bool = False) -> None:
        self._info = ModelInfo(model_id, "test", "", 0, "keyword fake", {})
        self.fail = fail
        self.calls = 0
        self.texts_seen = 0
        self._lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        with self._lock:
            self.calls += 1
            self.texts_seen += len(texts)
        if self.fail:
            raise RuntimeError("model exploded")
        out = []
        for t in texts:
            e = keyword_emotion(t)
            out.append(Prediction(e, 0.9, tuple(0.9 if x == e else 0.02 for x in EMOTIONS)))
        return out


class FakeRegistry:
    """Maps ids to KeywordModels, like ModelRegistry.get."""

    def __init__(self, *models: KeywordModel) -> None:
        self.models = {m.info.model_id: m for m in models} or {"kw": KeywordModel()}

    def get(self, model_id: str) -> KeywordModel:
        try:
            return self.models[model_id]
        except KeyError:
            raise ModelError(f"unknown model {model_id!r}") from None
