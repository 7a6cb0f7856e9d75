"""Text normalisation for danmu, used identically when training and when serving.

Chat arrives full-width, padded with platform clutter (repost chains, URLs, emote codes) and stretched
by floods of one character; the model must see one canonical form of each message.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Weibo/Bilibili clutter that carries no emotion of the writer.
_REPOST_CHAIN = re.compile(r"//\s*@[^:：\s]{1,30}\s*[:：]")
_REPLY_PREFIX = re.compile(r"^\s*回复\s*@[^:：\s]{1,30}\s*[:：]")
_MENTION = re.compile(r"@[^\s@:：,，。!！?？]{1,30}")
_URL = re.compile(r"(?:https?://|www\.)[^\s\u4e00-\u9fff]+", re.IGNORECASE)
_HASHTAG = re.compile(r"#[^#\n]{1,40}#")
# [emot:dy115], [emoji:xxx] and similar machine codes are opaque; named emotes like [哭] or [doge] are kept.
_EMOTE_CODE = re.compile(r"\[(?:emot|emoji|em|img|face|sticker)[:_][^\]]{0,40}\]", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_UNIT_REPEAT = re.compile(r"(.{2,4}?)\1{3,}")  # 冲鸭冲鸭冲鸭冲鸭 -> three copies

_INVISIBLE_CATEGORIES = {"Cf", "Cc", "Co", "Cs"}


def _drop_invisible(text: str) -> str:
    # Zero-width and bidi characters change nothing a reader sees, but they would split n-grams.
    return "".join(
        ch if ch in " \t\n" or unicodedata.category(ch) not in _INVISIBLE_CATEGORIES else "" for ch in text
    )


def _shorten_runs(text: str, max_run: int) -> str:
    if max_run <= 0 or len(text) <= max_run:
        return text
    out: list[str] = []
    prev = ""
    run = 0
    for ch in text:
        if ch == prev:
            run += 1
            if run > max_run:
                continue
        else:
            prev = ch
            run = 1
        out.append(ch)
    return "".join(out)


def _strip_repost_chain(text: str) -> str:
    m = _REPOST_CHAIN.search(text)
    if not m:
        return text
    head = text[: m.start()].strip()
    if head:
        return head
    # A bare repost: the first reposted comment is the only text there is.
    rest = text[m.end() :]
    nxt = _REPOST_CHAIN.search(rest)
    return rest[: nxt.start()] if nxt else rest


def normalise(text: str, max_run: int = 3) -> str:
    """Return the canonical form of a chat message (may be empty if it held only clutter)."""
    t = unicodedata.normalize("NFKC", text)
    t = _drop_invisible(t)
    t = _strip_repost_chain(t)
    t = _REPLY_PREFIX.sub("", t)
    t = _URL.sub(" ", t)
    t = _EMOTE_CODE.sub(" ", t)
    t = _HASHTAG.sub(" ", t)
    t = _MENTION.sub(" ", t)
    t = t.lower()
    t = _shorten_runs(t, max_run)
    if max_run > 0:
        t = _UNIT_REPEAT.sub(lambda m: m.group(1) * max_run, t)
    return _SPACES.sub(" ", t).strip()


@lru_cache(maxsize=65536)
def normalise_cached(text: str, max_run: int = 3) -> str:
    """``normalise`` memoised: floods repeat the same strings many times a second."""
    return normalise(text, max_run)
