"""The six emotion labels, in the one order every score vector, table and payload uses."""

from __future__ import annotations

from typing import Final, Literal

Emotion = Literal["happy", "excited", "angry", "sad", "anxious", "neutral"]

EMOTIONS: Final[tuple[Emotion, ...]] = ("happy", "excited", "angry", "sad", "anxious", "neutral")
NEGATIVE: Final[frozenset[str]] = frozenset({"angry", "sad", "anxious"})
INDEX: Final[dict[str, int]] = {e: i for i, e in enumerate(EMOTIONS)}
NEUTRAL_INDEX: Final[int] = INDEX["neutral"]
NEGATIVE_INDEXES: Final[tuple[int, ...]] = tuple(INDEX[e] for e in ("angry", "sad", "anxious"))


def parse_emotion(value: str) -> Emotion:
    """Return ``value`` as an Emotion or raise ValueError naming the allowed labels."""
    v = value.strip().lower()
    for e in EMOTIONS:
        if e == v:
            return e
    raise ValueError(f"unknown emotion {value!r}; expected one of {', '.join(EMOTIONS)}")
