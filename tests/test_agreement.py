"""Agreement maths on tiny known cases, and the gold merge rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.training.agreement import LabelFileError, agreement, cohen_kappa, gold, read_labels


def test_kappa_known_values() -> None:
    # Perfect agreement -> 1; agreement exactly at chance -> 0.
    assert cohen_kappa(np.array([[5, 0], [0, 5]])) == 1.0
    assert cohen_kappa(np.array([[25, 25], [25, 25]])) == 0.0
    # Textbook example: po = 0.7, pe = 0.5 -> kappa 0.4.
    assert cohen_kappa(np.array([[20, 5], [10, 15]])) == pytest.approx(0.4)


def test_agreement_and_gold_merge() -> None:
    a = {"1": "happy", "2": "angry", "3": "neutral", "4": "sad"}
    b = {"1": "happy", "2": "angry", "3": "anxious", "4": "sad", "5": "happy"}
    ag = agreement(a, b)
    assert ag.n == 4 and ag.observed == 0.75
    assert gold(a, b, {"3": "anxious"}) == {"1": "happy", "2": "angry", "3": "anxious", "4": "sad"}
    with pytest.raises(LabelFileError, match="1 disagreements"):
        gold(a, b, {})


def test_read_labels_rejects_bad_files(tmp_path: Path) -> None:
    f = tmp_path / "l.tsv"
    f.write_text("id\tlabel\nx\thappy\ny\tjoy\n", encoding="utf-8")
    with pytest.raises(LabelFileError, match=r"l\.tsv:3: unknown emotion 'joy'"):
        read_labels(f)
    f.write_text("x\thappy\nx\tsad\n", encoding="utf-8")
    with pytest.raises(LabelFileError, match="appears twice"):
        read_labels(f)
