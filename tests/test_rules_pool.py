"""Pooling channel rules: each channel is pooled on its own."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

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
