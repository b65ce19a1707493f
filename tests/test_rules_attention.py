"""Attention heads: a Reshape split into heads, batched MatMuls, head-count constants."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.channels.heads import split_candidates
from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

T, E, H, D = 5, 12, 3, 4  # tokens, embedding, heads, head_dim


def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


@pytest.mark.parametrize(
    ("xs", "a", "ys", "want"),
    [
        pytest.param((1, 16, 32), 2, (1, 16, 4, 8), [(2, 8, 1), (3, 1, 4)], id="heads"),
        pytest.param((16, 1, 96), 2, (16, 1, 3, 32), [(2, 32, 1), (3, 1, 3)], id="fused-qkv"),
        pytest.param((16, 1, 32), 2, (16, 4, 8), [(1, 8, 1), (2, 1, 4)], id="batch-1-heads"),
        pytest.param((16, 2, 32), 2, (16, 8, 8), [(2, 1, 4)], id="batch-2-heads-mixed"),
        pytest.param((1, 8, 6), 1, (1, 2, 4, 6), [(1, 4, 1), (2, 1, 2)], id="shuffle"),
        pytest.param((1, 8, 6), 1, (1, 48), [], id="merge"),
    ],
)
def test_split_candidates(
    xs: tuple[int, ...], a: int, ys: tuple[int, ...], want: list[tuple[int, int, int]]
) -> None:
    got = [(b, m.inner, m.outer) for b, m in split_candidates(xs, a, ys)]
    assert got == want


# BERT-style self-attention with separate Q/K/V projections, as both exporters write it.
SEPARATE_QKV = f"""
g (float[1,{T},{E}] x) => (float[1,{T},{E}] y) {{
  [q] q = MatMul (x, wq)
  [k] k = MatMul (x, wk)
  [v] v = MatMul (x, wv)
  [q_heads] q4 = Reshape (q, heads)
  [k_heads] k4 = Reshape (k, heads)
  [v_heads] v4 = Reshape (v, heads)
  [q_t] qt = Transpose <perm=[0,2,1,3]> (q4)
  [k_t] kt = Transpose <perm=[0,2,3,1]> (k4)
  [v_t] vt = Transpose <perm=[0,2,1,3]> (v4)
  [scores] s = MatMul (qt, kt)
  [scale] ss = Mul (s, scale)
  [masked] sm = Add (ss, mask)
  [softmax] p = Softmax <axis=-1> (sm)
  [context] c = MatMul (p, vt)
  [c_t] ct = Transpose <perm=[0,2,1,3]> (c)
  [merge] m = Reshape (ct, merged)
  [o] y = MatMul (m, wo)
}}"""


def _weights(heads: tuple[int, ...]) -> dict[str, tuple[int, ...] | np.ndarray]:
    mask = np.zeros((1, 1, 1, T), np.float32)
    mask[..., -1] = -1e4
    return {
        "wq": (E, E), "wk": (E, E), "wv": (E, E), "wo": (E, E),
        "heads": _ints(*heads), "merged": _ints(1, T, E),
        "scale": np.array(D**-0.5, np.float32), "mask": mask,
    }  # fmt: skip


def _head_cols(keep: list[int]) -> list[int]:
    return [h * D + j for h in keep for j in range(D)]


@pytest.mark.parametrize(
    ("heads", "new_heads"),
    [
        pytest.param((1, T, H, D), [1, T, 2, D], id="constant"),
        pytest.param((1, T, H, -1), [1, T, 2, -1], id="head-dim-minus-one"),
        pytest.param((0, 0, -1, D), [0, 0, -1, D], id="heads-minus-one"),
    ],
)
def test_separate_qkv_heads_pruned_whole(
    heads: tuple[int, ...], new_heads: list[int]
) -> None:
    model = build(SEPARATE_QKV, _weights(heads))
    assert structure(model) == [(H, True), (E, False)]
    group = model.groups.groups[0]
    assert group.root_nodes == ("q", "k", "v")
    assert [(c.node, c.weight.axis) for c in group.consumers] == [("o", 0)]
    keep = [0, 2]
    pruned = prune_exact(model, {0: keep})
    cols = _head_cols(keep)
    for name in ("q", "k", "v"):
        want = original(model, f"w{name}")[:, cols]
        np.testing.assert_array_equal(const_input(pruned, name, 1), want)
    np.testing.assert_array_equal(const_input(pruned, "o", 1), original(model, "wo")[cols])
    assert const_input(pruned, "q_heads", 1).tolist() == new_heads
    assert const_input(pruned, "merge", 1).tolist() == [1, T, 2 * D]


def test_split_not_feeding_attention_stays_a_barrier() -> None:
    # Distribution bins (YOLO's DFL) split channels the same way but never meet a MatMul of
    # two run-time tensors: which output axis would carry the channels is unknown.
    model = build(
        f"""
        g (float[1,{T},{E}] x) => (float[1,{T},{H}] y) {{
          [proj] a = MatMul (x, w)
          [bins] b = Reshape (a, heads)
          [softmax] p = Softmax <axis=-1> (b)
          [sum] y = ReduceSum <keepdims=0> (p, last)
        }}""",
        {"w": (E, E), "heads": _ints(1, T, H, D), "last": _ints(-1)},
    )
    assert structure(model) == [(E, False)]
    (reason,) = model.groups.groups[0].barriers
    assert reason == (
        "node 'bins' (Reshape) splits the channels of 'a' axis 2 over several axes "
        "(heads/bins/shuffle)"
    )


def test_contracting_head_dim_of_two_run_time_tensors_is_a_barrier() -> None:
    # Channels reaching Q·Kᵀ on the contracted axis (head_dim) cannot be pruned alone.
    model = build(
        f"""
        g (float[1,{T},{E}] x) => (float[1,{T},{T}] y) {{
          [q] q = MatMul (x, wq)
          [k] k = MatMul (x, wk)
          [k_t] kt = Transpose <perm=[0,2,1]> (k)
          [scores] y = MatMul (q, kt)
        }}""",
        {"wq": (E, E), "wk": (E, E)},
    )
    assert structure(model) == [(E, False), (E, False)]
    assert model.groups.groups[0].barriers == (
        "node 'scores' (MatMul) contracts the channels of 'q'",
    )
