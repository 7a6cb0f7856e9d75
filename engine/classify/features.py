"""Char n-gram featurisation shared by training and serving: normalised texts -> padded vocab ids.

A vocabulary dict beats hashing here: one ``dict.get`` per n-gram is the cheapest lookup Python has
(crc32 needs an encode per n-gram), unseen n-grams cost nothing downstream, and the vocab travels inside
the .onnx file so the model is self-contained.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

BOS = "\x02"
"""Start marker: 吗 at the end of a question and 哈 at the start are different signals."""
EOS = "\x03"
PAD_ID = 0
"""Id 0 is padding: its idf and weight rows are zero, so padded cells add nothing."""

TF_MODES = ("binary", "count", "sublinear")
WORD_PREFIX = "\x01w"
"""jieba words live in the same vocab as the n-grams, behind a prefix no normalised text contains."""
LEX_PREFIX = "\x01l"
"""Lexicon category tokens (e.g. ``\x01lhn:neg``) emitted for every lexicon word found in the text."""


@dataclass(frozen=True, slots=True)
class FeaturiserConfig:
    """How texts become ids: n-gram orders, boundary markers, tf mode and a length cap."""

    min_n: int = 1
    max_n: int = 3
    boundary: bool = True
    tf: str = "sublinear"
    max_chars: int = 200
    words: bool = False
    """Add jieba word tokens (the accurate tier); off keeps the fast tier's pure n-gram path."""
    lexicon_max_n: int = 0
    """Longest lexicon entry looked up (0 = no lexicon tokens); the lexicon itself travels with the vocab."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_n <= self.max_n:
            raise ValueError(f"bad n-gram range {self.min_n}..{self.max_n}")
        if self.tf not in TF_MODES:
            raise ValueError(f"tf must be one of {', '.join(TF_MODES)}, not {self.tf!r}")
        if self.max_chars < 1:
            raise ValueError("max_chars must be positive")
        if self.lexicon_max_n < 0:
            raise ValueError("lexicon_max_n must be >= 0")


def _wrap(text: str, cfg: FeaturiserConfig) -> str:
    # Long pastes are cut: one 2,000-char message would otherwise pad the whole batch to its length.
    t = text[: cfg.max_chars]
    return BOS + t + EOS if cfg.boundary else t


def ngrams(text: str, cfg: FeaturiserConfig) -> list[str]:
    """All char n-grams of one normalised text (with repeats), the bare markers left out."""
    s = _wrap(text, cfg)
    n = len(s)
    out = [s[i : i + k] for k in range(cfg.min_n, cfg.max_n + 1) for i in range(n - k + 1)]
    if cfg.boundary and cfg.min_n == 1:
        # The markers alone say nothing; keep them only inside longer n-grams.
        out = [g for g in out if g not in (BOS, EOS)]
    return out


def _jieba_words(text: str) -> list[str]:
    import jieba

    # jieba loads its dictionary on first use (about a second), once per process.
    return [WORD_PREFIX + w for w in jieba.lcut(text, HMM=True) if not w.isspace()]


def _lexicon_tokens(text: str, lexicon: Mapping[str, Sequence[str]], max_n: int) -> list[str]:
    out: list[str] = []
    get = lexicon.get
    n = len(text)
    for k in range(1, max_n + 1):
        for i in range(n - k + 1):
            cats = get(text[i : i + k])
            if cats:
                out += cats
    return out


def tokens(text: str, cfg: FeaturiserConfig, lexicon: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every token of one normalised text: char n-grams, then jieba words and lexicon categories if on."""
    out = ngrams(text, cfg)
    t = text[: cfg.max_chars]
    if cfg.words:
        out += _jieba_words(t)
    if cfg.lexicon_max_n and lexicon:
        out += _lexicon_tokens(t, lexicon, cfg.lexicon_max_n)
    return out


def build_vocab(
    texts: Iterable[str],
    cfg: FeaturiserConfig,
    min_df: int = 1,
    lexicon: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, int]:
    """Vocab of tokens seen in at least ``min_df`` texts; ids from 1 in sorted order (deterministic)."""
    df: Counter[str] = Counter()
    for t in texts:
        df.update(set(tokens(t, cfg, lexicon)))
    kept = sorted(g for g, c in df.items() if c >= min_df)
    return {g: i + 1 for i, g in enumerate(kept)}


