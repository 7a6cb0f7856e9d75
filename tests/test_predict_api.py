"""The prediction REST API over a real loopback server: shapes, model choice, and every 4xx case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from engine.classify.registry import ModelRegistry
from engine.emotions import EMOTIONS
from overlay.predict_api import PredictLimits, setup
from tests.servers import run_app
from tests.test_training import tiny_model

LIMITS = PredictLimits(default_model="tiny", max_chars=50, max_inputs=3, max_body_bytes=4000)


@pytest.fixture
async def base(tmp_path: Path) -> AsyncIterator[str]:
    _, blob, _ = tiny_model()
    (tmp_path / "tiny.onnx").write_bytes(blob)
    app = web.Application()
    setup(app, ModelRegistry([tmp_path]), LIMITS)
    async with run_app(app) as url:
        yield url


async def _post(
    url: str, body: object | None = None, raw: bytes | None = None
) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s:
        data = raw if raw is not None else None
        kw: dict[str, object] = {"data": data} if raw is not None else {"json": body}
        async with s.post(url, **kw) as r:  # type: ignore[arg-type]
            return r.status, await r.json()


async def test_predict_one_and_batch(base: str) -> None:
    status, out = await _post(base + "/predict", {"model_id": "tiny", "input_data": "哈哈哈笑死"})
    assert status == 200, out
    assert out["emotion"] == "happy" and out["model_id"] == "tiny"
    scores = out["scores"]
    assert isinstance(scores, dict) and list(scores) == list(EMOTIONS)
    assert out["confidence"] == max(scores.values()) and abs(sum(scores.values()) - 1) < 1e-4
    # model_id is optional: the configured default answers.
    status, out = await _post(base + "/predict/batch", {"inputs": ["退钱骗子", "包邮吗", "https://x.cn"]})
    assert status == 200, out
    preds = out["predictions"]
    assert isinstance(preds, list)
    assert [p["emotion"] for p in preds] == ["angry", "neutral", "neutral"]
    # A text that normalises to nothing (only a URL) is neutral with certainty, as in the pipeline.
    assert preds[2]["confidence"] == 1.0


async def test_bundled_models_are_listed_and_selectable_per_request(base: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(base + "/models") as r:
        assert r.status == 200
        out = await r.json()
    by_id = {m["model_id"]: m for m in out["models"]}
    assert out["default"] == "tiny" and by_id["tiny"]["default"] is True
    assert {"tiny", "fast"} <= set(by_id)
    fast = by_id["fast"]
    assert fast["tier"] == "fast" and fast["size_bytes"] > 0 and fast["file"] == "fast.onnx"
    assert "danmu_heldout_macro_f1" in fast["metrics"]
    status, pred = await _post(base + "/predict", {"model_id": "fast", "input_data": "退钱！骗子"})
    assert status == 200 and pred["model_id"] == "fast" and pred["emotion"] == "angry"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/predict", {"model_id": "nope", "input_data": "哈哈"}, 404, "unknown model 'nope'"),
        ("/predict", {"model_id": "tiny", "input_data": "   "}, 400, "'input_data' is empty"),
        ("/predict", {"model_id": "tiny"}, 400, "missing 'input_data'"),
        ("/predict", {"input_data": 5}, 400, "must be a string"),
        ("/predict", {"input_data": "哈" * 51}, 413, "limit is 50"),
        ("/predict", {"model_id": 3, "input_data": "哈"}, 400, "'model_id' must be"),
        ("/predict", ["哈哈"], 400, "must be a JSON object"),
        ("/predict/batch", {"inputs": ["a", "b", "c", "d"]}, 413, "limit is 3"),
        ("/predict/batch", {"inputs": []}, 400, "'inputs' is empty"),
        ("/predict/batch", {"inputs": "哈哈"}, 400, "must be a list"),
        ("/predict/batch", {"inputs": ["哈哈", ""]}, 400, "inputs[1] is empty"),
        ("/predict/batch", {"model_id": "nope", "inputs": ["哈哈"]}, 404, "known models"),
    ],
)
async def test_bad_requests_get_4xx_with_a_message(
    base: str, path: str, body: object, status: int, needle: str
) -> None:
    got, out = await _post(base + path, body)
    assert got == status, out
    assert needle in str(out["error"])


async def test_bad_json_and_oversized_body(base: str) -> None:
    status, out = await _post(base + "/predict", raw=b'{"input_data": "x"')
    assert status == 400 and "not valid JSON" in str(out["error"])
    status, out = await _post(base + "/predict", raw="哈".encode("gbk"))
    assert status == 400
    status, out = await _post(base + "/predict/batch", raw=b'{"inputs": ["' + b"a" * 5000 + b'"]}')
    assert status == 413 and "4000 bytes" in str(out["error"])


async def test_a_model_trained_after_start_is_found_without_restart(base: str, tmp_path: Path) -> None:
    _, blob, _ = tiny_model(temperature=1.0)
    (tmp_path / "later.onnx").write_bytes(blob)
    status, out = await _post(base + "/predict", {"model_id": "later", "input_data": "退钱"})
    assert status == 200 and out["model_id"] == "later" and out["emotion"] == "angry"
