"""Build the fast tier's ONNX graph by hand: ids + tf -> tf-idf, L2 norm -> linear -> / T -> softmax."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from onnx import helper

    k = len(EMOTIONS)
    inits, nodes = _common_inits(intercept, temperature)
    for b, (b_idf, b_coef) in enumerate([(idf, coef), *extra_blocks]):
        # Block 0 keeps the single-block names, so the fast tier's graph is unchanged.
        _linear_block(nodes, inits, "" if b == 0 else f"_{b}", feat.size, b_idf, b_coef, k)
        if b > 0:
            prev = "lin" if b == 1 else f"lin_sum_{b - 1}"
            nodes.append(helper.make_node("Add", [prev, f"lin_{b}"], [f"lin_sum_{b}"]))
    total = "lin" if not extra_blocks else f"lin_sum_{len(extra_blocks)}"
    nodes += [
        helper.make_node("Add", [total, "bias"], ["logits"]),
        helper.make_node("Mul", ["logits", "inv_temperature"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probs"], axis=1),
    ]
    return _serialise(
        nodes,
        inits,
        feat,
        temperature,
        model_id=model_id,
        tier=tier,
        description=description,
        metrics=metrics,
    )


@dataclass(frozen=True, slots=True)
class RouteBlocks:
    """The prose expert and the router of a routed model, as blocks over the exported vocabulary.

    probs = (1 - g) * softmax(chat / T) + g * softmax(prose / T_prose), g = sigmoid(router), where
    router = w · x_r + len_coef * ln(1 + known ids) + router_bias (see engine/training/route.py).
    """

    prose_idf: npt.NDArray[np.float32]
    prose_coef: npt.NDArray[np.float64]
    prose_bias: npt.NDArray[np.float64]
    prose_temperature: float
    router_idf: npt.NDArray[np.float32]
    router_coef: npt.NDArray[np.float64]
    len_coef: float
    router_bias: float


PROB_FLOOR = 1e-30
"""Floor under the mixed probability before ``Log``: the ``logits`` output stays finite."""


def build_routed_model(
    feat: Featuriser,
    chat_blocks: Sequence[tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]],
    chat_bias: npt.NDArray[np.float64],
    temperature: float,
    route: RouteBlocks,
    *,
    model_id: str,
    tier: str,
    description: str,
    metrics: Mapping[str, float],
) -> bytes:
    """A chat model and a prose (Weibo) model mixed per message by a learnt router, as one graph.

    ``probs`` is the calibrated mixture; ``logits`` is the log of the same mixture without either
    temperature, so ``softmax(logits)`` is the uncalibrated model, as for the single-model graphs.
    """
    from onnx import helper, numpy_helper

    k = len(EMOTIONS)
    inits, nodes = _common_inits(chat_bias, temperature)
    for b, (b_idf, b_coef) in enumerate(chat_blocks):
        _linear_block(nodes, inits, f"_c{b}", feat.size, b_idf, b_coef, k)
        if b > 0:
            prev = "lin_c0" if b == 1 else f"chat_sum_{b - 1}"
            nodes.append(helper.make_node("Add", [prev, f"lin_c{b}"], [f"chat_sum_{b}"]))
    chat_total = "lin_c0" if len(chat_blocks) == 1 else f"chat_sum_{len(chat_blocks) - 1}"
    _linear_block(nodes, inits, "_prose", feat.size, route.prose_idf, route.prose_coef, k)
    _linear_block(nodes, inits, "_router", feat.size, route.router_idf, route.router_coef, 1)
    f32 = np.float32
    inits += [
        numpy_helper.from_array(np.asarray(route.prose_bias, dtype=f32).reshape(k), "prose_bias"),
        numpy_helper.from_array(np.array(1.0 / route.prose_temperature, dtype=f32), "inv_prose_temperature"),
        numpy_helper.from_array(np.array(route.len_coef, dtype=f32), "len_coef"),
        numpy_helper.from_array(np.array(route.router_bias, dtype=f32), "router_bias"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_id"),
        numpy_helper.from_array(np.array(1.0, dtype=f32), "one"),
        numpy_helper.from_array(np.array(PROB_FLOOR, dtype=f32), "prob_floor"),
    ]
    node = helper.make_node
    nodes += [
        node("Add", [chat_total, "bias"], ["chat"]),
        node("Add", ["lin_prose", "prose_bias"], ["prose"]),
        # The router also reads the message's length, as ln(1 + number of known n-grams).
        node("Greater", ["ids", "zero_id"], ["known"]),
        node("Cast", ["known"], ["known_f"], to=1),
        node("ReduceSum", ["known_f", "axis1"], ["n_known"], keepdims=1),
        node("Add", ["n_known", "one"], ["n_known_1"]),
        node("Log", ["n_known_1"], ["log_len"]),
        node("Mul", ["log_len", "len_coef"], ["len_term"]),
        node("Add", ["lin_router", "len_term"], ["route_lin"]),
        node("Add", ["route_lin", "router_bias"], ["route_logit"]),
        node("Sigmoid", ["route_logit"], ["gate"]),
        # Calibrated: each expert's own temperature, then the mixture.
        node("Mul", ["chat", "inv_temperature"], ["chat_scaled"]),
        node("Softmax", ["chat_scaled"], ["p_chat"], axis=1),
        node("Mul", ["prose", "inv_prose_temperature"], ["prose_scaled"]),
        node("Softmax", ["prose_scaled"], ["p_prose"], axis=1),
        node("Sub", ["p_prose", "p_chat"], ["p_delta"]),
        node("Mul", ["gate", "p_delta"], ["p_shift"]),
        node("Add", ["p_chat", "p_shift"], ["probs"]),
        # Uncalibrated: the same mixture at T = 1, as log-probabilities.
        node("Softmax", ["chat"], ["q_chat"], axis=1),
        node("Softmax", ["prose"], ["q_prose"], axis=1),
        node("Sub", ["q_prose", "q_chat"], ["q_delta"]),
        node("Mul", ["gate", "q_delta"], ["q_shift"]),
        node("Add", ["q_chat", "q_shift"], ["q_mix"]),
        node("Max", ["q_mix", "prob_floor"], ["q_floor"]),
        node("Log", ["q_floor"], ["logits"]),
    ]
    return _serialise(
        nodes,
        inits,
        feat,
        temperature,
        model_id=model_id,
        tier=tier,
        description=description,
        metrics=metrics,
    )


def _common_inits(intercept: npt.NDArray[np.float64], temperature: float) -> tuple[list[Any], list[Any]]:
    from onnx import numpy_helper

    k = len(EMOTIONS)
    inits = [
        numpy_helper.from_array(np.asarray(intercept, dtype=np.float32).reshape(k), "bias"),
        numpy_helper.from_array(np.array(1.0 / temperature, dtype=np.float32), "inv_temperature"),
        numpy_helper.from_array(np.array(NORM_EPS, dtype=np.float32), "eps"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    return inits, []


def _linear_block(
    nodes: list[Any],
    inits: list[Any],
    sfx: str,
    size: int,
    idf: npt.NDArray[np.float32],
    coef: npt.NDArray[np.float64],
    width: int,
) -> None:
    """Nodes for ``lin{sfx} = W · (idf·tf / ||idf·tf||)`` gathered per token: ``[batch, width]``."""
    from onnx import helper, numpy_helper

    w = np.ascontiguousarray(np.asarray(coef, dtype=np.float32).reshape(width, -1).T)
    if w.shape != (size, width) or idf.shape != (size,):
        raise ValueError(
            f"block{sfx}: weights {w.shape} / idf {idf.shape} do not fit vocab size {size} x {width}"
        )
    w[0] = 0.0
    inits += [
        numpy_helper.from_array(np.asarray(idf, dtype=np.float32), "idf" + sfx),
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


def _serialise(
    nodes: list[Any],
    inits: list[Any],
    feat: Featuriser,
    temperature: float,
    *,
    model_id: str,
    tier: str,
    description: str,
    metrics: Mapping[str, float],
) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    k = len(EMOTIONS)
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