@dataclass(frozen=True, slots=True)
class Featuriser:
    """Turns normalised texts into ``(ids [B, L] int64, tf [B, L] float32)`` with unique ids per row."""

    config: FeaturiserConfig
    vocab: Mapping[str, int] = field(repr=False)
    lexicon: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    """Lexicon word -> category tokens (already prefixed); empty unless ``lexicon_max_n`` > 0."""

    @property
    def size(self) -> int:
        """Number of id slots including padding (rows of the weight matrix)."""
        return len(self.vocab) + 1

    def row_ids(self, text: str) -> Counter[int]:
        """Vocab ids of one text with their raw counts; unknown n-grams dropped."""
        cfg = self.config
        get = self.vocab.get
        s = _wrap(text, cfg)
        n = len(s)
        # One flat comprehension per order is the fastest pure-Python form measured; markers alone are
        # never in the vocab, so they fall out with the unknowns.
        found: list[int | None] = []
        for k in range(cfg.min_n, cfg.max_n + 1):
            found += [get(s[i : i + k]) for i in range(n - k + 1)]
        if cfg.words or cfg.lexicon_max_n:
            t = text[: cfg.max_chars]
            if cfg.words:
                found += [get(w) for w in _jieba_words(t)]
            if cfg.lexicon_max_n and self.lexicon:
                found += [get(c) for c in _lexicon_tokens(t, self.lexicon, cfg.lexicon_max_n)]
        c: Counter[int] = Counter(found)  # type: ignore[arg-type]
        c.pop(None, None)  # type: ignore[call-overload]
        return c

    def transform(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Padded ids and tf values for a batch; every row holds each id once, padding is id 0 / tf 0."""
        rows = [self.row_ids(t) for t in texts]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        width = max(1, int(lengths.max()) if len(rows) else 1)
        total = int(lengths.sum())
        flat_ids = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=total)
        flat_tf = np.fromiter((c for r in rows for c in r.values()), dtype=np.float32, count=total)
        mode = self.config.tf
        if mode == "binary":
            flat_tf.fill(1.0)
        elif mode == "sublinear":
            flat_tf = (1.0 + np.log(flat_tf)).astype(np.float32)
        # Scatter the flat lists into the padded grid in one vectorised step.
        row_idx = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        starts = np.cumsum(lengths) - lengths
        col_idx = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        tf = np.zeros((len(rows), width), dtype=np.float32)
        ids[row_idx, col_idx] = flat_ids
        tf[row_idx, col_idx] = flat_tf
        return ids, tf

    def to_json(self) -> str:
        """Config and vocab as one JSON string (stored in the .onnx metadata)."""
        words = [""] * len(self.vocab)
        for g, i in self.vocab.items():
            words[i - 1] = g
        c = self.config
        data: dict[str, Any] = {
            "kind": "char_ngram",
            "min_n": c.min_n,
            "max_n": c.max_n,
            "boundary": c.boundary,
            "tf": c.tf,
            "max_chars": c.max_chars,
            "vocab": words,
        }
        # Written only when used, so the fast tier's files stay readable by older runtimes.
        if c.words:
            data["words"] = True
        if c.lexicon_max_n:
            data["lexicon_max_n"] = c.lexicon_max_n
            # Only entries whose categories are in the vocab can change a score; the rest are dropped.
            data["lexicon"] = {
                w: [x for x in cats if x in self.vocab]
                for w, cats in sorted(self.lexicon.items())
                if any(x in self.vocab for x in cats)
            }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Featuriser:
        """Inverse of ``to_json``; raises ValueError on anything malformed."""
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != "char_ngram":
            raise ValueError("featuriser is not a char_ngram config")
        words = data.get("vocab")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError("featuriser vocab must be a list of strings")
        cfg = FeaturiserConfig(
            min_n=int(data["min_n"]),
            max_n=int(data["max_n"]),
            boundary=bool(data["boundary"]),
            tf=str(data["tf"]),
            max_chars=int(data["max_chars"]),
            words=bool(data.get("words", False)),
            lexicon_max_n=int(data.get("lexicon_max_n", 0)),
        )
        lex_raw = data.get("lexicon", {})
        if not isinstance(lex_raw, dict) or not all(isinstance(v, list) for v in lex_raw.values()):
            raise ValueError("featuriser lexicon must map words to lists of category tokens")
        lexicon = {str(w): tuple(str(x) for x in cats) for w, cats in lex_raw.items()}
        return cls(cfg, {w: i + 1 for i, w in enumerate(words)}, lexicon)
