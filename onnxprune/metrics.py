"""Model cost from shapes: MACs of the weight-bearing ops, parameter count, file size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from onnxprune import ir
from onnxprune.channels.rules import weight_op
from onnxprune.channels.rules.recurrent import recurrent_macs
from onnxprune.opspec import GATES as RECURRENT_GATES

__all__ = ["RECURRENT_GATES", "Cost", "cost", "node_macs", "recurrent_macs"]


@dataclass(frozen=True)
class Cost:
    """MACs (multiply-accumulates) of the weight-bearing ops, parameters and bytes.

    ``node_macs`` has an entry for every node whose rule declares MACs (:class:`WeightOp`).
    """

    macs: int
    params: int
    size_bytes: int
    node_macs: Mapping[str, int]


def _prod(xs: Sequence[int]) -> int:
    return int(np.prod(xs, dtype=np.int64)) if len(xs) else 1


def node_macs(
    op: str, attrs: Mapping[str, object], in_shapes: Sequence[tuple[int, ...] | None],
    out_shape: tuple[int, ...] | None, domain: str = "",
) -> int:
    """MACs of one node from its input/output shapes (0 for ops without weights or shapes).

    What an op's MACs are is declared on its channel rule (:class:`WeightOp`).
    """
    wop = weight_op(op, domain)
    return 0 if wop is None else wop.node_macs(attrs, in_shapes, out_shape)


def cost(model: ir.ModelProto, shapes: Mapping[str, tuple[int, ...]] | None = None) -> Cost:
    """Count MACs, parameters and serialised size of ``model``.

    Args:
        model: the model; dynamic input dims must be resolved (``ir.with_input_shapes``) or
            given as ``shapes``.
        shapes: static tensor shapes; inferred from ``model`` when omitted.

    """
    if shapes is None:
        shapes = ir.inferred_shapes(model)
    consts = {t.name: tuple(t.dims) for t in model.graph.initializer}
    per_node: dict[str, int] = {}
    for i, node in enumerate(model.graph.node):
        wop = weight_op(node.op_type, node.domain)
        if wop is None or wop.macs is None:
            continue
        attrs = ir.attributes(node)
        ins = [shapes.get(n) or consts.get(n) for n in node.input]
        per_node[node.name or f"{node.op_type}_{i}"] = wop.node_macs(
            attrs, ins, shapes.get(node.output[0])
        )
    # Parameters are float weights; int64 shape/axes constants are not counted.
    floats = {ir.data_type(n) for n in ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16")}
    # Weights stored quantised (int8/uint8, and int32 biases behind a DequantizeLinear) count.
    dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    ints = {ir.data_type("INT8"), ir.data_type("UINT8")}
    params = sum(
        _prod(t.dims) for t in model.graph.initializer
        if t.data_type in floats or t.data_type in ints
        or (t.data_type == ir.data_type("INT32") and t.name in dequantized)
    )
    for node in model.graph.node:
        if node.op_type == "Constant":
            params += sum(
                _prod(a.t.dims) for a in node.attribute
                if a.HasField("t") and a.t.data_type in floats
            )
    return Cost(sum(per_node.values()), params, ir.model_bytes(model), per_node)
