"""Helpers for channel-rule tests: small ONNX text graphs, exact pruning checks, node lookups."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

import onnxprune
from onnxprune import ir
from onnxprune.surgery import apply_plan
from onnxprune.testing import oracle

HEADER = '<ir_version: {ir}, opset_import: ["" : {opset}]>\n'

DYNAMIC_CONV_GEMM = """
g (float[N,3,H,W] x) => (float[N,4] y) {
    a = Conv <pads = [1, 1, 1, 1]> (x, w1)
    b = Relu (a)
    c = Conv <pads = [1, 1, 1, 1]> (b, w2)
    d = Relu (c)
    e = GlobalAveragePool (d)
    f = Flatten (e)
    y = Gemm <transB = 1> (f, w3)
}
"""
"""Input dims all dynamic but the channels (like PP-OCR cls): two prunable groups, the Gemm
output a barrier. Its weights: :data:`DYNAMIC_CONV_GEMM_W`."""
DYNAMIC_CONV_GEMM_W = {"w1": (8, 3, 3, 3), "w2": (8, 8, 3, 3), "w3": (4, 8)}


def scaled_model(graph: str, weights: Mapping[str, tuple[int, ...]], *, opset: int = 17,
                 seed: int = 0) -> ir.ModelProto:
    """Parse ``graph`` and add seeded normal weights scaled by 1/sqrt(fan-in), checked.

    No shape inference: the graph's dims may stay dynamic.
    """
    rng = np.random.default_rng(seed)
    proto = ir.parse_model(HEADER.format(ir=8, opset=opset) + graph)
    for name, shape in weights.items():
        w = (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)
        proto.graph.initializer.append(ir.from_array(w, name))
    ir.check_model(proto, full_check=True)
    return proto


def build(
    graph: str,
    weights: Mapping[str, tuple[int, ...] | np.ndarray],
    *,
    opset: int = 13,
    seed: int = 0,
) -> onnxprune.Model:
    """Parse ``graph`` (ONNX text), add weights (a shape = seeded normal floats), load it."""
    rng = np.random.default_rng(seed)
    ir_version = 8 if opset <= 18 else 9 if opset <= 20 else 10
    proto = ir.parse_model(HEADER.format(ir=ir_version, opset=opset) + graph)
    for out in proto.graph.output:
        if not out.type.tensor_type.shape.dim:  # `float y`: let shape inference fill it in
            out.type.tensor_type.ClearField("shape")
    for name, w in weights.items():
        value = w if isinstance(w, np.ndarray) else rng.standard_normal(w).astype(np.float32)
        proto.graph.initializer.append(ir.from_array(value, name))
    proto = ir.infer_shapes_plain(proto, strict=True)
    del proto.graph.value_info[:]
    ir.check_model(proto, full_check=True)
    return onnxprune.load(proto)


def prune_exact(model: onnxprune.Model, plan: dict[int, list[int]]) -> ir.ModelProto:
    """Prune with ``plan`` and check the result against the zeroed original in onnxruntime."""
    pruned = apply_plan(model, plan)
    feeds = oracle.random_feeds(model, seed=1)
    want = oracle.run(oracle.zeroed(model, plan), feeds)
    assert oracle.max_rel_error(oracle.run(pruned, feeds), want) <= 1e-5
    return pruned


def structure(model: onnxprune.Model) -> list[tuple[int, bool]]:
    """(size, prunable) of every group, in group order."""
    return [(g.size, g.prunable) for g in model.groups.groups]


def node(proto: ir.ModelProto, name: str) -> ir.NodeProto:
    """The node called ``name``."""
    return next(n for n in proto.graph.node if n.name == name)


def const_input(proto: ir.ModelProto, name: str, i: int) -> np.ndarray:
    """Value of input ``i`` of node ``name`` (an initializer)."""
    tensor = node(proto, name).input[i]
    return ir.to_array(next(t for t in proto.graph.initializer if t.name == tensor))


def attr(proto: ir.ModelProto, name: str, key: str) -> object:
    """Attribute ``key`` of node ``name``."""
    a = next(a for a in node(proto, name).attribute if a.name == key)
    return ir.attribute_value(a)


def original(model: onnxprune.Model, name: str) -> np.ndarray:
    """An initializer of the original model."""
    return ir.to_array(next(t for t in model.proto.graph.initializer if t.name == name))
