"""Domain types shared by every stage. Frozen and slotted; parsed once at the edge."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.emotions import EMOTIONS

MAX_TEXT_CHARS = 2000
"""Longer chat text is cut here: no platform allows more, and a 10 MB "message" must not reach a model."""
MAX_NAME_CHARS = 64


class MessageError(ValueError):
    """A chat message that cannot be accepted; the text names the offending field."""


def _clean_field(value: str, limit: int) -> str:
    # Control characters (except tab) would corrupt logs, IRC lines and terminal output downstream.
    cleaned = "".join(ch if (ch >= " " or ch == "\t") and ch != "\x7f" else " " for ch in value)
    return cleaned[:limit]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message from any source. ``ts`` is Unix time in seconds."""

    room: str
    user: str
    text: str
    ts: float
    platform: str = "unknown"
    is_moderator: bool = False
    gift_value: float = 0.0
    msg_id: str = ""
    seq: int = 0
    """Row id in the ingest journal (engine/store/journal.py) once acknowledged; 0 = not journaled."""

    @classmethod
    def create(
        cls,
        *,
        room: str,
        user: str,
        text: str,
        ts: float | None = None,
        platform: str = "unknown",
        is_moderator: bool = False,
        gift_value: float = 0.0,
        msg_id: str = "",
    ) -> ChatMessage:
        """Build a message from trusted-typed values, cleaning control characters and bounding sizes."""
        return cls(
            room=_clean_field(room, MAX_NAME_CHARS).strip() or "default",
            user=_clean_field(user, MAX_NAME_CHARS),
            text=_clean_field(text, MAX_TEXT_CHARS),
            ts=time.time() if ts is None else ts,
            platform=_clean_field(platform, 32),
            is_moderator=is_moderator,
            gift_value=gift_value,
            msg_id=_clean_field(msg_id, 128),
        )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, default_room: str = "default", platform: str = "unknown"
    ) -> ChatMessage:
        """Parse an untrusted JSON-like mapping; raises MessageError naming the bad field."""
        if not isinstance(data, Mapping):
            raise MessageError("message must be a JSON object")
        text = data.get("text")
        if not isinstance(text, str):
            raise MessageError("field 'text' must be a string")
        # Cleaned first: text of only control characters would otherwise become a blank message.
        if not _clean_field(text, MAX_TEXT_CHARS).strip():
            raise MessageError("field 'text' must not be empty")
        room = data.get("room", default_room)
        if not isinstance(room, str) or not room.strip():
            raise MessageError("field 'room' must be a non-empty string")
        user = data.get("user", "")
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str):
            raise MessageError("field 'user' must be a string")
        ts_raw = data.get("ts")
        if ts_raw is None:
            ts = time.time()
        elif isinstance(ts_raw, (int, float)) and not isinstance(ts_raw, bool) and math.isfinite(ts_raw):
            # Millisecond timestamps are common in platform payloads; accept them.
            ts = float(ts_raw) / 1000.0 if ts_raw > 1e11 else float(ts_raw)
        else:
            raise MessageError("field 'ts' must be a finite number (Unix seconds or milliseconds)")
        is_mod = data.get("is_moderator", False)
        if not isinstance(is_mod, bool):
            raise MessageError("field 'is_moderator' must be true or false")
        gift = data.get("gift_value", 0.0)
        if (
            isinstance(gift, bool)
            or not isinstance(gift, (int, float))
            or not math.isfinite(gift)
            or gift < 0
        ):
            raise MessageError("field 'gift_value' must be a non-negative number")
        plat = data.get("platform", platform)
        if not isinstance(plat, str):
            raise MessageError("field 'platform' must be a string")
        msg_id = data.get("id", "")
        if not isinstance(msg_id, (str, int)) or isinstance(msg_id, bool):
            raise MessageError("field 'id' must be a string")
        return cls.create(
            room=room,
            user=user,
            text=text,
            ts=ts,
            platform=plat,
            is_moderator=is_mod,
            gift_value=float(gift),
            msg_id=str(msg_id),
        )


@dataclass(frozen=True, slots=True)
class Prediction:
    """A classifier's reading of one text: the label, its calibrated probability, all six scores."""

    emotion: str
    confidence: float
    scores: tuple[float, ...]

    def as_dict(self) -> dict[str, float]:
        """Scores keyed by emotion name."""
        return dict(zip(EMOTIONS, self.scores, strict=True))


@dataclass(frozen=True, slots=True)
class ClassifiedMessage:
    """A chat message with its normalised text, prediction and flood weight (0 = flooded, not counted)."""

    message: ChatMessage
    norm_text: str
    prediction: Prediction
    weight: float
    model_id: str
    flood_reason: str = ""

    @property
    def emotion(self) -> str:
        return self.prediction.emotion

    @property
    def confidence(self) -> float:
        return self.prediction.confidence


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Weighted emotion counts over the last ``seconds`` seconds of one room."""

    seconds: int
    counts: tuple[float, ...]
    messages: int
    rate: float

    @property
    def total(self) -> float:
        return sum(self.counts)

    @property
    def shares(self) -> tuple[float, ...]:
        t = self.total
        return tuple(c / t for c in self.counts) if t > 0 else tuple(0.0 for _ in self.counts)

    @property
    def negative_share(self) -> float:
        from engine.emotions import NEGATIVE_INDEXES

        t = self.total
        return sum(self.counts[i] for i in NEGATIVE_INDEXES) / t if t > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RecentMessage:
    """One cell of the heatmap grid."""

    ts: float
    emotion: str
    confidence: float
    text: str
    user: str
    weight: float


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """Weighted per-emotion counts for one wall-clock minute (``minute`` = Unix seconds // 60 * 60)."""

    minute: int
    counts: tuple[float, ...]
    messages: int


@dataclass(frozen=True, slots=True)
class MoodSnapshot:
    """The room's mood at one instant: what every overlay, rule and bot reads."""

    room: str
    ts: float
    windows: tuple[WindowStats, ...]
    minutes: tuple[MinuteCounts, ...]
    recent: tuple[RecentMessage, ...]
    spike_score: float
    baseline_negative: float
    total_messages: int
    flooded_messages: int
    dominant: str
    trend: float  # change of the short window's negative share against the long one, -1..1

    def window(self, seconds: int) -> WindowStats:
        """The window of the given length; the closest one if that length is not configured."""
        return min(self.windows, key=lambda w: abs(w.seconds - seconds))


@dataclass(frozen=True, slots=True)
class MoodPoint:
    """The room's "now" (shortest) window as its last snapshot of one whole second carried it."""

    ts: int  # the second, Unix seconds
    window: WindowStats


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """Something a rule decided: an alert, an action taken, a room calming down."""

    room: str
    ts: float
    kind: str
    message: str
    values: Mapping[str, float] = field(default_factory=dict)
