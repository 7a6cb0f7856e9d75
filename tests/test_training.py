"""Training pipeline: metrics maths, calibration, ONNX export parity with sklearn, data readers, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.classify.features import FeaturiserConfig
from engine.emotions import EMOTIONS
from engine.normalise import normalise
from engine.training import data as D
from engine.training.export import build_model
from engine.training.linear import LinearParams, fit_temperature, nll, softmax
from engine.training.metrics import confusion_matrix, ece, evaluate, macro_f1, per_class
from engine.training.train import Fitted, TierConfig, fit
from tests.conftest import SHARED_DATA

CUES = {
    "happy": ["哈哈哈", "笑死", "可爱", "谢谢"],
    "excited": ["666", "牛逼", "冲冲冲", "yyds"],
    "angry": ["垃圾", "骗子", "退钱", "滚"],
    "sad": ["呜呜", "心疼", "可惜", "唉"],
    "anxious": ["快点", "急", "怎么还不", "纠结"],
    "neutral": ["多少钱", "包邮吗", "打卡", "几号"],
}
FILLER = list(
    "的了是在我有他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"
)
TINY = TierConfig(featuriser=FeaturiserConfig(min_n=1, max_n=3), linear=LinearParams(c=4.0), cv_folds=3)


def synthetic(n_per_class: int = 30, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts made of one class cue plus filler chars; easy but not trivially separable."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    for k, emo in enumerate(EMOTIONS):
        for _ in range(n_per_class):
            cue = str(rng.choice(CUES[emo]))
            fill = "".join(rng.choice(FILLER, size=int(rng.integers(0, 6))))
            texts.append(fill + cue if rng.random() < 0.5 else cue + fill)
            labels.append(k)
    return texts, np.asarray(labels, dtype=np.int64)


def tiny_model(temperature: float = 0.8) -> tuple[Fitted, bytes, list[str]]:
    """A small model trained on synthetic data, its ONNX bytes and the training texts."""
    texts, y = synthetic()
    m = fit(texts, y, np.ones(len(y)), TINY)
    blob = build_model(
        m.feat,
        m.idf,
        np.asarray(m.clf.coef_, dtype=np.float64),
        np.asarray(m.clf.intercept_, dtype=np.float64),
        temperature,
        model_id="tiny",
        tier="test",
        description="synthetic test model",
        metrics={"macro_f1": 1.0},
    )
    return m, blob, texts


# --- metrics ---------------------------------------------------------------------------------------


def test_confusion_matrix_rows_are_gold() -> None:
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_per_class_and_macro_f1_on_a_known_matrix() -> None:
    cm = np.array([[8, 2], [4, 6]], dtype=np.int64)
    prec, rec, f1, support = per_class(cm)
    assert prec.tolist() == pytest.approx([8 / 12, 6 / 8])
    assert rec.tolist() == pytest.approx([0.8, 0.6])
    f_a = 2 * (8 / 12) * 0.8 / (8 / 12 + 0.8)
    f_b = 2 * 0.75 * 0.6 / 1.35
    assert f1.tolist() == pytest.approx([f_a, f_b])
    assert support.tolist() == [10, 10]
    assert macro_f1(cm) == pytest.approx((f_a + f_b) / 2)


def test_macro_f1_ignores_absent_gold_classes_and_handles_empty_predictions() -> None:
    # Class 2 never occurs in gold (SMP has no 'excited'); class 1 is never predicted: F1 0, not NaN.
    cm = np.array([[5, 0, 1], [3, 0, 0], [0, 0, 0]], dtype=np.int64)
    _, _, f1, _ = per_class(cm)
    assert f1[1] == 0.0 and f1[2] == 0.0
    assert macro_f1(cm) == pytest.approx(f1[0] / 2)


def test_ece_known_values() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    # Bin (0.8,0.9]: conf 0.9, acc 0.5 -> 0.4; bin (0.5,0.6]: conf 0.6, acc 1.0 -> 0.4. Weighted mean 0.4.
    assert ece(probs, [0, 1, 0, 0]) == pytest.approx(0.4)
    assert ece(np.array([[1.0, 0.0], [1.0, 0.0]]), [0, 0]) == pytest.approx(0.0)


def test_evaluate_report() -> None:
    probs = np.eye(6)[[0, 1, 2, 2]]
    rep = evaluate(probs, [0, 1, 2, 3])
    assert rep.accuracy == pytest.approx(0.75)
    assert rep.macro_f1 == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    d = rep.as_dict()
    assert d["macro_f1"] == rep.macro_f1 and d["per_class"]["angry"]["precision"] == pytest.approx(0.5)
    assert "confusion" in rep.format()


# --- calibration -----------------------------------------------------------------------------------


def test_temperature_recovers_overconfidence() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 6)) * 2
    y = np.array([rng.choice(6, p=p) for p in softmax(true_logits)], dtype=np.int64)
    t = fit_temperature(true_logits * 3.0, y)  # a model three times too sure of itself
    assert t == pytest.approx(3.0, rel=0.1)
    assert nll(true_logits * 3.0, y, t) < nll(true_logits * 3.0, y, 1.0)


# --- export parity ---------------------------------------------------------------------------------


def test_onnx_matches_sklearn_predict_proba_with_temperature() -> None:
    import onnxruntime as ort

    m, blob, texts = tiny_model(temperature=0.8)
    sample = [*texts[::7], "", "完全没见过的字", "哈哈哈垃圾"]
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    ids, tf = m.feat.transform(sample)
    probs, logits = sess.run(["probs", "logits"], {"ids": ids, "tf": tf})
    from engine.training.linear import design_matrix

    x = design_matrix(m.feat, m.idf, sample)
    np.testing.assert_allclose(logits, m.clf.decision_function(x), atol=1e-5)
    # At T = 1 the graph is sklearn's own predict_proba; at T = 0.8 it is the softmax of logits / T.
    np.testing.assert_allclose(softmax(logits.astype(np.float64)), m.clf.predict_proba(x), atol=1e-5)
    np.testing.assert_allclose(probs, softmax(m.clf.decision_function(x) / 0.8), atol=1e-5)


def test_tiny_model_learns_the_cues() -> None:
    m, _, _ = tiny_model()
    pred = softmax(m.logits(["哈哈哈", "退钱", "包邮吗", "怎么还不"])).argmax(axis=1)
    assert [EMOTIONS[i] for i in pred] == ["happy", "angry", "neutral", "anxious"]


# --- readers and CLI -------------------------------------------------------------------------------


def _write_user_csv(path: Path, n_per_class: int = 12) -> None:
    texts, y = synthetic(n_per_class, seed=1)
    lines = ["text,label"] + [f"{t},{EMOTIONS[k]}" for t, k in zip(texts, y, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_user_file_reader(tmp_path: Path) -> None:
    p = tmp_path / "mine.tsv"
    p.write_text("label\ttext\nHappy\t哈哈\nneutral\t包邮吗\n", encoding="utf-8")
    ds = D.read_user_file(p)
    assert ds.texts == ("哈哈", "包邮吗") and ds.labels == (0, 5)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n哈哈,joy\n", encoding="utf-8")
    with pytest.raises(D.DataError, match=r"bad\.csv:2"):
        D.read_user_file(bad)


def test_train_and_eval_cli_on_user_data_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.training.cli import eval_main, train_main

    data = tmp_path / "mine.csv"
    _write_user_csv(data)
    out = tmp_path / "models"
    assert train_main(["--no-shared", "--data", str(data), "--out", str(out), "--id", "mine"]) == 0
    model = out / "mine.onnx"
    assert model.is_file()
    summary = json.loads((out / "mine.metrics.json").read_text())
    assert "user_heldout_macro_f1" in summary["metrics"]
    capsys.readouterr()
    assert eval_main(["--data", str(data), "--model", str(model), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["macro_f1"] > 0.8
    assert eval_main(["--data", str(data), "--model", str(model)]) == 0
    assert "macro-F1" in capsys.readouterr().out


def test_training_is_deterministic(tmp_path: Path) -> None:
    from engine.training.cli import train_main

    data = tmp_path / "mine.csv"
    _write_user_csv(data)
    for name in ("a", "b"):
        assert (
            train_main(["--no-shared", "--data", str(data), "--out", str(tmp_path / name), "--seed", "3"])
            == 0
        )
    # With --data and no --id the model is registered as TIER-custom, never shadowing the bundled one.
    a, b = tmp_path / "a" / "fast-custom.onnx", tmp_path / "b" / "fast-custom.onnx"
    assert a.read_bytes() == b.read_bytes()


def test_eval_cli_unknown_model_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.training.cli import eval_main

    data = tmp_path / "mine.csv"
    _write_user_csv(data, 2)
    assert eval_main(["--data", str(data), "--model", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


# --- shared corpus (skipped without ../shared/data) ------------------------------------------------

needs_data = pytest.mark.skipif(
    not (SHARED_DATA / D.SILVER).is_file(), reason=f"shared corpus not found at {SHARED_DATA}"
)


@needs_data
def test_silver_split_is_fixed_stratified_and_disjoint() -> None:
    silver = D.read_silver(SHARED_DATA)
    tr, te = D.split_heldout(silver)
    assert len(tr) + len(te) == len(silver) and len(te) == round(0.2 * len(silver))
    assert not set(tr.texts) & set(te.texts)  # silver lines are unique, so index-disjoint is text-disjoint
    again = D.split_heldout(D.read_silver(SHARED_DATA))[1]
    assert again.texts == te.texts
    shares = np.array(list(te.counts().values())) / len(te)
    assert np.allclose(shares, np.array(list(silver.counts().values())) / len(silver), atol=0.01)


@needs_data
def test_smp_readers_map_labels_and_drop_train_overlap() -> None:
    smp = D.read_smp_train(SHARED_DATA)
    assert set(smp.counts()) == set(EMOTIONS) and smp.counts()["excited"] == 0
    test = D.read_smp_usual_test(SHARED_DATA)
    train_texts = set(D.read_smp_train_raw_texts(SHARED_DATA))
    assert test.texts and not any(t in train_texts for t in test.texts)
    assert test.counts()["anxious"] > 0 and test.counts()["excited"] == 0
    assert normalise(test.texts[0])
