"""Shape channel rule: reading a shape is safe only when a checked reader uses it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnx.parser
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

def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def test_shape_feeding_reshape_is_absorbed() -> None:
    model = build(
        """
        g (float[1,3,2,2] x) => (float[1,5] y) {
          [conv1] a = Conv (x, w1)
          [shape] s = Shape (a)
          [gather] b = Gather (s, zero)
          [cast] c = Cast <to=7> (b)
          [cat] sh = Concat <axis=0> (c, minus_one)
          [flat] f = Reshape (a, sh)
          [fc] y = Gemm <transB=1> (f, wfc)
        }""",
        {"w1": (8, 3, 1, 1), "zero": _ints(0), "minus_one": _ints(-1),
         "wfc": (5, 32)},
    )
    assert structure(model) == [(8, True), (5, False)]
    assert "shape" in model.groups.groups[0].nodes
    keep = [0, 2, 3, 7]
    pruned = prune_exact(model, {0: keep})
    cols = [c * 4 + j for c in keep for j in range(4)]
    np.testing.assert_array_equal(const_input(pruned, "fc", 1), original(model, "wfc")[:, cols])


SHAPE_ARITHMETIC = """
g (float[1,3,2,2] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [shape] s = Shape <start={start}> (a)
  [cast] c = Cast <to=1> (s)
  [count] n = ReduceProd <keepdims=0> (c)
  [div] d = Div (a, n)
  [conv2] y = Conv (d, w2)
}}"""


def test_shape_of_other_axes_may_flow_anywhere() -> None:
    model = build(SHAPE_ARITHMETIC.format(start=2), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
                  opset=15)
    assert structure(model) == [(8, True), (4, False)]
    prune_exact(model, {0: [1, 2, 4, 5]})


def test_shape_of_channels_feeding_arithmetic_is_a_barrier() -> None:
    model = build(SHAPE_ARITHMETIC.format(start=0), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
                  opset=15)
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        "the shape of 'a' flows into node 'count' (ReduceProd)",)


def test_shape_into_constant_of_shape_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,2,2] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [conv2] b = Conv (x, w2)
          [shape] s = Shape (a)
          [zeros] z = ConstantOfShape (s)
          [add] t = Add (b, z)
          [conv3] y = Conv (t, w3)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (8, 3, 1, 1), "w3": (4, 8, 1, 1)},
    )
    groups = model.groups.groups
    assert structure(model) == [(8, False), (8, False), (4, False)]
    assert groups[0].barriers == ("the shape of 'a' flows into node 'zeros' (ConstantOfShape)",)
    # conv2's channels meet ConstantOfShape's output, whose channel count comes from 'a'.
    assert groups[1].barriers == (
        "node 'zeros' (ConstantOfShape): no channel rule for op ConstantOfShape",)


def test_shape_as_graph_output_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,2,2] x) => (float y, int64[4] s) {
          [conv1] a = Conv (x, w1)
          [shape] s = Shape (a)
          [conv2] y = Conv (a, w2)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == ("the shape of 'a' flows into node 'shape' (Shape)",)
