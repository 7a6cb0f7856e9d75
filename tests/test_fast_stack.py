"""The fast tier: an in-vocabulary stack folds into one ONNX block; vocabulary pruning by weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from engine.classify.features import Featuriser, FeaturiserConfig, build_vocab
from engine.classify.onnx_model import OnnxEmotionModel
from engine.emotions import EMOTIONS
from engine.training.export import build_model
from engine.training.linear import LinearParams, fit_idf, softmax
from engine.training.stack import StackParams, fit_base_in_vocab, fold_in_vocab, make_stack
from engine.training.train import Fitted, TierConfig, fit, out_of_fold_logits
from tests.test_training import synthetic

CFG = FeaturiserConfig(min_n=1, max_n=3, boundary=True, tf="binary")
TIER = TierConfig(featuriser=CFG, linear=LinearParams(c=4.0), stack_smp_in_vocab=StackParams(alpha=0.3))


def _fitted() -> tuple[Fitted, list[str], Featuriser]:
    texts, y = synthetic(30, seed=0)
    feat = Featuriser(CFG, build_vocab(texts, CFG))
    idf = fit_idf(feat, texts)
    # The base corpus: other texts with five classes (no excited), like SMP2020.
    btexts, by = synthetic(20, seed=5)
    keep = [i for i, lab in enumerate(by) if EMOTIONS[lab] != "excited"]
    base = fit_base_in_vocab(feat, idf, [btexts[i] for i in keep], by[keep], StackParams(alpha=0.3))
    stack = make_stack(base, texts, 0.3)
    m = fit(texts, y, np.ones(len(y)), TIER, stack, (feat, idf))
    return m, texts, feat


def test_in_vocab_stack_folds_into_one_block_that_matches_sklearn(tmp_path: Path) -> None:
    m, texts, feat = _fitted()
    assert m.feat is feat and m.stack is not None
    coef, bias = fold_in_vocab(
        feat,
        np.asarray(m.clf.coef_),
        np.asarray(m.clf.intercept_),
        m.stack,
    )
    assert coef.shape == (len(EMOTIONS), feat.size)
    blob = build_model(
        feat,
        m.idf,
        coef,
        bias,
        0.7,
        model_id="fs",
        tier="fast",
        description="t",
        metrics={},
    )
    # One block: the fast tier's graph, no second weight matrix.
    names = {i.name for i in onnx.load_from_string(blob).graph.initializer}
    assert "weight" in names and "weight_1" not in names
    (tmp_path / "fs.onnx").write_bytes(blob)
    sample = [*texts[::7], "没见过的字", "", "哈哈退钱666"]
    ref = softmax(m.logits(sample) / 0.7)
    got = OnnxEmotionModel(tmp_path / "fs.onnx").probabilities(sample)
    assert np.abs(got - ref).max() < 1e-5
    # The stacked scores change the reading: without them the logits differ.
    assert np.abs(m.stack.features(sample)).max() > 0


def test_cross_validation_keeps_the_fixed_featuriser() -> None:
    m, texts, feat = _fitted()
    y = synthetic(30, seed=0)[1]
    oof = out_of_fold_logits(
        texts,
        y,
        np.ones(len(y)),
        np.ones(len(y), dtype=bool),
        TIER,
        0,
        m.stack,
        (feat, m.idf),
    )
    assert oof.shape == (len(y), len(EMOTIONS))
    assert (oof.argmax(axis=1) == y).mean() > 0.8


def test_vocab_pruning_keeps_the_heaviest_ngrams_refits_and_exports() -> None:
    texts, y = synthetic(30, seed=0)
    full = fit(texts, y, np.ones(len(y)), TierConfig(featuriser=CFG, linear=LinearParams(c=4.0)))
    keep = len(full.feat.vocab) // 3
    cfg = TierConfig(featuriser=CFG, linear=LinearParams(c=4.0), max_vocab=keep)
    m = fit(texts, y, np.ones(len(y)), cfg)
    assert len(m.feat.vocab) == keep and set(m.feat.vocab) < set(full.feat.vocab)
    # Ids are dense and in sorted token order, like build_vocab's, so exports stay deterministic.
    assert list(m.feat.vocab) == sorted(m.feat.vocab) and sorted(m.feat.vocab.values()) == list(
        range(1, keep + 1)
    )
    # The strongest cue n-grams survive, and the refitted model still reads the cues.
    w = np.abs(full.clf.coef_).max(axis=0) * full.idf
    best = max(full.feat.vocab, key=lambda g: w[full.feat.vocab[g]])
    assert best in m.feat.vocab
    assert (m.logits(texts).argmax(axis=1) == y).mean() > 0.9
    assert m.clf.coef_.shape[1] == m.feat.size
    # Pruning cannot touch a featuriser a base model reads.
    with pytest.raises(ValueError, match="fixed featuriser"):
        fit(texts, y, np.ones(len(y)), cfg, None, (full.feat, full.idf))
