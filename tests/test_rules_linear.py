"""Gemm and MatMul channel rules: roots on output features, consumers on inputs."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

# -- tests -----------------------------------------------------------------------------------

GEMM = """
g (float[2,16] x) => (float y) {{
  [gemm1] a = Gemm <transB={t1}> (x, w1, b1)
  [relu] r = Relu(a)
  [gemm2] y = Gemm <transB={t2}> (r, w2, b2)
}}"""


def _gemm_weights(t1: int, t2: int, bias: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {
        "w1": (8, 16) if t1 else (16, 8),
        "b1": bias,
        "w2": (4, 8) if t2 else (8, 4),
        "b2": (4,),
    }


@pytest.mark.parametrize(
    ("t1", "t2", "bias"),
    [
        pytest.param(0, 0, (8,), id="transB0-bias-N"),
        pytest.param(1, 1, (8,), id="transB1-bias-N"),
        pytest.param(0, 1, (1, 8), id="transB0-bias-1xN"),
        pytest.param(1, 0, (1, 8), id="transB1-bias-1xN"),
    ],
)
def test_gemm_root_and_consumer(t1: int, t2: int, bias: tuple[int, ...]) -> None:
    model = build(GEMM.format(t1=t1, t2=t2), _gemm_weights(t1, t2, bias))
    assert structure(model) == [(8, True), (4, False)]
    group = model.groups.groups[0]
    assert [(r.node, r.weight.axis) for r in group.roots] == [("gemm1", 0 if t1 else 1)]
    assert [(c.node, c.weight.axis) for c in group.consumers] == [("gemm2", 1 if t2 else 0)]
    keep = [0, 1, 4, 6, 7]
    pruned = prune_exact(model, {0: keep})
    w1, w2 = original(model, "w1"), original(model, "w2")
    want1 = w1[keep] if t1 else w1[:, keep]
    want2 = w2[:, keep] if t2 else w2[keep]
    np.testing.assert_array_equal(const_input(pruned, "gemm1", 1), want1)
    np.testing.assert_array_equal(const_input(pruned, "gemm2", 1), want2)
    b1 = const_input(pruned, "gemm1", 2)
    assert b1.shape == ((5,) if bias == (8,) else (1, 5))
    np.testing.assert_array_equal(b1.reshape(-1), original(model, "b1").reshape(-1)[keep])


def test_gemm_with_scalar_bias_keeps_it() -> None:
    model = build(GEMM.format(t1=0, t2=0), _gemm_weights(0, 0, (1,)))
    pruned = prune_exact(model, {0: [2, 3, 5]})
    np.testing.assert_array_equal(const_input(pruned, "gemm1", 2), original(model, "b1"))


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
