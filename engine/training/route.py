"""Routing each message to the chat model or to a Weibo-prose model, by a learnt domain classifier.

The accurate tier reads chat well and long Weibo-style posts badly (0.56 macro-F1 on SMP2020 usual-test),
while the Weibo model it already stacks reads those posts at about 0.74 and chat at 0.33. Live chat is
short and slangy; a pasted review, a long comment or a streamer's announcement is prose. A logistic
router over the same n-grams plus the message's length estimates P(prose); the two experts' calibrated
probabilities are mixed by it. Mixing, not switching, keeps probabilities smooth for borderline texts.

The router's offset is chosen on data no test touches: out-of-fold router scores on the danmu training
lines (chat must not lose more than ``RouteParams.max_chat_loss`` macro-F1) and SMP2020 usual-eval
(prose macro-F1 is maximised under that constraint). Chat is what the product reads, so chat wins ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.classify.features import Featuriser
from engine.emotions import EMOTIONS
from engine.training.linear import design_from_ids, fit_idf, softmax
from engine.training.metrics import confusion_matrix, macro_f1
from engine.training.stack import BaseModel

FloatArray = npt.NDArray[np.float64]
ABSENT_LOGIT = -30.0
"""The prose expert's score for classes its corpus lacks (``excited``): e^-30 next to the others."""


@dataclass(frozen=True, slots=True)
class RouteParams:
    """The router's recipe and how its offset is chosen."""

    c: float = 2.0
    folds: int = 3
    """Cross-fitting folds for the out-of-fold router scores on the chat lines (offset choice only)."""
    max_chat_loss: float = 0.002
    """Chat CV macro-F1 the router may cost at most, against no routing at all."""
    offsets: tuple[float, ...] = tuple(-0.5 * i for i in range(17))
    """Offsets tried on the router's logit, 0 (its balanced training prior) down to -8."""


@dataclass(frozen=True, slots=True)
class Router:
    """Logistic P(prose | text) over tf-idf n-grams plus ln(1 + number of known n-grams)."""

    feat: Featuriser
    idf: npt.NDArray[np.float32]
    coef: FloatArray
    len_coef: float
    intercept: float

    def logit(self, texts: Sequence[str]) -> FloatArray:
        """The router's logit per normalised text (offset included)."""
        x, log_len = _router_design(self.feat, self.idf, texts)
        out: FloatArray = (
            np.asarray(x @ self.coef, dtype=np.float64) + self.len_coef * log_len + self.intercept
        )
        return out

    def with_offset(self, offset: float) -> Router:
        """The same router with ``offset`` added to its logit."""
        return Router(self.feat, self.idf, self.coef, self.len_coef, self.intercept + offset)


def _router_design(
    feat: Featuriser, idf: npt.NDArray[np.float32], texts: Sequence[str]
) -> tuple[Any, FloatArray]:
    ids, tf = feat.transform(texts)
    x = design_from_ids(ids, tf, idf, feat.size)
    # Known ids per row, exactly what the graph counts (ids > 0 in the padded batch).
    log_len = np.log1p((ids > 0).sum(axis=1).astype(np.float64))
    return x, log_len


def fit_router(feat: Featuriser, chat: Sequence[str], prose: Sequence[str], params: RouteParams) -> Router:
    """Fit the router on normalised chat lines (label 0) and prose posts (label 1), classes balanced."""
    from scipy import sparse  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression

    texts = [*chat, *prose]
    y = np.r_[np.zeros(len(chat), dtype=np.int64), np.ones(len(prose), dtype=np.int64)]
    idf = fit_idf(feat, texts)
    x, log_len = _router_design(feat, idf, texts)
    design = sparse.hstack([x, sparse.csr_matrix(log_len[:, None])]).tocsr()
    clf = LogisticRegression(C=params.c, max_iter=1000, tol=1e-4, class_weight="balanced")
    clf.fit(design, y)
    coef = np.asarray(clf.coef_[0], dtype=np.float64)
    return Router(feat, idf, coef[:-1], float(coef[-1]), float(clf.intercept_[0]))


def out_of_fold_router_logits(
    feat: Featuriser, chat: Sequence[str], prose: Sequence[str], params: RouteParams, seed: int
) -> FloatArray:
    """Router logits for every chat line from routers that never saw it (cross-fitted over both sides)."""
    from sklearn.model_selection import KFold

    out = np.zeros(len(chat))
    chat_folds = KFold(params.folds, shuffle=True, random_state=seed).split(np.arange(len(chat)))
    prose_folds = KFold(params.folds, shuffle=True, random_state=seed).split(np.arange(len(prose)))
    for (c_tr, c_te), (p_tr, _) in zip(chat_folds, prose_folds, strict=True):
        r = fit_router(feat, [chat[i] for i in c_tr], [prose[i] for i in p_tr], params)
        out[c_te] = r.logit([chat[i] for i in c_te])
    return out


def prose_logits(expert: BaseModel, texts: Sequence[str]) -> FloatArray:
    """The prose expert's scores over all six classes (``ABSENT_LOGIT`` for those it lacks)."""
    out = np.full((len(texts), len(EMOTIONS)), ABSENT_LOGIT)
    out[:, list(expert.classes)] = expert.logits(texts)
    return out


def mix(
    chat: FloatArray, t_chat: float, prose: FloatArray, t_prose: float, router_logit: FloatArray
) -> FloatArray:
    """``(1 - g) softmax(chat / t_chat) + g softmax(prose / t_prose)``, g = sigmoid(router_logit)."""
    g = 1.0 / (1.0 + np.exp(-router_logit))[:, None]
    out: FloatArray = (1.0 - g) * softmax(chat / t_chat) + g * softmax(prose / t_prose)
    return out


@dataclass(frozen=True, slots=True)
class OffsetChoice:
    """The chosen offset and the scores behind the choice (all on training-side data)."""

    offset: float
    chat_f1_unrouted: float
    chat_f1: float
    prose_f1_unrouted: float
    prose_f1: float
    table: tuple[tuple[float, float, float], ...]
    """(offset, chat CV macro-F1, prose usual-eval macro-F1) for every offset tried."""


def _f1(probs: FloatArray, y: npt.NDArray[np.int64]) -> float:
    return macro_f1(confusion_matrix(y, probs.argmax(axis=1), len(EMOTIONS)))


def choose_offset(
    chat: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.int64]],
    prose: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.int64]],
    t_chat: float,
    t_prose: float,
    params: RouteParams,
) -> OffsetChoice:
    """Best prose macro-F1 among the offsets that cost chat at most ``max_chat_loss``.

    Each side is ``(chat-model logits, prose-model logits, router logits, gold)``: on the chat side the
    chat logits and router logits are out-of-fold; on the prose side (SMP usual-eval) nothing saw them.
    """

    def score(
        side: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.int64]], off: float | None
    ) -> float:
        zc, zp, r, y = side
        if off is None:
            return _f1(softmax(zc / t_chat), y)
        return _f1(mix(zc, t_chat, zp, t_prose, r + off), y)

    chat0, prose0 = score(chat, None), score(prose, None)
    table = tuple((off, score(chat, off), score(prose, off)) for off in params.offsets)
    allowed = [row for row in table if row[1] >= chat0 - params.max_chat_loss]
    if not allowed:
        # Routing would cost chat everywhere: keep the most chat-friendly offset (least prose routing).
        best = min(table, key=lambda row: row[0])
    else:
        best = max(allowed, key=lambda row: (row[2], row[1]))
    return OffsetChoice(best[0], chat0, best[1], prose0, best[2], table)
