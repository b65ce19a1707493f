"""Reduction and softmax channel rules: channels pass unless the op works across them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import onnxprune
from onnxprune.surgery import apply_plan
from onnxprune.testing import oracle

# -- shared helpers (each rule test file is standalone) ---------------------------------------

HEADER = '<ir_version: {ir}, opset_import: ["" : {opset}]>\n'


def build(
    graph: str, weights: Mapping[str, tuple[int, ...] | np.ndarray], *, opset: int = 13,
    seed: int = 0,
) -> onnxprune.Model:
    """Parse ``graph`` (ONNX text), add weights (a shape = seeded normal floats), load it."""
    rng = np.random.default_rng(seed)
    ir_version = 8 if opset <= 18 else 9 if opset <= 20 else 10
    proto = onnx.parser.parse_model(HEADER.format(ir=ir_version, opset=opset) + graph)
    for out in proto.graph.output:
        if not out.type.tensor_type.shape.dim:  # `float y`: let shape inference fill it in
            out.type.tensor_type.ClearField("shape")
    for name, w in weights.items():
        value = w if isinstance(w, np.ndarray) else rng.standard_normal(w).astype(np.float32)
        proto.graph.initializer.append(numpy_helper.from_array(value, name))
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    del proto.graph.value_info[:]
    onnx.checker.check_model(proto, full_check=True)
    return onnxprune.load(proto)


def prune_exact(model: onnxprune.Model, plan: dict[int, list[int]]) -> onnx.ModelProto:
    """Prune with ``plan`` and check the result against the zeroed original in onnxruntime."""
    pruned = apply_plan(model, plan)
    feeds = oracle.random_feeds(model, seed=1)
    want = oracle.run(oracle.zeroed(model, plan), feeds)
    assert oracle.max_rel_error(oracle.run(pruned, feeds), want) <= 1e-5
    return pruned


def structure(model: onnxprune.Model) -> list[tuple[int, bool]]:
    """(size, prunable) of every group, in group order."""
    return [(g.size, g.prunable) for g in model.groups.groups]


def node(proto: onnx.ModelProto, name: str) -> onnx.NodeProto:
    """The node called ``name``."""
    return next(n for n in proto.graph.node if n.name == name)


def const_input(proto: onnx.ModelProto, name: str, i: int) -> np.ndarray:
    """Value of input ``i`` of node ``name`` (an initializer)."""
    tensor = node(proto, name).input[i]
    return numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == tensor))


def attr(proto: onnx.ModelProto, name: str, key: str) -> object:
    """Attribute ``key`` of node ``name``."""
    a = next(a for a in node(proto, name).attribute if a.name == key)
    return onnx.helper.get_attribute_value(a)


def original(model: onnxprune.Model, name: str) -> np.ndarray:
    """An initializer of the original model."""
    return numpy_helper.to_array(next(t for t in model.proto.graph.initializer if t.name == name))


# -- tests -----------------------------------------------------------------------------------

REDUCE_SPATIAL = """
g (float[1,3,6,6] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  {reduce}
  [head] y = {head}
}}"""
HEAD_CONV = "Conv(r, wh)"
HEAD_GEMM = "Gemm <transB=1> (r, wh)"


@pytest.mark.parametrize(
    ("opset", "reduce", "keepdims"),
    [
        pytest.param(13, "[red] r = ReduceMean <axes=[2,3], keepdims=1> (a)", 1,
                     id="mean-attr-keep"),
        pytest.param(13, "[red] r = ReduceMean <axes=[2,3], keepdims=0> (a)", 0,
                     id="mean-attr-drop"),
        pytest.param(13, "[red] r = ReduceMax <axes=[-2,-1]> (a)", 1, id="max-attr-negative"),
        pytest.param(13, "[red] r = ReduceSum <keepdims=0> (a, axes)", 0, id="sum-input-opset13"),
        pytest.param(18, "[red] r = ReduceMean <keepdims=1> (a, axes)", 1, id="mean-input-keep"),
        pytest.param(18, "[red] r = ReduceMean <keepdims=0> (a, axes)", 0, id="mean-input-drop"),
        pytest.param(18, "[red] r = ReduceMax <keepdims=0> (a, axes)", 0, id="max-input-drop"),
        pytest.param(18, "[red] r = ReduceL2 <keepdims=1> (a, axes)", 1, id="l2-input-keep"),
    ],
)
def test_reduce_over_spatial_axes_passes(opset: int, reduce: str, keepdims: int) -> None:
    head = HEAD_CONV if keepdims else HEAD_GEMM
    weights = {"w1": (8, 3, 1, 1), "wh": (4, 8, 1, 1) if keepdims else (4, 8),
               "axes": np.array([2, 3], np.int64)}
    model = build(REDUCE_SPATIAL.format(reduce=reduce, head=head), weights, opset=opset)
    assert structure(model) == [(8, True), (4, False)]
    keep = [0, 1, 2, 6]
    pruned = prune_exact(model, {0: keep})
    want = original(model, "wh")[:, keep]
    np.testing.assert_array_equal(const_input(pruned, "head", 1), want)


@pytest.mark.parametrize(
    ("opset", "reduce"),
    [
        pytest.param(13, "[red] r = ReduceMean <axes=[1]> (a)", id="mean-attr"),
        pytest.param(18, "[red] r = ReduceMax (a, axes1)", id="max-input"),
        pytest.param(13, "[red] r = ReduceSum (a)", id="sum-all-axes"),
    ],
)
def test_reduce_over_channels_is_a_barrier(opset: int, reduce: str) -> None:
    graph = REDUCE_SPATIAL.format(reduce=reduce, head="Mul(r, two)")
    model = build(graph, {"w1": (8, 3, 1, 1), "axes1": np.array([1], np.int64),
                          "two": np.array(2.0, np.float32)}, opset=opset)
    assert structure(model) == [(8, False)]
    op = reduce.split(" = ")[1].split(" ")[0].split("(")[0]
    assert model.groups.groups[0].barriers == (
        f"node 'red' ({op}) reduces over the channels of axis 1",)


def test_argmax_over_channels_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,6,6] x) => (int64[1,1,6,6] y) {
          [conv1] a = Conv (x, w1)
          [red] y = ArgMax <axis=1> (a)
        }""",
        {"w1": (8, 3, 1, 1)},
    )
    assert model.groups.groups[0].barriers == (
        "node 'red' (ArgMax) reduces over the channels of axis 1",)


