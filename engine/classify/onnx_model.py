"""An EmotionModel backed by one .onnx file: featurise in Python, score in onnxruntime on one thread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.classify.base import ModelError, ModelInfo
from engine.classify.features import Featuriser
from engine.emotions import EMOTIONS
from engine.types import Prediction

# The metadata keys of our ONNX files; engine/training/export.py writes them from these names.
META_ID = "moodcast.model_id"
META_TIER = "moodcast.tier"
META_LABELS = "moodcast.labels"
META_FEATURISER = "moodcast.featuriser"
META_TEMPERATURE = "moodcast.temperature"
META_METRICS = "moodcast.metrics"
META_DESCRIPTION = "moodcast.description"

MAX_BATCH = 1024
"""Larger batches are scored in slices: the padded grid grows with the batch's longest text."""


BENCH_SUFFIX = ".bench.json"
"""Sidecar written by bench/model_bench.py: measured speed and memory, merged into ``info.metrics``."""


def read_bench(model_path: Path) -> dict[str, float]:
    """The ``bench_*`` numbers measured for a model file, or nothing if it was never benchmarked."""
    side = model_path.with_name(model_path.stem + BENCH_SUFFIX)
    try:
        raw = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {f"bench_{k}": float(v) for k, v in raw.items() if isinstance(v, (int, float))}


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # The pipeline owns the parallelism (one classify worker per room set); onnxruntime's own thread
    # pool would fight it for the same cores.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxEmotionModel:
    """A moodcast .onnx model; ``predict`` is thread-safe (onnxruntime ``run`` is, the featuriser is pure)."""

    def __init__(self, path: Path | str, model_id: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found")
        try:
            self._sess = _session(self.path)
        except Exception as exc:  # onnxruntime raises its own exception types for bad protobufs
            raise ModelError(f"model file {self.path} cannot be loaded: {exc}") from exc
        meta: dict[str, str] = dict(self._sess.get_modelmeta().custom_metadata_map)
        try:
            labels = json.loads(meta[META_LABELS])
            self.featuriser = Featuriser.from_json(meta[META_FEATURISER])
            self.temperature = float(meta.get(META_TEMPERATURE, "1.0"))
            metrics_raw = json.loads(meta.get(META_METRICS, "{}"))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"model file {self.path} lacks valid moodcast metadata: {exc!r}") from exc
        if tuple(labels) != EMOTIONS:
            raise ModelError(f"model file {self.path} has labels {labels}, expected {list(EMOTIONS)}")
        inputs = {i.name for i in self._sess.get_inputs()}
        if inputs != {"ids", "tf"}:
            raise ModelError(f"model file {self.path} takes inputs {sorted(inputs)}, expected ids and tf")
        metrics = {str(k): float(v) for k, v in metrics_raw.items() if isinstance(v, (int, float))}
        metrics.update(read_bench(self.path))
        tier = meta.get(META_TIER, "custom")
        self._info = ModelInfo(
            model_id=model_id or meta.get(META_ID) or self.path.stem,
            tier=tier,
            path=str(self.path),
            size_bytes=self.path.stat().st_size,
            description=meta.get(META_DESCRIPTION, ""),
            metrics=metrics,
        )

    @property
    def info(self) -> ModelInfo:
        """Id, tier, file, size, description and the metrics recorded at training time."""
        return self._info

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Calibrated probabilities ``[n, 6]`` (temperature is in the graph) for normalised texts."""
        return self._run("probs", texts)

    def logits(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Uncalibrated scores ``[n, 6]``: softmax of these is the model before temperature scaling."""
        return self._run("logits", texts)

    def _run(self, output: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), MAX_BATCH):
            ids, tf = self.featuriser.transform(texts[start : start + MAX_BATCH])
            try:
                (res,) = self._sess.run([output], {"ids": ids, "tf": tf})
            except Exception as exc:
                raise ModelError(f"model {self._info.model_id} failed to run: {exc}") from exc
            parts.append(res)
        out: npt.NDArray[np.float32] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Read already-normalised texts; one Prediction per text, scores in EMOTIONS order."""
        probs = self.probabilities(texts)
        best = probs.argmax(axis=1)
        rows = probs.tolist()
        return [
            Prediction(emotion=EMOTIONS[b], confidence=row[b], scores=tuple(row))
            for b, row in zip(best.tolist(), rows, strict=True)
        ]

    def __repr__(self) -> str:
        return f"OnnxEmotionModel({self._info.model_id!r}, {str(self.path)!r})"
