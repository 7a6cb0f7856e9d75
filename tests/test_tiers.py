"""The model tiers: the stacked accurate recipe's ONNX parity, gold label files, real-model hot swap."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.classify.features import Featuriser, FeaturiserConfig, build_vocab, tokens
from engine.classify.onnx_model import OnnxEmotionModel
from engine.classify.registry import BUNDLED_DIR, ModelRegistry
from engine.config import ClassifierConfig, Config
from engine.emotions import EMOTIONS, INDEX
from engine.pipeline import Pipeline
from engine.training import data as D
from engine.training.export import build_model
from engine.training.linear import LinearParams, softmax
from engine.training.stack import StackParams, fit_base, make_stack, merged_blocks
from engine.training.train import TierConfig, fit
from engine.types import ChatMessage
from tests.test_training import synthetic
from tests.waiting import running

CFG = FeaturiserConfig(min_n=1, max_n=3, boundary=True, tf="binary")


def _stacked_blob() -> tuple[bytes, object, list[str]]:
    texts, y = synthetic(30, seed=0)
    # The base corpus: other texts, five classes (no excited), like SMP.
    btexts, by = synthetic(20, seed=5)
    keep = [i for i, lab in enumerate(by) if EMOTIONS[lab] != "excited"]
    base = fit_base([btexts[i] for i in keep], by[keep], CFG, StackParams(min_df=1, alpha=0.3))
    stack = make_stack(base, texts, 0.3)
    m = fit(texts, y, np.ones(len(y)), TierConfig(featuriser=CFG, linear=LinearParams(c=4.0)), stack)
    feat, idf0, coef0, idf1, coef1, bias = merged_blocks(
        m.feat, m.idf, np.asarray(m.clf.coef_), np.asarray(m.clf.intercept_), stack
    )
    blob = build_model(
        feat,
        idf0,
        coef0,
        bias,
        0.7,
        model_id="stk",
        tier="accurate",
        description="t",
        metrics={},
        extra_blocks=[(idf1, coef1)],
    )
    return blob, m, texts


def test_stacked_model_onnx_matches_sklearn_on_a_fixed_sample(tmp_path: Path) -> None:
    blob, m, texts = _stacked_blob()
    (tmp_path / "stk.onnx").write_bytes(blob)
    onnx_model = OnnxEmotionModel(tmp_path / "stk.onnx")
    sample = [*texts[::7], "没见过的字", "", "哈哈退钱666"]
    ref = softmax(m.logits(sample) / 0.7)  # type: ignore[attr-defined]
    got = onnx_model.probabilities(sample)
    assert np.abs(got - ref).max() < 1e-5
    # The stacked scores are part of the reading: without them the logits differ.
    assert m.stack is not None and np.abs(m.stack.features(sample)).max() > 0  # type: ignore[attr-defined]


def test_word_and_lexicon_tokens_round_trip_through_json() -> None:
    cfg = replace(CFG, words=True, lexicon_max_n=2)
    lex = {"开心": ("\x01lpos",), "垃圾": ("\x01lneg",)}
    texts = ["今天很开心", "什么垃圾", "主播好"]
    feat = Featuriser(cfg, build_vocab(texts, cfg, 1, lex), lex)
    toks = tokens("今天很开心", cfg, lex)
    assert "\x01lpos" in toks and any(t.startswith("\x01w") for t in toks)
    again = Featuriser.from_json(feat.to_json())
    assert again.config == cfg and dict(again.lexicon) == lex
    a, b = feat.transform(texts), again.transform(texts)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def _data_dir(tmp_path: Path, pool: dict[str, str]) -> Path:
    (tmp_path / "danmu").mkdir()
    lines = "".join(f"{i}\tdouyu\t{t}\n" for i, t in pool.items())
    (tmp_path / "danmu" / "pool.tsv").write_text(lines, encoding="utf-8")
    return tmp_path


def test_gold_files_join_pool_texts_by_id(tmp_path: Path) -> None:
    dd = _data_dir(tmp_path, {"a1": "哈哈哈", "b2": "退钱", "c3": "包邮吗"})
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "b1.tsv").write_text("id\tlabel\nb2\tangry\na1\thappy\n", encoding="utf-8")
    (labels / "b2.tsv").write_text("# second batch\nc3\tneutral\na1\thappy\n", encoding="utf-8")
    data, ids = D.read_gold(dd, D.gold_files(labels))
    assert ids == ["a1", "b2", "c3"]
    assert data.texts == ("哈哈哈", "退钱", "包邮吗")
    assert data.labels == (INDEX["happy"], INDEX["angry"], INDEX["neutral"])
    (labels / "b3.tsv").write_text("zz\thappy\n", encoding="utf-8")
    with pytest.raises(D.DataError, match=r"b3\.tsv:1: id 'zz' is not in"):
        D.read_gold(dd, D.gold_files(labels))
    (labels / "b3.tsv").write_text("a1\tangry\n", encoding="utf-8")
    with pytest.raises(D.DataError, match="already labelled happy"):
        D.read_gold(dd, D.gold_files(labels))
    (labels / "b3.tsv").write_text("a1\tjoy\n", encoding="utf-8")
    with pytest.raises(D.DataError, match="label 'joy'"):
        D.read_gold(dd, D.gold_files(labels))


def test_gold_split_is_by_id_so_adding_files_never_moves_a_line() -> None:
    ids = [f"{i:012x}" for i in range(2000)]
    held = {i for i in ids if D.gold_is_heldout(i)}
    assert 0.17 < len(held) / len(ids) < 0.23
    data = D.Labelled(tuple(ids), tuple(0 for _ in ids), "x")
    tr, te = D.split_gold(data.subset(range(1000)), ids[:1000])
    tr2, te2 = D.split_gold(data, ids)
    assert set(te.texts) <= set(te2.texts) and set(tr.texts) <= set(tr2.texts)
    assert not set(tr2.texts) & set(te2.texts)


def _bundled(mid: str) -> Path:
    p = BUNDLED_DIR / f"{mid}.onnx"
    if not p.is_file():  # pragma: no cover - both tiers ship in the repo
        pytest.fail(f"{p} missing: train it with `moodcast train --tier {mid} --out engine/models`")
    return p


def test_bundled_tiers_meet_their_size_limits_and_carry_scores() -> None:
    reg = ModelRegistry()
    fast, acc = reg.get("fast").info, reg.get("accurate").info
    assert fast.tier == "fast" and acc.tier == "accurate"
    assert _bundled("fast").stat().st_size <= 5_000_000
    assert _bundled("accurate").stat().st_size <= 30_000_000
    for info in (fast, acc):
        assert 0 < info.metrics["danmu_heldout_macro_f1"] < 1
        assert "temperature" in info.metrics


async def test_hot_swap_between_real_onnx_models_under_load_loses_no_message() -> None:
    reg = ModelRegistry()
    cfg = replace(Config(), classifier=replace(ClassifierConfig(model="fast"), cache_size=0))
    pipe = Pipeline(cfg, reg.get)
    got = pipe.classified.subscribe("test")
    texts = ["哈哈哈笑死", "666666冲冲冲", "退钱！骗子", "呜呜呜好可惜", "怎么还不开始", "包邮吗"]
    n = 3000
    async with running(pipe):
        for i in range(n):
            pipe.submit(ChatMessage.create(room="r", user=f"u{i}", text=f"{texts[i % 6]}{i}"))
            if i % 500 == 250:
                pipe.set_model("accurate" if pipe.model_for("r") == "fast" else "fast")
                # Let the classifier catch up a little, so both models really read part of the stream
                # (otherwise the whole backlog could be read by whichever model is set last).
                while pipe.counters.classified < i - 300:  # noqa: ASYNC110 - polls a counter; no event exists
                    await asyncio.sleep(0.005)
            if i % 50 == 0:
                await asyncio.sleep(0)
        assert await pipe.drain(timeout=60)
    items = got.drain_nowait(10 * n)
    assert len(items) == n
    assert sorted(int(c.message.user[1:]) for c in items) == list(range(n))
    assert {c.model_id for c in items} == {"fast", "accurate"}
    assert pipe.stats()["dropped"] == 0 and pipe.counters.model_errors == 0
