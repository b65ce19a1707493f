"""Reduction and softmax channel rules: channels pass unless the op works across them."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing.graphs import (
    build,
    const_input,
    original,
    prune_exact,
    structure,
)

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
        pytest.param(
            13, "[red] r = ReduceMean <axes=[2,3], keepdims=1> (a)", 1, id="mean-attr-keep"
        ),
        pytest.param(
            13, "[red] r = ReduceMean <axes=[2,3], keepdims=0> (a)", 0, id="mean-attr-drop"
        ),
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
    weights = {
        "w1": (8, 3, 1, 1),
        "wh": (4, 8, 1, 1) if keepdims else (4, 8),
        "axes": np.array([2, 3], np.int64),
    }
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
    model = build(
        graph,
        {"w1": (8, 3, 1, 1), "axes1": np.array([1], np.int64), "two": np.array(2.0, np.float32)},
        opset=opset,
    )
    assert structure(model) == [(8, False)]
    op = reduce.split(" = ")[1].split(" ")[0].split("(")[0]
    assert model.groups.groups[0].barriers == (
        f"node 'red' ({op}) reduces over the channels of axis 1",
    )


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
        "node 'red' (ArgMax) reduces over the channels of axis 1",
    )


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
    assert any(
        "reduces over axes computed at run time" in r for r in model.groups.groups[0].barriers
    )


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
    model = build(
        SOFTMAX.format(op=op, axis=axis), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)}, opset=opset
    )
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
    model = build(
        SOFTMAX.format(op=op, axis=axis), {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)}, opset=opset
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        f"node 'sm' ({op}) normalises over the channels of axis {blocked}",
    )
