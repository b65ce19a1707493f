"""Gemm channel rule: root on the output features, consumer on A's features; its bias fold
and refit layout."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.channels.rules import weight_op
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


def _gemm(c: str, attrs: str, weights: dict[str, object]):  # type: ignore[no-untyped-def]
    model = build(f"""
        g (float[2,6] x) => (float y) {{
          [gemm] y = Gemm <{attrs}> (x, w{c})
        }}""", weights)
    cg = model.channel_graph()
    return cg.ctx, next(n for n in cg.ctx.graph.nodes if n.name == "gemm")


def test_gemm_bias_fold_creates_c_and_resets_beta() -> None:
    ctx, node = _gemm("", "beta=0.5, alpha=2.0", {"w": (6, 3)})
    change = np.array([1.0, 2.0, 3.0])
    assert weight_op("Gemm").add_bias(ctx, node, change, np.dtype(np.float32))
    assert node.attrs["beta"] == 1.0
    np.testing.assert_allclose(ctx.input_const(node, 2), 2.0 * change)


def test_gemm_bias_fold_scales_by_beta_and_broadcasts_a_scalar_c() -> None:
    ctx, node = _gemm(", c", "beta=0.5, alpha=2.0", {"w": (6, 3), "c": np.array([1.0], np.float32)})
    assert weight_op("Gemm").add_bias(ctx, node, np.array([1.0, 2.0, 3.0]), np.dtype(np.float32))
    np.testing.assert_allclose(ctx.input_const(node, 2), [5.0, 9.0, 13.0])


def test_gemm_bias_fold_refuses_beta_zero() -> None:
    ctx, node = _gemm(", c", "beta=0.0", {"w": (6, 3), "c": (3,)})
    assert not weight_op("Gemm").add_bias(ctx, node, np.ones(3), np.dtype(np.float32))


@pytest.mark.parametrize(("attrs", "layout"), [
    ({}, (1, 0, False)), ({"transB": 1}, (1, 1, False)), ({"transA": 1}, None),
])  # fmt: skip
def test_gemm_refit_layout(attrs: dict[str, int], layout: object) -> None:
    layout_fn = weight_op("Gemm").layout
    assert layout_fn is not None and layout_fn(attrs, (2, 6), (6, 3)) == layout
