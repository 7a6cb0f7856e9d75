"""Classification metrics in plain numpy: per-class P/R/F1, macro-F1, accuracy, confusion, ECE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.emotions import EMOTIONS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def confusion_matrix(y_true: Sequence[int] | IntArray, y_pred: Sequence[int] | IntArray, k: int) -> IntArray:
    """``k x k`` counts; rows are the true class, columns the predicted one."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def per_class(cm: IntArray) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """Precision, recall, F1 and support per class; 0 where a ratio has no denominator."""
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    prec = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    rec = np.divide(tp, support.astype(np.float64), out=np.zeros_like(tp), where=support > 0)
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(tp), where=denom > 0)
    return prec, rec, f1, support


def macro_f1(cm: IntArray) -> float:
    """Mean F1 over the classes that occur in the gold labels (absent classes would only add zeros)."""
    _, _, f1, support = per_class(cm)
    present = support > 0
    return float(f1[present].mean()) if present.any() else 0.0


def ece(probs: npt.NDArray[np.floating[Any]], y_true: Sequence[int] | IntArray, bins: int = 10) -> float:
    """Expected calibration error of the top-1 confidence, equal-width bins over (0, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    if len(t) == 0:
        return 0.0
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; 0 cannot occur for a softmax.
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(t) * abs(correct[m].mean() - conf[m].mean())
    return float(total)


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``moodcast eval`` prints, for one model on one labelled set."""

    labels: tuple[str, ...]
    confusion: IntArray
    precision: FloatArray
    recall: FloatArray
    f1: FloatArray
    support: IntArray
    macro_f1: float
    accuracy: float
    ece: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``macro_f1`` at the top level."""
        return {
            "macro_f1": self.macro_f1,
            "accuracy": self.accuracy,
            "ece": self.ece,
            "n": int(self.support.sum()),
            "per_class": {
                lab: {
                    "precision": float(self.precision[i]),
                    "recall": float(self.recall[i]),
                    "f1": float(self.f1[i]),
                    "support": int(self.support[i]),
                }
                for i, lab in enumerate(self.labels)
            },
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
        }

    def format(self) -> str:
        """Human-readable table: per-class rows, summary, confusion matrix."""
        w = max(len(x) for x in self.labels) + 2
        lines = [f"{'':<{w}}{'prec':>8}{'recall':>8}{'f1':>8}{'support':>9}"]
        for i, lab in enumerate(self.labels):
            lines.append(
                f"{lab:<{w}}{self.precision[i]:>8.3f}{self.recall[i]:>8.3f}{self.f1[i]:>8.3f}"
                f"{int(self.support[i]):>9d}"
            )
        lines.append("")
        lines.append(f"macro-F1 {self.macro_f1:.4f}   accuracy {self.accuracy:.4f}   ECE {self.ece:.4f}")
        lines.append(f"n = {int(self.support.sum())}   (macro-F1 over classes present in the gold labels)")
        lines.append("")
        lines.append("confusion (rows = gold, columns = predicted)")
        lines.append(" " * w + "".join(f"{lab[:7]:>8}" for lab in self.labels))
        for i, lab in enumerate(self.labels):
            lines.append(f"{lab:<{w}}" + "".join(f"{int(v):>8d}" for v in self.confusion[i]))
        return "\n".join(lines)


def evaluate(
    probs: npt.NDArray[np.floating[Any]],
    y_true: Sequence[int] | IntArray,
    labels: Sequence[str] = EMOTIONS,
    bins: int = 10,
) -> Report:
    """Score predicted probabilities ``[n, k]`` against gold class indexes."""
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    k = len(labels)
    cm = confusion_matrix(t, p.argmax(axis=1) if len(t) else np.zeros(0, dtype=np.int64), k)
    prec, rec, f1, support = per_class(cm)
    n = int(support.sum())
    return Report(
        labels=tuple(labels),
        confusion=cm,
        precision=prec,
        recall=rec,
        f1=f1,
        support=support,
        macro_f1=macro_f1(cm),
        accuracy=float(np.trace(cm) / n) if n else 0.0,
        ece=ece(p, t, bins),
    )
