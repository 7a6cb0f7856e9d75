"""The seam between the pipeline and any emotion model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.types import Prediction


class ModelError(RuntimeError):
    """A model that cannot be found, loaded or run; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the registry knows about one model, shown by ``GET /models`` and the dashboard."""

    model_id: str
    tier: str
    path: str
    size_bytes: int
    description: str
    metrics: dict[str, float]


class EmotionModel(Protocol):
    """A loaded model. ``predict`` blocks (run it off the event loop) and is safe to call from threads."""

    @property
    def info(self) -> ModelInfo: ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Read already-normalised texts; one Prediction per text, scores in EMOTIONS order."""
        ...
