"""Layout channel rules: ops that move, pad, repeat, gather or resample axes."""

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


def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _floats(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def test_transpose_round_trip_passes() -> None:
    model = build(
        """
        g (float[1,3,4,5] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [to_nhwc] t = Transpose <perm=[0,2,3,1]> (a)
          [relu] r = Relu (t)
          [to_nchw] u = Transpose <perm=[0,3,1,2]> (r)
          [conv2] y = Conv (u, w2)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    members = {(s.tensor, s.axis) for s in model.groups.groups[0].members}
    assert {("a", 1), ("t", 3), ("r", 3), ("u", 1)} <= members
    prune_exact(model, {0: [0, 1, 6]})


SQUEEZE = """
g (float[1,3,4,4] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [gap] p = GlobalAveragePool (a)
  [squeeze] s = Squeeze {sq}
  [fc] f = Gemm <transB=1> (s, wfc)
  [unsqueeze] u = Unsqueeze {unsq}
  [conv2] y = Conv (u, w2)
}}"""


@pytest.mark.parametrize(
    ("opset", "sq", "unsq"),
    [
        pytest.param(11, "<axes=[2,3]> (p)", "<axes=[2,3]> (f)", id="opset11-attr"),
        pytest.param(11, "<axes=[-1,-2]> (p)", "<axes=[-2,-1]> (f)", id="opset11-attr-negative"),
        pytest.param(13, "(p, axes23)", "(f, axes23)", id="opset13-input"),
    ],
)
def test_squeeze_unsqueeze_renumber_axes(opset: int, sq: str, unsq: str) -> None:
    model = build(
        SQUEEZE.format(sq=sq, unsq=unsq),
        {"w1": (8, 3, 1, 1), "axes23": _ints(2, 3), "wfc": (6, 8), "w2": (4, 6, 1, 1)},
        opset=opset,
    )
    assert structure(model) == [(8, True), (6, True), (4, False)]
    keep_a, keep_f = [0, 4, 5, 7], [1, 2, 3]
    pruned = prune_exact(model, {0: keep_a, 1: keep_f})
    np.testing.assert_array_equal(
        const_input(pruned, "fc", 1), original(model, "wfc")[keep_f][:, keep_a]
    )
    np.testing.assert_array_equal(const_input(pruned, "conv2", 1), original(model, "w2")[:, keep_f])


PAD = """
g (float[1,3,4,4] x) => (float y) {
  [conv1] a = Conv (x, w1)
  [pad] p = Pad <mode="reflect"> (a, pads)
  [conv2] y = Conv (p, w2)
}"""


def test_spatial_pad_passes() -> None:
    model = build(
        PAD, {"w1": (8, 3, 1, 1), "pads": _ints(0, 0, 1, 2, 0, 0, 2, 1), "w2": (4, 8, 3, 3)}
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [1, 2, 3, 6]})
    assert const_input(pruned, "pad", 1).tolist() == [0, 0, 1, 2, 0, 0, 2, 1]


def test_spatial_pad_with_axes_input_opset18() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [pad] p = Pad (a, pads, value, axes)
          [conv2] y = Conv (p, w2)
        }""",
        {
            "w1": (8, 3, 1, 1),
            "pads": _ints(1, 1, 1, 1),
            "value": _floats(0.5).reshape(()),
            "axes": _ints(2, 3),
            "w2": (4, 8, 3, 3),
        },
        opset=18,
    )
    assert structure(model) == [(8, True), (4, False)]
    prune_exact(model, {0: [0, 2, 4, 6]})


@pytest.mark.parametrize(
    ("opset", "graph", "weights"),
    [
        pytest.param(13, PAD, {"pads": _ints(0, 1, 0, 0, 0, 1, 0, 0)}, id="opset13-channel-pads"),
        pytest.param(
            18,
            PAD.replace("(a, pads)", '(a, pads, "", axes)'),
            {"pads": _ints(1, 0), "axes": _ints(1)},
            id="opset18-axes-channel",
        ),
    ],
)
def test_channel_pad_is_a_barrier(opset: int, graph: str, weights: dict[str, np.ndarray]) -> None:
    model = build(
        graph.replace('<mode="reflect"> ', ""),
        {"w1": (8, 3, 1, 1), "w2": (4, 9, 3, 3)} | weights,
        opset=opset,
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == ("node 'pad' (Pad) mixes or drops input axis 1",)


TILE = """
g (float[1,3,4,4] x) => (float y) {
  [conv1] a = Conv (x, w1)
  [tile] t = Tile (a, reps)
  [conv2] y = Conv (t, w2)
}"""


def test_tile_of_spatial_axes_passes() -> None:
    model = build(TILE, {"w1": (8, 3, 1, 1), "reps": _ints(1, 1, 2, 3), "w2": (4, 8, 1, 1)})
    assert structure(model) == [(8, True), (4, False)]
    prune_exact(model, {0: [3, 4, 5]})


def test_tile_of_channels_is_a_barrier() -> None:
    model = build(TILE, {"w1": (8, 3, 1, 1), "reps": _ints(1, 2, 1, 1), "w2": (4, 16, 1, 1)})
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == ("node 'tile' (Tile) mixes or drops input axis 1",)


GATHER = """
g (float[1,3,4,4] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [gather] t = Gather <axis={axis}> (a, idx)
  [conv2] y = Conv (t, w2)
}}"""


@pytest.mark.parametrize(
    ("axis", "idx"),
    [
        pytest.param(2, _ints(0, 2), id="height"),
        pytest.param(3, _ints(3, 1, 1), id="width"),
        pytest.param(-1, _ints(0, 3), id="width-negative"),
    ],
)
def test_gather_off_the_channel_axis_passes(axis: int, idx: np.ndarray) -> None:
    model = build(GATHER.format(axis=axis), {"w1": (8, 3, 1, 1), "idx": idx, "w2": (4, 8, 1, 1)})
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [0, 3, 5, 6]})
    assert const_input(pruned, "gather", 1).tolist() == idx.tolist()


