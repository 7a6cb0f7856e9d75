"""YouTube live chat through pytchat (optional extra: ``pip install 'moodcast[youtube]'``).

pytchat is synchronous (httpx), so creating the reader and each poll run in a worker thread; the
messages of a poll are emitted on the event loop. YouTube has no anonymous push protocol, and the
official Data API needs a key and a quota, which is why a scraping client is used; it breaks when
YouTube changes its pages, and the health state then says so. Tested: the mapping of recorded-shape
items and the missing-extra message; not tested here: a live YouTube connection (no network).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from engine.sources.base import SourceError
from engine.sources.connector import Backoff, Connector, RateLimited
from engine.types import ChatMessage

log = logging.getLogger(__name__)

PLATFORM = "youtube"
POLL_FLOOR_SECONDS = 1.0

TO_CNY = {
    "¥": 1.0, "CN¥": 1.0, "CNY": 1.0, "$": 7.2, "US$": 7.2, "USD": 7.2, "€": 7.8, "EUR": 7.8,
    "£": 9.1, "GBP": 9.1, "￥": 0.048, "JP¥": 0.048, "JPY": 0.048, "₩": 0.0053, "KRW": 0.0053,
    "NT$": 0.22, "TWD": 0.22, "HK$": 0.92, "HKD": 0.92, "CA$": 5.3, "A$": 4.8,
}  # fmt: skip
"""Rough rates for weighting super chats; unknown currencies count as USD."""


def require_pytchat() -> Any:
    """The pytchat module, or a SourceError telling how to install the extra."""
    try:
        return importlib.import_module("pytchat")
    except ImportError:
        raise SourceError(
            "YouTube sources need pytchat: pip install 'moodcast[youtube]' (or .venv/bin/pip install pytchat)"
        ) from None


def message_from_item(item: Any, *, room: str) -> ChatMessage | None:
    """A ChatMessage from a pytchat chat item (``type``, ``message``, ``author``, ``amountValue``...)."""
    kind = getattr(item, "type", "textMessage")
    text = getattr(item, "message", "") or ""
    if not text and kind not in ("superChat", "superSticker"):
        return None
    author = getattr(item, "author", None)
    name = getattr(author, "name", "") or ""
    is_staff = bool(getattr(author, "isChatModerator", False) or getattr(author, "isChatOwner", False))
    gift = 0.0
    if kind in ("superChat", "superSticker"):
        amount = float(getattr(item, "amountValue", 0.0) or 0.0)
        gift = amount * TO_CNY.get(str(getattr(item, "currency", "$")).strip(), 7.2)
        text = text or "Super Sticker"
    ts = getattr(item, "timestamp", 0)
    return ChatMessage.create(
        room=room,
        user=name,
        text=text,
        ts=ts / 1000.0 if isinstance(ts, (int, float)) and ts > 0 else None,
        platform=PLATFORM,
        is_moderator=is_staff,
        gift_value=gift,
        msg_id=str(getattr(item, "id", "") or ""),
    )


class YouTubeSource(Connector):
    """Reads one YouTube live video's chat into one moodcast room."""

    platform = PLATFORM

    def __init__(
        self, channel: str, *, room: str = "youtube", backoff: Backoff | None = None, name: str = ""
    ) -> None:
        video = channel.strip()
        if not video:
            raise SourceError("youtube channel must be the live video's id (the v= part of its URL)")
        self._pytchat = require_pytchat()  # fail at start-up, not on the first connect
        super().__init__(name=name or f"youtube:{video}", room=room, backoff=backoff)
        self.video_id = video

    def _describe(self) -> str:
        return f"youtube video {self.video_id}"

    async def _session(self) -> None:
        # interruptable=False: else pytchat installs a signal handler, which works only on the main thread.
        chat = await asyncio.to_thread(self._pytchat.create, video_id=self.video_id, interruptable=False)
        try:
            self._connected(f"reading chat of video {self.video_id}")
            while chat.is_alive():
                data = await asyncio.to_thread(chat.get)
                for item in getattr(data, "items", []):
                    try:
                        msg = message_from_item(item, room=self.room)
                    except (TypeError, ValueError) as e:
                        self._bad_frame("chat item", e)
                        continue
                    if msg is not None:
                        self._deliver(msg)
                self._good()
                await asyncio.sleep(max(POLL_FLOOR_SECONDS, float(getattr(data, "interval", 0) or 0)))
            try:
                chat.raise_for_status()
            except Exception as e:
                name = type(e).__name__
                if "Retry" in name or "429" in str(e):
                    raise RateLimited(f"pytchat: {name}: {e}", retry_after=120.0) from None
                raise ConnectionError(f"pytchat stopped: {name}: {e}") from None
        finally:
            await asyncio.to_thread(chat.terminate)
