"""Stacking a Weibo-trained model under the danmu model: its five emotion scores become extra features.

SMP2020 alone reads chat badly (0.33 macro-F1), and mixing its rows into the training set lowered the
cross-validated score; but its *scores* as five extra inputs to the danmu model raised CV macro-F1 from
0.585 to 0.620 (see the accurate model card). The base model never sees a danmu label, so the out-of-fold
estimates stay honest, and it is fitted once, not per fold.

The whole stack stays linear in the two L2-normalised tf-idf vectors, so it exports as one ONNX graph
with two blocks over a shared vocabulary (engine/training/export.py ``extra_blocks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.classify.features import Featuriser, FeaturiserConfig, build_vocab
from engine.emotions import EMOTIONS
from engine.training.linear import design_matrix, fit_idf

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class StackParams:
    """The base model's recipe and how strongly its scores enter the danmu model."""

    alpha: float = 0.1
    """Scale of the centred base scores next to the unit-norm n-gram vector (CV: 0.05 / 0.1 / 0.2)."""
    min_df: int = 3
    """Base-model n-grams seen in fewer Weibo posts are dropped: 1.0 M -> 143 k, keeps the file small."""
    c: float = 4.0


@dataclass(frozen=True, slots=True)
class BaseModel:
    """A logistic regression trained on another corpus; ``classes`` are EMOTIONS indexes it knows."""

    feat: Featuriser
    idf: npt.NDArray[np.float32]
    coef: FloatArray
    intercept: FloatArray
    classes: tuple[int, ...]

    def logits(self, texts: Sequence[str]) -> FloatArray:
        """Raw decision values ``[n, len(classes)]`` for normalised texts."""
        x = design_matrix(self.feat, self.idf, texts)
        out: FloatArray = np.asarray(x @ self.coef.T + self.intercept, dtype=np.float64)
        return out


def fit_base(
    texts: Sequence[str], y: npt.NDArray[np.int64], cfg: FeaturiserConfig, params: StackParams
) -> BaseModel:
    """Fit the base model on normalised texts (unweighted: it only has to rank its own classes)."""
    feat = Featuriser(cfg, build_vocab(texts, cfg, params.min_df))
    idf = fit_idf(feat, texts)
    return _fit_base_lr(feat, idf, design_matrix(feat, idf, texts), y, params)


def _fit_base_lr(
    feat: Featuriser, idf: npt.NDArray[np.float32], x: Any, y: npt.NDArray[np.int64], params: StackParams
) -> BaseModel:
    """Unweighted logistic regression on design rows ``x``: it only has to rank its own classes."""
    from sklearn.linear_model import LogisticRegression

    # tol 1e-4: on 36 k posts x 143 k n-grams, 1e-6 costs minutes more for no change in the ranking.
    clf = LogisticRegression(C=params.c, max_iter=1000, tol=1e-4)
    clf.fit(x, y)
    return BaseModel(
        feat,
        idf,
        np.asarray(clf.coef_, dtype=np.float64),
        np.asarray(clf.intercept_, dtype=np.float64),
        tuple(int(c) for c in clf.classes_),
    )


@dataclass(frozen=True, slots=True)
class Stack:
    """The base model plus the centring and scale its scores get as features."""

    base: BaseModel
    mean: FloatArray
    alpha: float

    def features(self, texts: Sequence[str]) -> FloatArray:
        """``alpha * (base logits - mean)``: the extra dense columns of the danmu design matrix."""
        out: FloatArray = self.alpha * (self.base.logits(texts) - self.mean)
        return out


def make_stack(base: BaseModel, train_texts: Sequence[str], alpha: float) -> Stack:
    """Centre the base scores on the danmu training texts, so the stacked weights need no offset."""
    return Stack(base, base.logits(train_texts).mean(axis=0), alpha)