def test_gather_on_the_channel_axis_is_a_barrier() -> None:
    model = build(
        GATHER.format(axis=1), {"w1": (8, 3, 1, 1), "idx": _ints(0, 2, 5), "w2": (4, 3, 1, 1)}
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        "node 'gather' (Gather) gathers along the channel axis 1",
    )


def test_gather_of_a_scalar_index_drops_the_axis() -> None:
    # Gather(axis=2) with a scalar index: [1, C, H, W] -> [1, C, W]; channels stay on axis 1.
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [gather] t = Gather <axis=2> (a, i)
          [tr] u = Transpose <perm=[0,2,1]> (t)
          [mm] y = MatMul (u, w2)
        }""",
        {"w1": (8, 3, 1, 1), "i": np.array(1, np.int64), "w2": (8, 4)},
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [1, 2, 3, 7]})
    np.testing.assert_array_equal(const_input(pruned, "mm", 1), original(model, "w2")[[1, 2, 3, 7]])


RESIZE = """
g (float[1,3,4,4] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [resize] r = Resize <mode="nearest"> ({args})
  [conv2] y = Conv (r, w2)
}}"""


def test_resize_by_scales_passes() -> None:
    model = build(
        RESIZE.format(args='a, "", scales'),
        {"w1": (8, 3, 1, 1), "scales": _floats(1, 1, 2, 2), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [0, 1, 2, 5, 6]})
    assert const_input(pruned, "resize", 2).tolist() == [1, 1, 2, 2]


def test_resize_by_sizes_rewrites_channel_count() -> None:
    model = build(
        RESIZE.format(args='a, "", "", sizes'),
        {"w1": (8, 3, 1, 1), "sizes": _ints(1, 8, 8, 6), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [0, 1, 2, 5, 6]})
    assert const_input(pruned, "resize", 3).tolist() == [1, 5, 8, 6]


def test_resize_of_channels_is_a_barrier() -> None:
    model = build(
        RESIZE.format(args='a, "", scales'),
        {"w1": (8, 3, 1, 1), "scales": _floats(1, 2, 1, 1), "w2": (4, 16, 1, 1)},
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (
        "node 'resize' (Resize) mixes or drops input axis 1",
    )


def test_expand_of_pooled_channels_rewrites_shape() -> None:
    # SE-style: a [1,C,1,1] map expanded to [1,C,H,W] and multiplied into the features.
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [gap] p = GlobalAveragePool (a)
          [expand] e = Expand (p, shape)
          [mul] m = Mul (a, e)
          [conv2] y = Conv (m, w2)
        }""",
        {"w1": (8, 3, 1, 1), "shape": _ints(1, 8, 4, 4), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [0, 2, 3]})
    assert const_input(pruned, "expand", 1).tolist() == [1, 3, 4, 4]


def test_expand_broadcasting_to_the_channel_count_rewrites_shape() -> None:
    # A one-channel map broadcast to C channels takes its channel count from the constant.
    model = build(
        """
        g (float[1,3,4,4] x, float[1,1,4,4] m) => (float y) {
          [conv1] a = Conv (x, w1)
          [expand] e = Expand (m, shape)
          [add] s = Add (a, e)
          [conv2] y = Conv (s, w2)
        }""",
        {"w1": (8, 3, 1, 1), "shape": _ints(1, 8, 1, 1), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    pruned = prune_exact(model, {0: [1, 3, 4, 5, 7]})
    assert const_input(pruned, "expand", 1).tolist() == [1, 5, 1, 1]


def test_expand_to_run_time_channel_count_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,4,4] x, float[1,1,4,4] m) => (float y) {
          [conv1] a = Conv (x, w1)
          [shape] s = Shape (a)
          [expand] e = Expand (m, s)
          [add] t = Add (a, e)
          [conv2] y = Conv (t, w2)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, False), (4, False)]
    reason = "node 'expand' (Expand) broadcasts to a run-time shape"
    assert reason in model.groups.groups[0].barriers
