"""The routed accurate graph: chat and prose experts mixed by a learnt router; how its offset is chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.classify.features import Featuriser, FeaturiserConfig, build_vocab
from engine.classify.onnx_model import OnnxEmotionModel
from engine.emotions import EMOTIONS, INDEX
from engine.training.export import build_routed_model
from engine.training.linear import LinearParams, softmax
from engine.training.route import (
    ABSENT_LOGIT,
    OffsetChoice,
    RouteParams,
    choose_offset,
    fit_router,
    mix,
    out_of_fold_router_logits,
    prose_logits,
)
from engine.training.stack import StackParams, fit_base, make_stack, merged_blocks
from engine.training.train import Routed, TierConfig, fit
from tests.test_training import synthetic

CFG = FeaturiserConfig(min_n=1, max_n=3, boundary=True, tf="binary")
PROSE_FILLER = "今天我们一起去了市中心的图书馆然后在附近的餐厅吃了晚饭感觉这个城市的生活节奏"


def _prose(texts: list[str], seed: int) -> list[str]:
    """Long, prose-like posts: a cue buried in a sentence of ordinary words (what Weibo looks like)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in texts:
        a, b = sorted(rng.integers(0, len(PROSE_FILLER), size=2))
        out.append(PROSE_FILLER[: a + 10] + t + PROSE_FILLER[b:] + "。")
    return out


def _routed_blob(tmp_path: Path) -> tuple[Path, Routed, object, list[str], list[str]]:
    texts, y = synthetic(30, seed=0)
    btexts, by = synthetic(20, seed=5)
    keep = [i for i, lab in enumerate(by) if EMOTIONS[lab] != "excited"]
    prose = _prose([btexts[i] for i in keep], seed=1)
    base = fit_base(prose, by[keep], CFG, StackParams(min_df=1, alpha=0.3))
    stack = make_stack(base, texts, 0.3)
    m = fit(texts, y, np.ones(len(y)), TierConfig(featuriser=CFG, linear=LinearParams(c=4.0)), stack)
    feat, idf0, coef0, idf1, coef1, bias = merged_blocks(
        m.feat, m.idf, np.asarray(m.clf.coef_), np.asarray(m.clf.intercept_), stack
    )
    router = fit_router(feat, texts, prose, RouteParams(c=2.0))
    table = ((0.0, 0.5, 0.5),)
    routed = Routed(base, 0.9, router, OffsetChoice(0.0, 0.5, 0.5, 0.5, 0.5, table))
    blob = build_routed_model(
        feat,
        [(idf0, coef0), (idf1, coef1)],
        bias,
        0.7,
        routed.blocks(feat),
        model_id="routed",
        tier="accurate",
        description="t",
        metrics={},
    )
    path = tmp_path / "routed.onnx"
    path.write_bytes(blob)
    return path, routed, m, texts, prose


def test_routed_graph_matches_the_numpy_mixture(tmp_path: Path) -> None:
    path, routed, m, texts, prose = _routed_blob(tmp_path)
    model = OnnxEmotionModel(path)
    sample = [*texts[::7], *prose[::5], "没见过的字", "", "哈哈退钱666"]
    chat_logits = m.logits(sample)  # type: ignore[attr-defined]
    ref = routed.probs(chat_logits, 0.7, sample)
    got = model.probabilities(sample)
    assert np.abs(got - ref).max() < 1e-5
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # softmax(logits) is the same mixture with both experts uncalibrated, as for single-model graphs.
    raw = softmax(model.logits(sample).astype(np.float64))
    assert np.abs(raw - routed.probs(chat_logits, None, sample)).max() < 1e-5


def test_router_sends_prose_to_the_prose_expert_and_chat_to_the_chat_model(tmp_path: Path) -> None:
    path, routed, _, texts, prose = _routed_blob(tmp_path)
    g_chat = 1 / (1 + np.exp(-routed.router.logit(texts)))
    g_prose = 1 / (1 + np.exp(-routed.router.logit(prose)))
    assert g_chat.mean() < 0.2 and g_prose.mean() > 0.8
    # The prose expert never says excited: its corpus has no such class.
    zp = prose_logits(routed.expert, prose)
    assert np.all(zp[:, INDEX["excited"]] == ABSENT_LOGIT)
    probs = OnnxEmotionModel(path).probabilities(prose)
    assert probs[:, INDEX["excited"]].max() < 0.2


def test_mix_is_each_expert_at_the_extremes() -> None:
    rng = np.random.default_rng(0)
    zc, zp = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    assert np.allclose(mix(zc, 2.0, zp, 1.0, np.full(4, -50.0)), softmax(zc / 2.0))
    assert np.allclose(mix(zc, 2.0, zp, 1.0, np.full(4, 50.0)), softmax(zp))
    half = mix(zc, 1.0, zp, 1.0, np.zeros(4))
    assert np.allclose(half, (softmax(zc) + softmax(zp)) / 2)


def _side(n: int, chat_right: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gold labels with one expert always right and the other always wrong; router logit 0 everywhere."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 5  # five classes, like SMP
    right = np.eye(6)[y] * 4.0
    wrong = np.eye(6)[(y + 1) % 5] * 4.0
    zc, zp = (right, wrong) if chat_right else (wrong, right)
    return zc + rng.normal(0, 0.01, zc.shape), zp, np.zeros(n), y


def test_offset_is_the_best_for_prose_that_costs_chat_nothing() -> None:
    chat = _side(200, chat_right=True, seed=0)
    # Routing chat lines hurts only once the gate opens wide: a router that is sure they are chat.
    chat = (chat[0], chat[1], np.full(200, -3.0), chat[3])
    prose = (*_side(200, chat_right=False, seed=1)[:2], np.full(200, 3.0), np.arange(200) % 5)
    params = RouteParams(offsets=(0.0, -1.0, -2.0, -4.0, -6.0), max_chat_loss=0.0)
    choice = choose_offset(chat, prose, 1.0, 1.0, params)
    # Offset 0 and -1 would still pass chat (gate 0.05 / 0.02) and route all prose: -> 0, the best prose.
    assert choice.offset == 0.0
    assert choice.chat_f1 >= choice.chat_f1_unrouted
    assert choice.prose_f1 > choice.prose_f1_unrouted
    # A router that cannot tell chat from prose: any routing costs chat, so the most closed gate wins.
    blind = (chat[0], chat[1], np.full(200, 8.0), chat[3])
    choice = choose_offset(blind, prose, 1.0, 1.0, params)
    assert choice.offset == -6.0


def test_out_of_fold_router_scores_come_from_routers_that_never_saw_the_line() -> None:
    texts, _ = synthetic(10, seed=0)
    prose = _prose(texts, seed=2)
    feat_texts = [*texts, *prose]
    feat = Featuriser(CFG, build_vocab(feat_texts, CFG))
    oof = out_of_fold_router_logits(feat, texts, prose, RouteParams(folds=3), seed=0)
    full = fit_router(feat, texts, prose, RouteParams()).logit(texts)
    assert oof.shape == (len(texts),)
    # In-sample scores are surer that chat is chat than honest out-of-fold ones.
    assert full.mean() < oof.mean()
