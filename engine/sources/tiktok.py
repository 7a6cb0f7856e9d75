"""TikTok LIVE chat through TikTokLive (optional extra: ``pip install 'moodcast[tiktok]'``).

TikTokLive is asyncio-native: its event callbacks only build a ChatMessage and enqueue it. It needs
TikTok's signature server (Euler Stream); heavy use may need that service's API key, which TikTokLive
reads from its own environment variable (see its documentation). Tested: the mapping of recorded-shape
events and the missing-extra message; not tested here: a live TikTok connection (no network).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from engine.sources.base import SourceError
from engine.sources.connector import AuthFailed, Backoff, Connector, RateLimited
from engine.types import ChatMessage

log = logging.getLogger(__name__)

PLATFORM = "tiktok"
USD_CNY = 7.2


def require_tiktoklive() -> Any:
    """The TikTokLive package, or a SourceError telling how to install the extra."""
    try:
        return importlib.import_module("TikTokLive")
    except ImportError:
        raise SourceError(
            "TikTok sources need TikTokLive: pip install 'moodcast[tiktok]' (or pip install TikTokLive)"
        ) from None


def _user(event: Any) -> tuple[str, bool]:
    user = getattr(event, "user", None)
    name = (
        getattr(user, "nickname", None) or getattr(user, "nick_name", None) or getattr(user, "unique_id", "")
    )
    identity = getattr(event, "user_identity", None)
    is_mod = bool(
        getattr(identity, "is_moderator_of_anchor", False) or getattr(user, "is_moderator", False) is True
    )
    return str(name or ""), is_mod


def message_from_comment(event: Any, *, room: str) -> ChatMessage | None:
    """A ChatMessage from a TikTokLive ``CommentEvent`` (``content``/``comment``, ``user``)."""
    text = getattr(event, "content", None) or getattr(event, "comment", None) or ""
    if not text:
        return None
    name, is_mod = _user(event)
    return ChatMessage.create(room=room, user=name, text=str(text), platform=PLATFORM, is_moderator=is_mod)


def message_from_gift(event: Any, *, room: str) -> ChatMessage | None:
    """A ChatMessage for a finished TikTokLive ``GiftEvent`` (``value`` in USD is None mid-streak)."""
    value = getattr(event, "value", None)
    if value is None or value <= 0:
        return None
    name, _ = _user(event)
    gift = getattr(getattr(event, "gift", None), "name", "") or "gift"
    count = getattr(event, "repeat_count", 1) or 1
    return ChatMessage.create(
        room=room,
        user=name,
        text=f"送出 {gift} x{count}",
        platform=PLATFORM,
        gift_value=float(value) * USD_CNY,
    )


class TikTokSource(Connector):
    """Reads one TikTok LIVE's chat into one moodcast room."""

    platform = PLATFORM

    def __init__(
        self, channel: str, *, room: str = "tiktok", backoff: Backoff | None = None, name: str = ""
    ) -> None:
        user = channel.strip()
        if not user:
            raise SourceError("tiktok channel must be the streamer's @unique_id")
        self._lib = require_tiktoklive()
        super().__init__(name=name or f"tiktok:{user}", room=room, backoff=backoff)
        self.unique_id = user if user.startswith("@") else f"@{user}"

    def _describe(self) -> str:
        return f"tiktok {self.unique_id}"

    async def _session(self) -> None:
        events = importlib.import_module("TikTokLive.events")
        errors = importlib.import_module("TikTokLive.client.errors")
        client = self._lib.TikTokLiveClient(unique_id=self.unique_id)

        async def on_connect(_event: Any) -> None:
            self._good()
            self._connected(f"connected to {self.unique_id}")

        async def on_comment(event: Any) -> None:
            self._emit_safely(message_from_comment, event)

        async def on_gift(event: Any) -> None:
            self._bump("gifts")
            self._emit_safely(message_from_gift, event)

        client.add_listener(events.ConnectEvent, on_connect)
        client.add_listener(events.CommentEvent, on_comment)
        client.add_listener(events.GiftEvent, on_gift)
        try:
            task = await client.start()
            await task
        except errors.UserOfflineError:
            raise ConnectionError(f"{self.unique_id} is not live") from None
        except getattr(errors, "SignatureRateLimitError", ()) as e:
            raise RateLimited(f"TikTok signature server: {e}", retry_after=120.0) from None
        except getattr(errors, "AuthenticatedWebSocketConnectionError", ()) as e:
            raise AuthFailed(str(e)) from None
        except errors.TikTokLiveError as e:
            raise ConnectionError(f"TikTokLive: {type(e).__name__}: {e}") from None
        finally:
            try:
                await client.disconnect()
            except Exception:  # a failed disconnect must not hide the reason we are leaving
                log.debug("%s: disconnect failed", self.name, exc_info=True)

    def _emit_safely(self, build: Any, event: Any) -> None:
        try:
            msg = build(event, room=self.room)
        except (TypeError, ValueError, AttributeError) as e:
            self._bad_frame("event", e)
            return
        if msg is not None:
            self._deliver(msg)
