"""The fast tier's model: tf-idf weighted char n-grams, L2-normalised, into a multinomial logistic regression.

The maths here is exactly what the exported ONNX graph computes, so sklearn and onnxruntime agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse  # type: ignore[import-untyped]  # no stubs; training-only

from engine.classify.features import Featuriser

FloatArray = npt.NDArray[np.float64]
NORM_EPS = 1e-12
"""Floor under the squared norm, shared with the graph: an all-unknown text scores as the bias alone."""


def fit_idf(feat: Featuriser, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Smoothed idf per id, ``ln((1+n)/(1+df)) + 1`` as in sklearn; the padding id gets 0."""
    ids, _ = feat.transform(texts)
    df = np.bincount(ids.ravel(), minlength=feat.size).astype(np.float64)
    idf = np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0
    idf[0] = 0.0
    return idf.astype(np.float32)


def design_matrix(feat: Featuriser, idf: npt.NDArray[np.float32], texts: Sequence[str]) -> sparse.csr_matrix:
    """Rows of L2-normalised tf-idf values, ``feat.size`` columns (column 0 = padding, always empty)."""
    ids, tf = feat.transform(texts)
    return design_from_ids(ids, tf, idf, feat.size)


def design_from_ids(
    ids: npt.NDArray[np.int64], tf: npt.NDArray[np.float32], idf: npt.NDArray[np.float32], size: int
) -> sparse.csr_matrix:
    """``design_matrix`` from an already featurised batch (callers that also need the ids)."""
    v = idf[ids].astype(np.float64) * tf
    norm = np.sqrt(np.maximum((v * v).sum(axis=1, keepdims=True), NORM_EPS))
    v = v / norm
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    mat = sparse.csr_matrix((v.ravel(), (rows, ids.ravel())), shape=(ids.shape[0], size))
    mat.eliminate_zeros()
    return mat


def softmax(z: FloatArray) -> FloatArray:
    """Row-wise softmax, shifted for stability."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


def nll(logits: FloatArray, y: npt.NDArray[np.int64], temperature: float) -> float:
    """Mean negative log-likelihood of gold ``y`` under ``softmax(logits / T)``."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: FloatArray, y: npt.NDArray[np.int64]) -> float:
    """Temperature minimising NLL on held-apart logits: golden-section search on log T in [1/20, 20]."""
    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, y, float(np.exp(a))), nll(logits, y, float(np.exp(b)))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, y, float(np.exp(a)))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, y, float(np.exp(b)))
    return float(np.exp((lo + hi) / 2.0))


@dataclass(frozen=True, slots=True)
class LinearParams:
    """Hyper-parameters of the logistic regression."""

    c: float = 4.0
    class_weight: str | None = "balanced"
    max_iter: int = 2000


def fit_logreg(
    x: sparse.csr_matrix,
    y: npt.NDArray[np.int64],
    params: LinearParams,
    sample_weight: npt.NDArray[np.float64] | None = None,
    n_classes: int = 6,
) -> Any:
    """Multinomial L2 logistic regression (lbfgs: deterministic, no seed needed)."""
    from sklearn.linear_model import LogisticRegression

    weights = np.ones(len(y)) if sample_weight is None else sample_weight.copy()
    if params.class_weight == "balanced":
        # Balanced over the weighted mass, so down-weighted extra corpora do not skew the class shares.
        mass = np.bincount(y, weights=weights, minlength=n_classes)
        present = mass > 0
        cw = np.zeros(n_classes)
        cw[present] = mass[present].sum() / (present.sum() * mass[present])
        weights = weights * cw[y]
    clf = LogisticRegression(C=params.c, max_iter=params.max_iter, tol=1e-6)
    clf.fit(x, y, sample_weight=weights)
    if list(clf.classes_) != list(range(n_classes)):
        raise ValueError(f"training data must contain every class; found {list(clf.classes_)}")
    return clf
