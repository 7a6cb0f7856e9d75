"""Char n-gram featuriser: n-grams, vocab determinism, padding, tf modes, JSON round trip, speed budget."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from engine.classify.features import BOS, EOS, Featuriser, FeaturiserConfig, build_vocab, ngrams


def test_ngrams_with_markers() -> None:
    cfg = FeaturiserConfig(min_n=1, max_n=2, boundary=True)
    assert ngrams("包邮", cfg) == ["包", "邮", BOS + "包", "包邮", "邮" + EOS]


def test_ngrams_without_markers_and_cap() -> None:
    cfg = FeaturiserConfig(min_n=2, max_n=3, boundary=False, max_chars=3)
    assert ngrams("abcdef", cfg) == ["ab", "bc", "abc"]


def test_vocab_is_sorted_from_one_and_respects_min_df() -> None:
    cfg = FeaturiserConfig(min_n=1, max_n=1, boundary=False)
    vocab = build_vocab(["ab", "b", "bc"], cfg, min_df=2)
    assert vocab == {"b": 1}
    full = build_vocab(["bc", "ab"], cfg)
    assert full == {"a": 1, "b": 2, "c": 3}
    assert build_vocab(["ab", "bc"], cfg) == full


def test_transform_pads_with_zero_and_counts_once_per_row() -> None:
    cfg = FeaturiserConfig(min_n=1, max_n=1, boundary=False, tf="count")
    feat = Featuriser(cfg, {"哈": 1, "好": 2})
    ids, tf = feat.transform(["哈哈哈好", "好", "未知"])
    assert ids.dtype == np.int64 and tf.dtype == np.float32
    assert ids.shape == (3, 2)
    assert dict(zip(ids[0].tolist(), tf[0].tolist(), strict=True)) == {1: 3.0, 2: 1.0}
    assert ids[1].tolist() == [2, 0] and tf[1].tolist() == [1.0, 0.0]
    assert ids[2].tolist() == [0, 0] and tf[2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("mode", "expected"), [("binary", 1.0), ("count", 3.0), ("sublinear", 1 + math.log(3))]
)
def test_tf_modes(mode: str, expected: float) -> None:
    feat = Featuriser(FeaturiserConfig(min_n=1, max_n=1, boundary=False, tf=mode), {"哈": 1})
    _, tf = feat.transform(["哈哈哈"])
    assert tf[0, 0] == pytest.approx(expected, rel=1e-6)


def test_empty_batch_and_empty_text() -> None:
    feat = Featuriser(FeaturiserConfig(), {"a": 1})
    ids, tf = feat.transform([])
    assert ids.shape == (0, 1) and tf.shape == (0, 1)
    ids, _ = feat.transform([""])
    assert ids.tolist() == [[0]]


def test_json_round_trip() -> None:
    cfg = FeaturiserConfig(min_n=1, max_n=3, boundary=True, tf="binary", max_chars=50)
    feat = Featuriser(cfg, build_vocab(["哈哈哈笑死", "退钱", "包邮吗"], cfg))
    back = Featuriser.from_json(feat.to_json())
    assert back.config == cfg and dict(back.vocab) == dict(feat.vocab)
    a, b = feat.transform(["包邮吗哈"]), back.transform(["包邮吗哈"])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("raw", ["[]", '{"kind": "bpe"}', '{"kind": "char_ngram", "vocab": [1]}'])
def test_from_json_rejects_garbage(raw: str) -> None:
    with pytest.raises(ValueError):
        Featuriser.from_json(raw)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        FeaturiserConfig(min_n=3, max_n=2)
    with pytest.raises(ValueError):
        FeaturiserConfig(tf="bm25")


def test_featurising_is_fast_enough_for_the_fast_tier() -> None:
    # The fast tier's budget is 20 us per message for featurise + onnx; featurising gets well under half.
    # Loose bound (4x slack) so a loaded CI machine does not flake; bench/ measures the real number.
    cfg = FeaturiserConfig()
    rng = np.random.default_rng(0)
    alphabet = list("哈哈笑死我了退钱骗子包邮吗主播好可爱怎么还不开始666冲牛逼呜心疼急")
    texts = ["".join(rng.choice(alphabet, size=int(rng.integers(2, 20)))) for _ in range(2560)]
    feat = Featuriser(cfg, build_vocab(texts, cfg))
    start = time.perf_counter()
    for i in range(0, len(texts), 256):
        feat.transform(texts[i : i + 256])
    per_msg = (time.perf_counter() - start) / len(texts)
    assert per_msg < 40e-6, f"{per_msg * 1e6:.1f} us per message"
