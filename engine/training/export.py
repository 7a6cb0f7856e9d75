"""Build the fast tier's ONNX graph by hand: ids + tf -> tf-idf, L2 norm -> linear -> / T -> softmax."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.classify.features import Featuriser
from engine.classify.onnx_model import (
    META_DESCRIPTION,
    META_FEATURISER,
    META_ID,
    META_LABELS,
    META_METRICS,
    META_TEMPERATURE,
    META_TIER,
)
from engine.emotions import EMOTIONS
from engine.training.linear import NORM_EPS

OPSET = 17
IR_VERSION = 8
"""Old enough for every onnxruntime the project accepts (>= 1.17), new enough for ReduceSum axes inputs."""
FORMAT_VERSION = "1"

# The metadata keys are defined once, by the runtime that reads them.
META_FORMAT = "moodcast.format"


def build_model(
    feat: Featuriser,
    idf: npt.NDArray[np.float32],
    coef: npt.NDArray[np.float64],
    intercept: npt.NDArray[np.float64],
    temperature: float,
    *,
    model_id: str,
    tier: str,
    description: str,
    metrics: Mapping[str, float],
    extra_blocks: Sequence[tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]] = (),
) -> bytes:
    """Serialized ONNX model; ``coef`` is sklearn's ``[classes, features]`` with column 0 = padding.

    ``extra_blocks`` are further ``(idf, coef)`` pairs over the same ids, each L2-normalised on its own
    before its linear map; the accurate tier uses one for the Weibo model it stacks (see stack.py).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = len(EMOTIONS)
    inits = [
        numpy_helper.from_array(np.asarray(intercept, dtype=np.float32).reshape(k), "bias"),
        numpy_helper.from_array(np.array(1.0 / temperature, dtype=np.float32), "inv_temperature"),
        numpy_helper.from_array(np.array(NORM_EPS, dtype=np.float32), "eps"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = []
    for b, (b_idf, b_coef) in enumerate([(idf, coef), *extra_blocks]):
        w = np.ascontiguousarray(np.asarray(b_coef, dtype=np.float32).T)
        if w.shape != (feat.size, k) or b_idf.shape != (feat.size,):
            raise ValueError(
                f"block {b}: weights {w.shape} / idf {b_idf.shape} do not fit vocab size {feat.size} x {k}"
            )
        w[0] = 0.0
        # Block 0 keeps the single-block names, so the fast tier's graph is unchanged.
        sfx = "" if b == 0 else f"_{b}"
        inits += [
            numpy_helper.from_array(np.asarray(b_idf, dtype=np.float32), "idf" + sfx),
            numpy_helper.from_array(w, "weight" + sfx),
        ]
        nodes += [
            helper.make_node("Gather", ["idf" + sfx, "ids"], ["tok_idf" + sfx]),
            helper.make_node("Mul", ["tok_idf" + sfx, "tf"], ["v" + sfx]),
            helper.make_node("Mul", ["v" + sfx, "v" + sfx], ["v_sq" + sfx]),
            helper.make_node("ReduceSum", ["v_sq" + sfx, "axis1"], ["sum_sq" + sfx], keepdims=1),
            helper.make_node("Max", ["sum_sq" + sfx, "eps"], ["sum_sq_floor" + sfx]),
            helper.make_node("Sqrt", ["sum_sq_floor" + sfx], ["norm" + sfx]),
            helper.make_node("Div", ["v" + sfx, "norm" + sfx], ["x" + sfx]),
            helper.make_node("Unsqueeze", ["x" + sfx, "axis1"], ["x_row" + sfx]),
            helper.make_node("Gather", ["weight" + sfx, "ids"], ["tok_w" + sfx]),
            # [B,1,L] @ [B,L,K]: the weighted sum over tokens as one batched matmul.
            helper.make_node("MatMul", ["x_row" + sfx, "tok_w" + sfx], ["lin3" + sfx]),
            helper.make_node("Squeeze", ["lin3" + sfx, "axis1"], ["lin" + sfx]),
        ]
        if b > 0:
            prev = "lin" if b == 1 else f"lin_sum_{b - 1}"
            nodes.append(helper.make_node("Add", [prev, "lin" + sfx], [f"lin_sum_{b}"]))
    total = "lin" if not extra_blocks else f"lin_sum_{len(extra_blocks)}"
    nodes += [
        helper.make_node("Add", [total, "bias"], ["logits"]),
        helper.make_node("Mul", ["logits", "inv_temperature"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        f"moodcast_{tier}",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "len"]),
            helper.make_tensor_value_info("tf", TensorProto.FLOAT, ["batch", "len"]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", k]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="moodcast",
        ir_version=IR_VERSION,
    )
    meta = {
        META_FORMAT: FORMAT_VERSION,
        META_ID: model_id,
        META_TIER: tier,
        META_LABELS: json.dumps(list(EMOTIONS)),
        META_FEATURISER: feat.to_json(),
        META_TEMPERATURE: repr(float(temperature)),
        META_METRICS: json.dumps({k2: float(v) for k2, v in metrics.items()}, sort_keys=True),
        META_DESCRIPTION: description,
    }
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def write_model(data: bytes, path: Path) -> Path:
    """Write atomically, so a registry scanning the folder never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
