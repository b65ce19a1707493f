"""Pooling channel rules: each channel is pooled on its own."""

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

POOL = """
g (float[1,3,8,8] x) => (float y) {{
  [conv1] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (x, w1)
  [pool] p = {pool}
  [conv2] y = Conv(p, w2)
}}"""


@pytest.mark.parametrize(
    "pool",
    [
        pytest.param("MaxPool <kernel_shape=[2,2], strides=[2,2]> (a)", id="MaxPool"),
        pytest.param("AveragePool <kernel_shape=[3,3], pads=[1,1,1,1]> (a)", id="AveragePool"),
        pytest.param("LpPool <kernel_shape=[2,2], p=2> (a)", id="LpPool"),
        pytest.param("GlobalAveragePool (a)", id="GlobalAveragePool"),
        pytest.param("GlobalMaxPool (a)", id="GlobalMaxPool"),
        pytest.param("GlobalLpPool <p=3> (a)", id="GlobalLpPool"),
    ],
)
def test_pool_passes_channels(pool: str) -> None:
    model = build(POOL.format(pool=pool), {"w1": (8, 3, 3, 3), "w2": (4, 8, 1, 1)})
    assert structure(model) == [(8, True), (4, False)]
    group = model.groups.groups[0]
    assert "pool" in group.nodes
    assert [c.node for c in group.consumers] == ["conv2"]
    keep = [0, 2, 4, 5, 6]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "conv2", 1), original(model, "w2")[:, keep])


def test_global_pool_flatten_gemm_head() -> None:
    model = build(
        """
        g (float[1,3,8,8] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [gap] p = GlobalAveragePool (a)
          [flat] f = Flatten (p)
          [fc] y = Gemm <transB=1> (f, wfc, bfc)
        }""",
        {"w1": (8, 3, 1, 1), "wfc": (10, 8), "bfc": (10,)},
    )
    assert structure(model) == [(8, True), (10, False)]
    keep = [1, 3, 5, 7]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "fc", 1), original(model, "wfc")[:, keep])


@pytest.mark.parametrize(
    "graph",
    [
        pytest.param(
            """
            g (float[1,3,8,8] x) => (float[1,4,4,4] y, int64[1,8,4,4] idx) {
              [conv1] a = Conv (x, w1)
              [pool] p, idx = MaxPool <kernel_shape=[2,2], strides=[2,2]> (a)
              [conv2] y = Conv(p, w2)
            }""",
            id="indices-graph-output",
        ),
        pytest.param(
            """
            g (float[1,3,8,8] x) => (float y) {
              [conv1] a = Conv (x, w1)
              [pool] p, idx = MaxPool <kernel_shape=[2,2], strides=[2,2]> (a)
              [cast] c = Cast <to=1> (idx)
              [add] s = Add(p, c)
              [conv2] y = Conv(s, w2)
            }""",
            id="indices-consumed",
        ),
    ],
)
def test_maxpool_indices_output_is_a_barrier(graph: str) -> None:
    # Indices are flat positions in the NCHW input: they change when channels are removed.
    model = build(graph, {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)})
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == ("node 'pool' (MaxPool) uses its indices output",)
