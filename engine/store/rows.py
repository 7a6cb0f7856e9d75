"""Pure conversions between domain types and table rows (no I/O, so they are easy to test)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.emotions import INDEX
from engine.store.schema import COUNT_COLUMNS, SCORE_COLUMNS
from engine.types import ClassifiedMessage, MinuteCounts, TriggerEvent

USER_HASH_CHARS: Final = 16
"""64 bits of the HMAC: collisions are negligible at chat scale, and a short id reveals less."""

MESSAGE_COLUMNS: Final = (
    "room",
    "ts",
    "user_hash",
    "platform",
    "msg_id",
    "text",
    "norm_text",
    "emotion",
    "confidence",
    *SCORE_COLUMNS,
    "weight",
    "flood_reason",
    "model_id",
    "gift_value",
    "is_moderator",
)
MINUTE_COLUMNS: Final = ("room", "minute", *COUNT_COLUMNS, "messages", "flooded")
EVENT_COLUMNS: Final = ("room", "ts", "kind", "message", "values_json")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored chat message as the dashboard and report read it; the user only as a keyed hash."""

    id: int
    room: str
    ts: float
    user_hash: str
    platform: str
    msg_id: str
    text: str
    norm_text: str
    emotion: str
    confidence: float
    scores: tuple[float, ...]
    weight: float
    flood_reason: str
    model_id: str
    gift_value: float
    is_moderator: bool


def user_hash(salt: bytes, platform: str, user: str) -> str:
    """The keyed hash standing in for a user name; "" for anonymous messages."""
    if not user:
        return ""
    # The platform is part of the key: "alice" on Twitch and "alice" on Bilibili are different people.
    digest = hmac.new(salt, f"{platform}\x00{user}".encode(), hashlib.sha256).hexdigest()
    return digest[:USER_HASH_CHARS]


def minute_of(ts: float) -> int:
    """Start of the wall-clock minute holding ``ts``, in Unix seconds."""
    return int(ts // 60) * 60


def is_flooded(cm: ClassifiedMessage) -> bool:
    """Whether flood control lowered this message's weight (the aggregator's definition)."""
    return cm.weight < 1.0


def message_row(cm: ClassifiedMessage, salt: bytes) -> tuple[Any, ...]:
    """A messages-table row in MESSAGE_COLUMNS order; raises ValueError on a malformed prediction."""
    m, p = cm.message, cm.prediction
    if p.emotion not in INDEX:
        raise ValueError(f"unknown emotion {p.emotion!r} in message from room {m.room!r}")
    if len(p.scores) != len(SCORE_COLUMNS):
        raise ValueError(f"{len(p.scores)} scores, expected {len(SCORE_COLUMNS)}, in room {m.room!r}")
    return (
        m.room,
        m.ts,
        user_hash(salt, m.platform, m.user),
        m.platform,
        m.msg_id,
        m.text,
        cm.norm_text,
        p.emotion,
        p.confidence,
        *(float(s) for s in p.scores),
        cm.weight,
        cm.flood_reason,
        cm.model_id,
        m.gift_value,
        int(m.is_moderator),
    )


def minute_rows(batch: Iterable[ClassifiedMessage]) -> list[tuple[Any, ...]]:
    """The batch summed per (room, minute), in MINUTE_COLUMNS order, ready to be added to the table."""
    sums: dict[tuple[str, int], list[float]] = {}
    n = len(COUNT_COLUMNS)
    for cm in batch:
        key = (cm.message.room, minute_of(cm.message.ts))
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0.0] * (n + 2)
        acc[INDEX[cm.prediction.emotion]] += cm.weight
        acc[n] += 1
        acc[n + 1] += 1 if is_flooded(cm) else 0
    return [(room, minute, *acc[:n], int(acc[n]), int(acc[n + 1])) for (room, minute), acc in sums.items()]


def event_row(ev: TriggerEvent) -> tuple[Any, ...]:
    """An events-table row in EVENT_COLUMNS order."""
    values = json.dumps({str(k): float(v) for k, v in ev.values.items()}, sort_keys=True)
    return (ev.room, ev.ts, ev.kind, ev.message, values)


def parse_message(row: Sequence[Any]) -> StoredMessage:
    """A StoredMessage from ``SELECT id, <MESSAGE_COLUMNS>``."""
    n = len(SCORE_COLUMNS)
    (id_, room, ts, uhash, platform, msg_id, text, norm, emotion, conf), rest = row[:10], row[10:]
    scores, (weight, reason, model_id, gift, is_mod) = tuple(float(s) for s in rest[:n]), rest[n:]
    return StoredMessage(
        id=int(id_),
        room=room,
        ts=float(ts),
        user_hash=uhash,
        platform=platform,
        msg_id=msg_id,
        text=text,
        norm_text=norm,
        emotion=emotion,
        confidence=float(conf),
        scores=scores,
        weight=float(weight),
        flood_reason=reason,
        model_id=model_id,
        gift_value=float(gift),
        is_moderator=bool(is_mod),
    )


def parse_minute(row: Sequence[Any]) -> MinuteCounts:
    """A MinuteCounts from ``SELECT minute, <COUNT_COLUMNS>, messages``."""
    return MinuteCounts(minute=int(row[0]), counts=tuple(float(c) for c in row[1:-1]), messages=int(row[-1]))


def parse_event(row: Sequence[Any]) -> TriggerEvent:
    """A TriggerEvent from ``SELECT <EVENT_COLUMNS>``."""
    room, ts, kind, message, values_json = row
    values = json.loads(values_json)
    return TriggerEvent(room=room, ts=float(ts), kind=kind, message=message, values=values)