def test_reduce_with_run_time_axes_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,6,6] x, int64[2] ax) => (float[N,C,H,W] y) {
          [conv1] a = Conv (x, w1)
          [red] r = ReduceMean (a, ax)
          [head] y = Mul(r, r)
        }""",
        {"w1": (8, 3, 1, 1)},
        opset=18,
    )
    assert structure(model) == [(8, False)]
    assert any("reduces over axes computed at run time" in r
               for r in model.groups.groups[0].barriers)


SOFTMAX = """
g (float[1,3,4,5] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [sm] s = {op} <axis={axis}> (a)
  [conv2] y = Conv(s, w2)
}}"""


@pytest.mark.parametrize(
    ("op", "opset", "axis"),
    [
        pytest.param("Softmax", 13, -1, id="softmax13-last"),
        pytest.param("Softmax", 13, 2, id="softmax13-height"),
        pytest.param("LogSoftmax", 13, 3, id="logsoftmax13-width"),
        pytest.param("Hardmax", 13, -1, id="hardmax13-last"),
        # Before opset 13 every axis from `axis` on is flattened into the softmax.
        pytest.param("Softmax", 11, 2, id="softmax11-flatten-from-2"),
        pytest.param("Softmax", 11, -1, id="softmax11-flatten-last"),
    ],
)
def test_softmax_off_the_channel_axis_passes(op: str, opset: int, axis: int) -> None:
    model = build(SOFTMAX.format(op=op, axis=axis), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
                  opset=opset)
    assert structure(model) == [(8, True), (4, False)]
    prune_exact(model, {0: [1, 2, 4, 7]})


@pytest.mark.parametrize(
    ("op", "opset", "axis", "blocked"),
    [
        pytest.param("Softmax", 13, 1, 1, id="softmax13-channels"),
        pytest.param("LogSoftmax", 13, -3, 1, id="logsoftmax13-channels-negative"),
        # Opset 11, axis 0 or 1: the flattened softmax runs over channels and space together.
        pytest.param("Softmax", 11, 1, 1, id="softmax11-axis1"),
        pytest.param("Softmax", 11, 0, 1, id="softmax11-axis0"),
    ],
)
def test_softmax_over_channels_is_a_barrier(op: str, opset: int, axis: int, blocked: int) -> None:
    model = build(SOFTMAX.format(op=op, axis=axis), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
                  opset=opset)
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        f"node 'sm' ({op}) normalises over the channels of axis {blocked}",)
