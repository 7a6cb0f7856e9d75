"""The words driving a burst of negative chat, via jieba's TF-IDF keyword extraction.

jieba builds its prefix dictionary on first use (about a second, from the dictionary inside the
package, no network), so ``KeywordExtractor.load`` runs once in a worker thread at bot start-up and
``extract`` is called through ``asyncio.to_thread`` as well: neither ever blocks the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)

# Chat filler that TF-IDF would otherwise rank high in short danmu.
_STOP_TEXT = """
主播 我们 你们 他们 什么 怎么 这个 那个 就是 还是 真的 一个 没有 不是 可以 现在 今天 大家 哈哈 啊啊 呜呜
家人 宝宝 直播 直播间 一下 知道 觉得 感觉 为什么 这么 那么 东西
"""
STOPWORDS = frozenset(_STOP_TEXT.split())


class KeywordExtractor:
    """Thread-safe wrapper around jieba.analyse; loads the dictionary once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def loaded(self) -> bool:
        """Whether jieba's dictionary is built (the bot panel and tests read it)."""
        return self._loaded

    def load(self) -> None:
        """Build jieba's dictionary (blocking: call from a worker thread)."""
        with self._lock:
            if self._loaded:
                return
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            self._loaded = True

    def extract(self, texts: Sequence[str], top: int = 5) -> list[str]:
        """The ``top`` keywords of ``texts`` (blocking: call from a worker thread)."""
        self.load()
        import jieba.analyse

        joined = "\n".join(t for t in texts if t)
        if not joined.strip():
            return []
        with self._lock:  # jieba's global tokenizer is not documented as thread-safe
            tags = jieba.analyse.extract_tags(joined, topK=top * 3)
        out = [str(t) for t in tags if str(t) not in STOPWORDS and not str(t).isdigit() and len(str(t)) > 1]
        return out[:top]