def merged_blocks(
    feat: Featuriser,
    idf: npt.NDArray[np.float32],
    coef: FloatArray,
    intercept: FloatArray,
    stack: Stack,
) -> tuple[Featuriser, npt.NDArray[np.float32], FloatArray, npt.NDArray[np.float32], FloatArray, FloatArray]:
    """Fold the stack into two blocks over one vocabulary for export.

    ``coef`` is the danmu model's ``[6, feat.size + n_base]``. Returns the union featuriser, block 0's idf
    and coef (the danmu n-grams), block 1's idf and coef (the base model's n-grams, already multiplied
    through the danmu model's weights on the base scores) and the combined bias.
    """
    if feat.config != stack.base.feat.config:
        raise ValueError("the stacked models must share one featuriser config")
    k = len(EMOTIONS)
    nb = len(stack.base.classes)
    w_ngram, w_base = coef[:, : feat.size], coef[:, feat.size :]
    if w_base.shape != (k, nb):
        raise ValueError(f"danmu coef has {coef.shape[1]} columns, expected {feat.size} + {nb}")
    tokens = sorted(set(feat.vocab) | set(stack.base.feat.vocab))
    vocab = {t: i + 1 for i, t in enumerate(tokens)}
    union = Featuriser(feat.config, vocab, feat.lexicon)

    idf0, coef0 = remap_block(feat, idf, w_ngram, union)
    # logits = W x + b + B * alpha * (Wb xb + bb - mean) = W x + (alpha B Wb) xb + (b + alpha B (bb - mean)).
    idf1, coef1 = remap_block(
        stack.base.feat, stack.base.idf, stack.alpha * (w_base @ stack.base.coef), union
    )
    bias = intercept + stack.alpha * (w_base @ (stack.base.intercept - stack.mean))
    return union, idf0, coef0, idf1, coef1, bias


def remap_block(
    src: Featuriser, idf_src: npt.NDArray[np.float32], cols: FloatArray, dest: Featuriser
) -> tuple[npt.NDArray[np.float32], FloatArray]:
    """``src``'s idf and weight columns moved to ``dest``'s ids (a superset vocabulary); others 0."""
    size = dest.size
    new_idf = np.zeros(size, dtype=np.float32)
    new_coef = np.zeros((cols.shape[0], size), dtype=np.float64)
    old = np.fromiter(src.vocab.values(), dtype=np.int64, count=len(src.vocab))
    new = np.fromiter((dest.vocab[t] for t in src.vocab), dtype=np.int64, count=len(src.vocab))
    new_idf[new] = idf_src[old]
    new_coef[:, new] = cols[:, old]
    return new_idf, new_coef


def fit_base_in_vocab(
    feat: Featuriser,
    idf: npt.NDArray[np.float32],
    texts: Sequence[str],
    y: npt.NDArray[np.int64],
    params: StackParams,
) -> BaseModel:
    """A base model that reads the danmu model's own featuriser and idf (the fast tier's stack).

    Its scores are then linear in the very vector the danmu model reads, so the stack folds into the
    danmu weights (``fold_in_vocab``): one block, the fast tier's size and speed unchanged. Weibo posts
    that share no n-gram with the danmu vocabulary are left out (they would only teach the bias).
    """
    x = design_matrix(feat, idf, texts)
    keep = np.asarray(x.getnnz(axis=1) > 0)
    return _fit_base_lr(feat, idf, x[keep], y[keep], params)


def fold_in_vocab(
    feat: Featuriser, coef: FloatArray, intercept: FloatArray, stack: Stack
) -> tuple[FloatArray, FloatArray]:
    """Fold a same-vocabulary stack into one linear map: ``(coef [6, feat.size], bias [6])``.

    logits = W x + b + B * alpha * (Wb x + bb - mean) = (W + alpha B Wb) x + (b + alpha B (bb - mean)).
    """
    if stack.base.feat.vocab is not feat.vocab and dict(stack.base.feat.vocab) != dict(feat.vocab):
        raise ValueError("fold_in_vocab needs the base model to read the danmu featuriser")
    w_ngram, w_base = coef[:, : feat.size], coef[:, feat.size :]
    folded = w_ngram + stack.alpha * (w_base @ stack.base.coef)
    bias = intercept + stack.alpha * (w_base @ (stack.base.intercept - stack.mean))
    return folded, bias
