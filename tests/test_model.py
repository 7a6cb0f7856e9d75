"""The ONNX runtime model and the registry: loading, predictions, errors, thread safety, the bundled model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from engine.classify.base import ModelError
from engine.classify.onnx_model import OnnxEmotionModel
from engine.classify.registry import BUNDLED_DIR, ModelRegistry
from engine.emotions import EMOTIONS
from engine.normalise import normalise
from engine.training.linear import softmax
from tests.test_training import tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    _, blob, _ = tiny_model(temperature=0.8)
    (d / "tiny.onnx").write_bytes(blob)
    return d


def test_onnx_model_reads_metadata_and_predicts(tiny_dir: Path) -> None:
    m = OnnxEmotionModel(tiny_dir / "tiny.onnx")
    assert m.info.model_id == "tiny" and m.info.tier == "test"
    assert m.info.metrics == {"macro_f1": 1.0} and m.info.size_bytes > 0
    assert m.temperature == pytest.approx(0.8)
    preds = m.predict(["哈哈哈", "退钱", "包邮吗"])
    assert [p.emotion for p in preds] == ["happy", "angry", "neutral"]
    for p in preds:
        assert len(p.scores) == len(EMOTIONS) and sum(p.scores) == pytest.approx(1.0, abs=1e-5)
        assert p.confidence == max(p.scores) and p.as_dict()[p.emotion] == p.confidence
    assert m.predict([]) == []


def test_probabilities_are_temperature_scaled_logits(tiny_dir: Path) -> None:
    m = OnnxEmotionModel(tiny_dir / "tiny.onnx")
    texts = ["哈哈哈笑死", "呜呜心疼", ""]
    np.testing.assert_allclose(
        m.probabilities(texts), softmax(m.logits(texts).astype(np.float64) / 0.8), atol=1e-6
    )


def test_large_batches_are_sliced_consistently(tiny_dir: Path) -> None:
    m = OnnxEmotionModel(tiny_dir / "tiny.onnx")
    texts = ["哈哈哈", "退钱骗子", "包邮吗吗"] * 700
    whole = m.probabilities(texts)
    assert whole.shape == (2100, 6)
    np.testing.assert_allclose(whole[:3], m.probabilities(texts[:3]), atol=1e-6)


def test_predict_is_thread_safe(tiny_dir: Path) -> None:
    m = OnnxEmotionModel(tiny_dir / "tiny.onnx")
    batches = [["哈哈哈", "退钱", "包邮吗", "快点急"][: 1 + i % 4] * (1 + i % 5) for i in range(64)]
    expected = [[p.emotion for p in m.predict(b)] for b in batches]
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda b: [p.emotion for p in m.predict(b)], batches))
    assert got == expected


def test_missing_and_corrupt_files_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        OnnxEmotionModel(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf at all")
    with pytest.raises(ModelError, match="cannot be loaded"):
        OnnxEmotionModel(bad)


def test_onnx_without_moodcast_metadata_is_rejected(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["ids"], ["probs"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("probs", TensorProto.INT64, [1])],
    )
    p = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), p)
    with pytest.raises(ModelError, match="metadata"):
        OnnxEmotionModel(p)


def test_registry_ids_get_register_and_errors(tiny_dir: Path, tmp_path: Path) -> None:
    reg = ModelRegistry([tiny_dir], bundled=None)
    assert reg.ids() == ["tiny"]
    m = reg.get("tiny")
    assert reg.get("tiny") is m  # loaded once
    assert reg.get(str(tiny_dir / "tiny.onnx")) is m  # a path to a known file is the same model
    with pytest.raises(ModelError, match=r"unknown model 'fast'; known models: tiny"):
        reg.get()
    copy = tmp_path / "fresh.onnx"
    copy.write_bytes((tiny_dir / "tiny.onnx").read_bytes())
    assert reg.register(copy) == "fresh"
    assert set(reg.ids()) == {"tiny", "fresh"}
    assert reg.get("fresh").info.model_id == "fresh"
    with pytest.raises(ModelError, match="not found"):
        reg.get(str(tmp_path / "missing.onnx"))


def test_registry_lists_corrupt_file_without_hiding_the_rest(tiny_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"\x00garbage")
    reg = ModelRegistry([tiny_dir, tmp_path], bundled=None)
    infos = {i.model_id: i for i in reg.infos()}
    assert infos["tiny"].tier == "test"
    assert infos["broken"].tier == "error" and "cannot be loaded" in infos["broken"].description
    with pytest.raises(ModelError, match="broken"):
        reg.get("broken")


def test_registry_loads_once_under_concurrency(tiny_dir: Path) -> None:
    reg = ModelRegistry([tiny_dir], bundled=None)
    with ThreadPoolExecutor(8) as ex:
        models = list(ex.map(lambda _: reg.get("tiny"), range(32)))
    assert all(m is models[0] for m in models)


# --- the bundled model -----------------------------------------------------------------------------

needs_bundled = pytest.mark.skipif(
    not (BUNDLED_DIR / "fast.onnx").is_file(), reason="engine/models/fast.onnx has not been trained yet"
)


@needs_bundled
def test_bundled_fast_model_is_the_default_and_small() -> None:
    reg = ModelRegistry()
    assert "fast" in reg.ids() and reg.default_id == "fast"
    info = reg.get().info
    assert info.model_id == "fast" and info.tier == "fast"
    assert info.size_bytes <= 5 * 1024 * 1024
    assert "danmu_heldout_macro_f1" in info.metrics


@needs_bundled
@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("哈哈哈笑死我了", "happy"),
        ("主播好可爱", "happy"),
        ("谢谢主播", "happy"),
        ("666666", "excited"),
        ("卧槽牛逼", "excited"),
        ("退钱骗子", "angry"),
        ("恶心", "angry"),
        ("呜呜呜", "sad"),
        ("心疼", "sad"),
        ("吓死我了", "anxious"),
        ("急死了", "anxious"),
        ("包邮吗", "neutral"),
        ("这个尺寸是多少", "neutral"),
        ("几号发货", "neutral"),
    ],
)
def test_bundled_fast_model_reads_obvious_cases(text: str, emotion: str) -> None:
    (pred,) = ModelRegistry().get("fast").predict([normalise(text)])
    assert pred.emotion == emotion, pred.as_dict()
