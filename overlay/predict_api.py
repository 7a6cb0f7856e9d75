"""The prediction REST API: ``POST /predict``, ``POST /predict/batch``, ``GET /models``.

The request and response shapes match the emotion services teams already call from scripts
(``{"model_id", "input_data"}`` -> ``{"emotion", "confidence", "scores"}``). Models run in a worker thread,
never on the event loop; every bad request gets a 4xx with ``{"error": message}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from aiohttp import web

from engine.classify.base import ModelError, ModelInfo
from engine.classify.registry import ModelRegistry
from engine.emotions import EMOTIONS, NEUTRAL_INDEX
from engine.normalise import normalise
from engine.types import Prediction


@dataclass(frozen=True, slots=True)
class PredictLimits:
    """What one request may carry; larger requests are refused with 413, not truncated."""

    default_model: str = "fast"
    max_chars: int = 2000
    max_inputs: int = 1000
    max_body_bytes: int = 1_048_576
    confidence_floor: float = 0.0
    max_run: int = 3


class PredictionPayload(TypedDict):
    """One reading as JSON: the top emotion, its probability and all six probabilities."""

    emotion: str
    confidence: float
    scores: dict[str, float]


class ModelPayload(TypedDict):
    """One registry entry as ``GET /models`` lists it."""

    model_id: str
    tier: str
    file: str
    size_bytes: int
    description: str
    metrics: dict[str, float]
    default: bool


REGISTRY: web.AppKey[ModelRegistry] = web.AppKey("predict_registry", ModelRegistry)
LIMITS: web.AppKey[PredictLimits] = web.AppKey("predict_limits", PredictLimits)

_EMPTY = Prediction("neutral", 1.0, tuple(1.0 if i == NEUTRAL_INDEX else 0.0 for i in range(len(EMOTIONS))))


class BadRequest(Exception):
    """A request the client must fix; carries the HTTP status and the message sent back."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def prediction_payload(p: Prediction, floor: float = 0.0) -> PredictionPayload:
    """The wire form of one prediction; below ``floor`` a non-neutral reading is reported as neutral."""
    emotion = p.emotion
    if floor > 0 and p.confidence < floor and emotion != "neutral":
        emotion = "neutral"
    return {
        "emotion": emotion,
        "confidence": round(p.confidence, 6),
        "scores": {e: round(s, 6) for e, s in zip(EMOTIONS, p.scores, strict=True)},
    }


def model_payload(info: ModelInfo, default_id: str) -> ModelPayload:
    """The wire form of one registry entry (the file name only: the server's paths are not the client's)."""
    return {
        "model_id": info.model_id,
        "tier": info.tier,
        "file": info.path.rsplit("/", 1)[-1],
        "size_bytes": info.size_bytes,
        "description": info.description,
        "metrics": info.metrics,
        "default": info.model_id == default_id,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request, limits: PredictLimits) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise BadRequest(413, f"request body over {limits.max_body_bytes} bytes")
    raw = await request.content.read(limits.max_body_bytes + 1)
    if len(raw) > limits.max_body_bytes:
        raise BadRequest(413, f"request body over {limits.max_body_bytes} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"request body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "request body must be a JSON object")
    return body


def _model_id(body: dict[str, Any], limits: PredictLimits) -> str:
    mid = body.get("model_id", limits.default_model)
    if mid is None:
        return limits.default_model
    if not isinstance(mid, str) or not mid.strip():
        raise BadRequest(400, "'model_id' must be a non-empty string")
    return mid.strip()


def _check_text(value: object, where: str, limits: PredictLimits) -> str:
    if not isinstance(value, str):
        raise BadRequest(400, f"{where} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRequest(400, f"{where} is empty")
    if len(value) > limits.max_chars:
        raise BadRequest(413, f"{where} has {len(value)} characters; the limit is {limits.max_chars}")
    return value


async def _predict(
    registry: ModelRegistry, model_id: str, texts: Sequence[str], max_run: int
) -> list[Prediction]:
    try:
        # Loading may read a file and build a session: off the loop too (the registry is thread-safe).
        model = await asyncio.to_thread(registry.get, model_id)
    except ModelError as exc:
        raise BadRequest(404, str(exc)) from None
    norms = [normalise(t, max_run) for t in texts]
    todo = sorted({n for n in norms if n})
    preds = dict(zip(todo, await asyncio.to_thread(model.predict, todo), strict=True)) if todo else {}
    return [preds[n] if n else _EMPTY for n in norms]


async def predict_one(request: web.Request) -> web.Response:
    """``POST /predict`` ``{"model_id", "input_data"}`` -> ``{"emotion", "confidence", "scores"}``."""
    limits = request.app[LIMITS]
    try:
        body = await _json_object(request, limits)
        mid = _model_id(body, limits)
        if "input_data" not in body:
            raise BadRequest(400, "missing 'input_data' (the text to classify)")
        text = _check_text(body["input_data"], "'input_data'", limits)
        (pred,) = await _predict(request.app[REGISTRY], mid, [text], limits.max_run)
    except BadRequest as exc:
        return _error(exc.status, exc.message)
    return web.json_response(
        {**prediction_payload(pred, limits.confidence_floor), "model_id": mid}, dumps=_dumps
    )


async def predict_batch(request: web.Request) -> web.Response:
    """``POST /predict/batch`` ``{"model_id", "inputs": [...]}`` -> ``{"predictions": [...], "model_id"}``."""
    limits = request.app[LIMITS]
    try:
        body = await _json_object(request, limits)
        mid = _model_id(body, limits)
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise BadRequest(400, "'inputs' must be a list of strings")
        if not inputs:
            raise BadRequest(400, "'inputs' is empty")
        if len(inputs) > limits.max_inputs:
            raise BadRequest(413, f"{len(inputs)} inputs; the limit is {limits.max_inputs} per request")
        texts = [_check_text(t, f"inputs[{i}]", limits) for i, t in enumerate(inputs)]
        preds = await _predict(request.app[REGISTRY], mid, texts, limits.max_run)
    except BadRequest as exc:
        return _error(exc.status, exc.message)
    floor = limits.confidence_floor
    return web.json_response(
        {"predictions": [prediction_payload(p, floor) for p in preds], "model_id": mid}, dumps=_dumps
    )


async def list_models(request: web.Request) -> web.Response:
    """``GET /models``: every model the registry knows (bundled and trained), with size, speed and scores."""
    registry = request.app[REGISTRY]
    limits = request.app[LIMITS]

    def collect() -> list[ModelInfo]:
        registry.refresh()
        return registry.infos()

    infos = await asyncio.to_thread(collect)
    return web.json_response(
        {"default": limits.default_model, "models": [model_payload(i, limits.default_model) for i in infos]},
        dumps=_dumps,
    )


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def setup(app: web.Application, registry: ModelRegistry, limits: PredictLimits) -> None:
    """Add the prediction routes; ``registry`` is the one the pipeline uses, so ids agree."""
    app[REGISTRY] = registry
    app[LIMITS] = limits
    app.router.add_post("/predict", predict_one, name="predict")
    app.router.add_post("/predict/batch", predict_batch, name="predict_batch")
    app.router.add_get("/models", list_models, name="models")
