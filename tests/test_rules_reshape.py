"""Flatten and Reshape channel rules: channel axes may be merged, never split."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

# -- tests -----------------------------------------------------------------------------------


def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _feature_cols(keep: list[int], block: int) -> list[int]:
    """Gemm input features owned by the kept channels after a flatten of blocks of ``block``."""
    return [c * block + j for c in keep for j in range(block)]


FLATTEN_GEMM = """
g (float[1,3,2,3] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  {flatten}
  [fc] y = Gemm <transB=1> (f, wfc)
}}"""


@pytest.mark.parametrize(
    ("flatten", "shape", "new_shape"),
    [
        pytest.param("[flat] f = Flatten (a)", None, None, id="Flatten"),
        pytest.param("[flat] f = Reshape (a, shape)", [1, 48], [1, 30], id="Reshape-constant"),
        pytest.param("[flat] f = Reshape (a, shape)", [1, -1], [1, -1], id="Reshape-minus-one"),
        pytest.param(
            "[flat] f = Reshape (a, shape)", [0, -1], [0, -1], id="Reshape-zero-minus-one"
        ),
    ],
)
def test_flatten_into_gemm_gives_each_channel_a_block(
    flatten: str, shape: list[int] | None, new_shape: list[int] | None
) -> None:
    weights = {"w1": (8, 3, 1, 1), "wfc": (10, 48)} | ({"shape": _ints(*shape)} if shape else {})
    model = build(FLATTEN_GEMM.format(flatten=flatten), weights)
    assert structure(model) == [(8, True), (10, False)]
    assert [(c.node, c.weight.axis) for c in model.groups.groups[0].consumers] == [("fc", 1)]
    keep = [0, 2, 3, 5, 6]
    pruned = prune_exact(model, {0: keep})
    want = original(model, "wfc")[:, _feature_cols(keep, 6)]
    np.testing.assert_array_equal(const_input(pruned, "fc", 1), want)
    if new_shape is not None:
        assert const_input(pruned, "flat", 1).tolist() == new_shape


@pytest.mark.parametrize("opset", [pytest.param(13, id="opset13"), pytest.param(18, id="opset18")])
def test_run_time_view_batch_minus_one(opset: int, capfd: pytest.CaptureFixture[str]) -> None:
    # torch: x.view(x.size(0), -1), as the legacy exporter writes it with a dynamic batch.
    # Before Reshape-14, ONNX shape inference ignores shapes computed from Shape ops.
    model = build(
        """
        g (float[1,3,2,3] x) => (float[1,10] y) {
          [conv1] a = Conv (x, w1)
          [shape] s = Shape (a)
          [gather] n = Gather <axis=0> (s, zero)
          [unsq] u = Unsqueeze (n, axes0)
          [cat] sh = Concat <axis=0> (u, minus_one)
          [flat] f = Reshape (a, sh)
          [fc] y = Gemm <transB=1> (f, wfc)
        }""",
        {
            "w1": (8, 3, 1, 1),
            "zero": np.array(0, np.int64),
            "axes0": _ints(0),
            "minus_one": _ints(-1),
            "wfc": (10, 48),
        },
        opset=opset,
    )
    assert model.shapes["f"] == (1, 48)
    assert capfd.readouterr().err == ""  # folding the Shape ops for inference is quiet
    assert structure(model) == [(8, True), (10, False)]
    keep = [1, 4, 7]
    pruned = prune_exact(model, {0: keep})
    want = original(model, "wfc")[:, _feature_cols(keep, 6)]
    np.testing.assert_array_equal(const_input(pruned, "fc", 1), want)


def test_reshape_merging_space_keeps_channels_and_rewrites_both_shapes() -> None:
    model = build(
        """
        g (float[1,3,2,3] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [to3d] t = Reshape (a, s3)
          [soft] m = Softmax <axis=-1> (t)
          [to4d] b = Reshape (m, s4)
          [conv2] y = Conv (b, w2)
        }""",
        {"w1": (8, 3, 1, 1), "s3": _ints(1, 8, 6), "s4": _ints(1, 8, 2, 3), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [0, 1, 5]})
    assert const_input(pruned, "to3d", 1).tolist() == [1, 3, 6]
    assert const_input(pruned, "to4d", 1).tolist() == [1, 3, 2, 3]


def test_reshape_copying_channel_dim_with_zero() -> None:
    model = build(
        """
        g (float[1,3,2,3] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [to3d] t = Reshape (a, s3)
          [tr] u = Transpose <perm=[0,2,1]> (t)
          [mm] y = MatMul (u, w2)
        }""",
        {"w1": (8, 3, 1, 1), "s3": _ints(0, 0, -1), "w2": (8, 4)},
    )
    assert structure(model) == [(8, True), (4, False)]
    keep = [2, 3, 4, 6]
    pruned = prune_exact(model, {0: keep})
    assert const_input(pruned, "to3d", 1).tolist() == [0, 0, -1]
    np.testing.assert_array_equal(const_input(pruned, "mm", 1), original(model, "w2")[keep])


def test_reshape_splitting_channels_into_groups_is_a_barrier() -> None:
    # Channel shuffle: [1, 8, H, W] -> [1, 2, 4, H, W] -> transpose -> [1, 8, H, W].
    model = build(
        """
        g (float[1,3,2,3] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [split_groups] g5 = Reshape (a, s5)
          [shuffle] t = Transpose <perm=[0,2,1,3,4]> (g5)
          [merge] b = Reshape (t, s4)
          [conv2] y = Conv (b, w2)
        }""",
        {
            "w1": (8, 3, 1, 1),
            "s5": _ints(1, 2, 4, 2, 3),
            "s4": _ints(1, 8, 2, 3),
            "w2": (4, 8, 1, 1),
        },
    )
    assert structure(model) == [(8, False), (4, False)]
    (reason,) = model.groups.groups[0].barriers
    assert reason.startswith("node 'split_groups' (Reshape) splits the channels of 'a' axis 1")


RUN_TIME_SHAPE = """
g (float[1,3,2,3] x) => (float[1,6,4] y{extra_out}) {{
  [conv1] a = Conv (x, w1)
  [shape] s = Shape (a)
  [gather] n = Gather (s, idx0)
  [cat] sh = Concat <axis=0> (n, eight, minus_one)
  [to3d] t = Reshape (a, sh)
  [tr] u = Transpose <perm=[0,2,1]> (t)
  [mm] y = MatMul (u, w2){extra}
}}"""
RUN_TIME_SHAPE_WEIGHTS = {
    "w1": (8, 3, 1, 1),
    "idx0": _ints(0),
    "eight": _ints(8),
    "minus_one": _ints(-1),
    "w2": (8, 4),
}


def test_run_time_shape_with_a_constant_channel_count_is_rewritten() -> None:
    # view(x.size(0), 8, -1): the legacy exporter's Concat of a Shape entry and constants.
    model = build(RUN_TIME_SHAPE.format(extra_out="", extra=""), RUN_TIME_SHAPE_WEIGHTS)
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [1, 2, 6]})
    assert const_input(pruned, "cat", 1).tolist() == [3]
    assert const_input(pruned, "cat", 2).tolist() == [-1]


def test_run_time_shape_read_elsewhere_that_hard_codes_channels_is_a_barrier() -> None:
    # The Concat's value is also a graph output: rewriting its constant would change that too.
    text = RUN_TIME_SHAPE.format(extra_out=", int64[3] sh", extra="")
    model = build(text, RUN_TIME_SHAPE_WEIGHTS)
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        "node 'to3d' (Reshape) has a shape that fixes the channel count of axis 1",
    )


@pytest.mark.parametrize(
    ("starts", "ends", "steps"),
    [
        pytest.param((0, 3), (1, 4), (1, 1), id="slices"),
        pytest.param((0, -1), (1, 9), (1, 1), id="negative-start-big-end"),
        pytest.param((0, 3), (1, 2), (1, -1), id="negative-step"),
    ],
)
def test_run_time_flatten_from_sliced_shape(
    starts: tuple[int, int], ends: tuple[int, int], steps: tuple[int, int]
) -> None:
    # torch legacy export of x.flatten(1, 2) on [N, C, 1, T]: shape = [s[0:1], -1, s[3:]].
    model = build(
        """
        g (float[1,3,1,5] x) => (float[1,5,4] y) {
          [conv1] a = Conv (x, w1)
          [shape] s = Shape (a)
          [head] n = Slice (s, b0, e0, ax, st0)
          [tail] t = Slice (s, b1, e1, ax, st1)
          [cat] sh = Concat <axis=0> (n, minus_one, t)
          [flat] f = Reshape (a, sh)
          [tr] u = Transpose <perm=[0,2,1]> (f)
          [mm] y = MatMul (u, w2)
        }""",
        {
            "w1": (8, 3, 1, 1), "ax": _ints(0), "minus_one": _ints(-1), "w2": (8, 4),
            "b0": _ints(starts[0]), "e0": _ints(ends[0]), "st0": _ints(steps[0]),
            "b1": _ints(starts[1]), "e1": _ints(ends[1]), "st1": _ints(steps[1]),
        },  # fmt: skip
    )
    assert model.shapes["f"] == (1, 8, 5)
    assert structure(model) == [(8, True), (4, False)]
    keep = [0, 3, 6]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "mm", 1), original(model, "w2")[keep])

