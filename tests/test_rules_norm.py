"""Normalisation channel rules: per-channel vectors sliced, normalising over channels blocks."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

# -- tests -----------------------------------------------------------------------------------


def _positive(n: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(0.5, 2.0, n).astype(np.float32)


BATCHNORM = """
g (float[1,3,6,6] x) => (float y) {
  [conv1] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (x, w1)
  [bn] b = BatchNormalization <epsilon=0.001> (a, scale, bias, mean, var)
  [relu] r = Relu(b)
  [conv2] y = Conv(r, w2)
}"""


def test_batchnorm_follows_channels_and_slices_vectors() -> None:
    model = build(
        BATCHNORM,
        {
            "w1": (8, 3, 3, 3),
            "scale": (8,),
            "bias": (8,),
            "mean": (8,),
            "var": _positive(8),
            "w2": (4, 8, 1, 1),
        },
    )
    assert structure(model) == [(8, True), (4, False)]
    assert "bn" in model.groups.groups[0].nodes
    keep = [0, 1, 3, 6]
    pruned = prune_exact(model, {0: keep})
    for i, name in enumerate(("scale", "bias", "mean", "var"), start=1):
        np.testing.assert_array_equal(const_input(pruned, "bn", i), original(model, name)[keep])


def test_batchnorm_after_gemm() -> None:
    model = build(
        """
        g (float[2,16] x) => (float y) {
          [fc1] a = Gemm (x, w1)
          [bn] b = BatchNormalization (a, scale, bias, mean, var)
          [fc2] y = Gemm (b, w2)
        }""",
        {
            "w1": (16, 8),
            "scale": (8,),
            "bias": (8,),
            "mean": (8,),
            "var": _positive(8),
            "w2": (8, 3),
        },
    )
    assert structure(model) == [(8, True), (3, False)]
    pruned = prune_exact(model, {0: [2, 4, 5]})
    np.testing.assert_array_equal(const_input(pruned, "bn", 4), _positive(8)[[2, 4, 5]])


def test_instancenorm_follows_channels_and_slices_vectors() -> None:
    model = build(
        """
        g (float[1,3,6,6] x) => (float y) {
          [conv1] a = Conv <kernel_shape=[3,3]> (x, w1)
          [inorm] b = InstanceNormalization (a, scale, bias)
          [conv2] y = Conv(b, w2)
        }""",
        {"w1": (8, 3, 3, 3), "scale": (8,), "bias": (8,), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    keep = [1, 2, 5, 7]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "inorm", 1), original(model, "scale")[keep])
    np.testing.assert_array_equal(const_input(pruned, "inorm", 2), original(model, "bias")[keep])


LAYERNORM_CHANNELS_LAST = """
g (float[1,3,4,4] x) => (float y) {
  [conv1] a = Conv (x, w1)
  [to_nhwc] t = Transpose <perm=[0,2,3,1]> (a)
  [ln] n = LayerNormalization <axis=-1> (t, scale, bias)
  [to_nchw] u = Transpose <perm=[0,3,1,2]> (n)
  [conv2] y = Conv(u, w2)
}"""

LAYERNORM_CHW = """
g (float[1,3,4,4] x) => (float y) {
  [conv1] a = Conv (x, w1)
  [ln] n = LayerNormalization <axis=1> (a, scale, bias)
  [conv2] y = Conv(n, w2)
}"""


@pytest.mark.parametrize(
    ("graph", "scale_shape", "axis"),
    [
        pytest.param(LAYERNORM_CHANNELS_LAST, (8,), 3, id="channels-last-axis-1"),
        pytest.param(LAYERNORM_CHW, (8, 4, 4), 1, id="nchw-axis1"),
    ],
)
def test_layernorm_over_channels_is_a_barrier(
    graph: str, scale_shape: tuple[int, ...], axis: int
) -> None:
    model = build(
        graph,
        {"w1": (8, 3, 1, 1), "scale": scale_shape, "bias": scale_shape, "w2": (4, 8, 1, 1)},
        opset=17,
    )
    assert structure(model) == [(8, False), (4, False)]
    reasons = model.groups.groups[0].barriers
    assert reasons == (
        f"node 'ln' (LayerNormalization) normalises across the channels of axis {axis}",
    )


def test_layernorm_over_width_passes() -> None:
    model = build(
        """
        g (float[1,3,4,5] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [ln] n = LayerNormalization <axis=-1> (a, scale, bias)
          [conv2] y = Conv(n, w2)
        }""",
        {"w1": (8, 3, 1, 1), "scale": (5,), "bias": (5,), "w2": (4, 8, 1, 1)},
        opset=17,
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [0, 1, 2, 7]})
    np.testing.assert_array_equal(const_input(pruned, "ln", 1), original(model, "scale"))


def test_layernorm_mean_output_as_graph_output_is_a_barrier() -> None:
    # The Mean output keeps the channel axis ([1, C, H, 1]); pruning would change its shape.
    model = build(
        """
        g (float[1,3,4,5] x) => (float y, float[1,8,4,1] mean) {
          [conv1] a = Conv (x, w1)
          [ln] n, mean = LayerNormalization <axis=-1> (a, scale, bias)
          [conv2] y = Conv(n, w2)
        }""",
        {"w1": (8, 3, 1, 1), "scale": (5,), "bias": (5,), "w2": (4, 8, 1, 1)},
        opset=17,
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        "node 'ln' (LayerNormalization) uses its mean/inv-std outputs",
    )
