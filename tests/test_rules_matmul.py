"""MatMul channel rule: constant 2-D weights (root and consumer on the last axes), attention
between run-time tensors; its bias fold (the following Add) and refit layout."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.channels.rules import weight_op
from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

# -- tests -----------------------------------------------------------------------------------

MATMUL = """
g (float{shape} x) => (float y) {
  [mm1] a = MatMul(x, w1)
  [add] b = Add(a, b1)
  [relu] r = Relu(b)
  [mm2] y = MatMul(r, w2)
}"""


@pytest.mark.parametrize(
    "shape", [pytest.param("[2,16]", id="2d"), pytest.param("[1,5,16]", id="3d-channel-last")]
)
def test_matmul_with_constant_weight(shape: str) -> None:
    model = build(MATMUL.replace("{shape}", shape), {"w1": (16, 8), "b1": (8,), "w2": (8, 4)})
    assert structure(model) == [(8, True), (4, False)]
    group = model.groups.groups[0]
    last = len(shape.split(",")) - 1
    assert [(r.node, r.space.axis, r.weight.axis) for r in group.roots] == [("mm1", last, 1)]
    assert [(c.node, c.weight.axis) for c in group.consumers] == [("mm2", 0)]
    keep = [1, 2, 5, 6]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "mm1", 1), original(model, "w1")[:, keep])
    np.testing.assert_array_equal(const_input(pruned, "add", 1), original(model, "b1")[keep])
    np.testing.assert_array_equal(const_input(pruned, "mm2", 1), original(model, "w2")[keep])


def test_conv_feature_map_into_matmul_tokens() -> None:
    # A conv's channels become the feature axis of tokens: [1,C,H,W] -> [1,HW,C] -> MatMul.
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [flat] f = Reshape (a, shape)
          [tr] t = Transpose <perm=[0,2,1]> (f)
          [mm] y = MatMul (t, w2)
        }""",
        {"w1": (8, 3, 1, 1), "shape": np.array([1, 8, 16], np.int64), "w2": (8, 5)},
    )
    assert structure(model) == [(8, True), (5, False)]
    keep = [0, 3, 4, 7]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "mm", 1), original(model, "w2")[keep])
    assert const_input(pruned, "flat", 1).tolist() == [1, 4, 16]


def test_matmul_contracting_channels_of_two_run_time_tensors_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,5,16] x) => (float y) {
          [mm1] a = MatMul(x, w1)
          [tr] t = Transpose <perm=[0,2,1]> (a)
          [scores] s = MatMul(a, t)
          [mm2] y = MatMul(s, w2)
        }""",
        {"w1": (16, 8), "w2": (5, 3)},
    )
    first = model.groups.groups[0]
    assert (first.size, first.prunable) == (8, False)
    assert "node 'scores' (MatMul) contracts the channels of 'a'" in first.barriers


def test_matmul_bias_fold_goes_into_the_following_add() -> None:
    model = build(MATMUL.replace("{shape}", "[2,16]"), {"w1": (16, 8), "b1": (8,), "w2": (8, 4)})
    cg = model.channel_graph()
    mm1, mm2 = (next(n for n in cg.ctx.graph.nodes if n.name == k) for k in ("mm1", "mm2"))
    wop = weight_op("MatMul")
    before = cg.ctx.const("b1").copy()
    assert wop.add_bias(cg.ctx, mm1, np.arange(8.0), np.dtype(np.float32))
    np.testing.assert_allclose(cg.ctx.input_const(next(
        n for n in cg.ctx.graph.nodes if n.name == "add"), 1), before + np.arange(8.0))
    assert not wop.add_bias(cg.ctx, mm2, np.ones(4), np.dtype(np.float32))  # no Add after it


def test_matmul_refit_layout() -> None:
    layout = weight_op("MatMul").layout
    assert layout is not None
    assert layout({}, (1, 5, 16), (16, 8)) == (2, 0, False)
    assert layout({}, (1, 5, 16), (2, 16, 8)) is None
