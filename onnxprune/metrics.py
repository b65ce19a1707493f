"""Model cost from shapes: MACs of the weight-bearing ops, parameter count, file size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from onnxprune import ir


@dataclass(frozen=True)
class Cost:
    """MACs (multiply-accumulates) of the ops in :data:`MAC_OPS`, parameters and bytes."""

    macs: int
    params: int
    size_bytes: int
    node_macs: Mapping[str, int]


def _prod(xs: Sequence[int]) -> int:
    return int(np.prod(xs, dtype=np.int64)) if len(xs) else 1


RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
"""Gate blocks of each recurrent op (rows of W and R per direction and hidden unit)."""


MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", *RECURRENT_GATES,
           "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul")
"""Ops whose MACs are counted (the weight-bearing ones, float and quantised)."""


def recurrent_macs(op: str, x: Sequence[int], w: Sequence[int]) -> tuple[int, int]:
    """MACs of a recurrent op: (input projection X·Wᵀ, recurrence H·Rᵀ), gates included.

    Args:
        op: "LSTM", "GRU" or "RNN".
        x: X's shape (``[T, N, I]``, or ``[N, T, I]`` with ``layout=1``).
        w: W's shape ``[num_directions, gates·hidden, input_size]``.

    """
    steps_batch = int(x[0]) * int(x[1])
    rows = int(w[0]) * int(w[1])  # directions x gates x hidden
    hidden = int(w[1]) // RECURRENT_GATES[op]
    return steps_batch * rows * int(w[2]), steps_batch * rows * hidden


def node_macs(
    op: str, attrs: Mapping[str, object], in_shapes: Sequence[tuple[int, ...] | None],
    out_shape: tuple[int, ...] | None,
) -> int:
    """MACs of one node from its input/output shapes (0 for ops without weights or shapes)."""
    if out_shape is None or not in_shapes or in_shapes[0] is None:
        return 0
    x = in_shapes[0]
    w_at = 3 if op in ("QLinearConv", "QLinearMatMul") else 1  # quantised ops: after scale/zp
    w = in_shapes[w_at] if len(in_shapes) > w_at else None
    if op in ("Conv", "ConvInteger", "QLinearConv") and w is not None:
        return _prod(out_shape) * _prod(w[1:])
    if op == "ConvTranspose" and w is not None:
        return _prod(x) * _prod(w[1:])
    if op == "Gemm" and w is not None:
        k = x[0] if attrs.get("transA", 0) else x[-1]
        return _prod(out_shape) * int(k)
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul") and w is not None:
        return _prod(out_shape) * int(x[-1])
    if op in RECURRENT_GATES and w is not None:
        return sum(recurrent_macs(op, x, w))
    return 0


def cost(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]] | None = None) -> Cost:
    """Count MACs, parameters and serialised size of ``model``.

    Args:
        model: the model; dynamic input dims must be resolved (``ir.with_input_shapes``) or
            given as ``shapes``.
        shapes: static tensor shapes; inferred from ``model`` when omitted.

    """
    if shapes is None:
        shapes = ir.static_shapes(ir.infer_shapes(model))
    consts = {t.name: tuple(t.dims) for t in model.graph.initializer}
    per_node: dict[str, int] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type not in MAC_OPS:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        ins = [shapes.get(n) or consts.get(n) for n in node.input]
        per_node[node.name or f"{node.op_type}_{i}"] = node_macs(
            node.op_type, attrs, ins, shapes.get(node.output[0])
        )
    # Parameters are float weights; int64 shape/axes constants are not counted.
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
              onnx.TensorProto.BFLOAT16}
    # Weights stored quantised (int8/uint8, and int32 biases behind a DequantizeLinear) count.
    dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    ints = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    params = sum(
        _prod(t.dims) for t in model.graph.initializer
        if t.data_type in floats or t.data_type in ints
        or (t.data_type == onnx.TensorProto.INT32 and t.name in dequantized)
    )
    for node in model.graph.node:
        if node.op_type == "Constant":
            params += sum(
                _prod(a.t.dims) for a in node.attribute
                if a.HasField("t") and a.t.data_type in floats
            )
    return Cost(sum(per_node.values()), params, ir.model_bytes(model), per_node)
