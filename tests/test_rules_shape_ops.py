"""Shape channel rule: reading a shape is safe only when a checked reader uses it."""

from __future__ import annotations

import numpy as np

from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

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
        {"w1": (8, 3, 1, 1), "zero": _ints(0), "minus_one": _ints(-1), "wfc": (5, 32)},
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
    model = build(
        SHAPE_ARITHMETIC.format(start=2), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)}, opset=15
    )
    assert structure(model) == [(8, True), (4, False)]
    prune_exact(model, {0: [1, 2, 4, 5]})


def test_shape_of_channels_feeding_arithmetic_is_a_barrier() -> None:
    model = build(
        SHAPE_ARITHMETIC.format(start=0), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)}, opset=15
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        "the shape of 'a' flows into node 'count' (ReduceProd)",
    )


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
        "node 'zeros' (ConstantOfShape): no channel rule for op ConstantOfShape",
    )


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
