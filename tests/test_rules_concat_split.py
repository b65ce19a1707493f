"""Concat, Split and Slice channel rules: channels keep their identity at an offset."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing.graphs import (
    attr,
    build,
    const_input,
    node,
    original,
    prune_exact,
    structure,
)

# -- tests -----------------------------------------------------------------------------------

INT64_MAX = np.iinfo(np.int64).max


def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def test_concat_on_channel_axis_gives_one_group_per_input() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [conv2] b = Conv (x, w2)
          [cat] c = Concat <axis=1> (a, b)
          [conv3] y = Conv (c, w3)
        }""",
        {"w1": (6, 3, 1, 1), "w2": (4, 3, 1, 1), "w3": (5, 10, 1, 1)},
    )
    assert structure(model) == [(6, True), (4, True), (5, False)]
    first, second, _ = model.groups.groups
    assert (first.root_nodes, second.root_nodes) == (("conv1",), ("conv2",))
    assert [c.node for c in first.consumers] == [c.node for c in second.consumers] == ["conv3"]
    keep_a, keep_b = [0, 2, 5], [1, 3]
    pruned = prune_exact(model, {0: keep_a, 1: keep_b})
    cols = keep_a + [6 + i for i in keep_b]
    np.testing.assert_array_equal(const_input(pruned, "conv3", 1), original(model, "w3")[:, cols])


def test_concat_with_constant_channels_keeps_them() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [cat] c = Concat <axis=1> (k, a)
          [conv3] y = Conv (c, w3)
        }""",
        {"w1": (6, 3, 1, 1), "k": (1, 2, 4, 4), "w3": (5, 8, 1, 1)},
    )
    assert structure(model) == [(6, True), (5, False)]
    keep = [1, 2, 4]
    pruned = prune_exact(model, {0: keep})
    cols = [0, 1] + [2 + i for i in keep]
    np.testing.assert_array_equal(const_input(pruned, "conv3", 1), original(model, "w3")[:, cols])
    np.testing.assert_array_equal(const_input(pruned, "cat", 0), original(model, "k"))


def test_concat_off_the_channel_axis_couples_inputs() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [conv2] b = Conv (x, w2)
          [cat] c = Concat <axis=2> (a, k, b)
          [conv3] y = Conv (c, w3)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (8, 3, 1, 1), "k": (1, 8, 2, 4), "w3": (5, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (5, False)]
    assert model.groups.groups[0].root_nodes == ("conv1", "conv2")
    keep = [0, 3, 4, 6]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "cat", 1), original(model, "k")[:, keep])


SPLIT = """
g (float[1,3,4,4] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [split] {outs} = Split {attrs} ({args})
  {convs}
  [sum] y = Sum({heads})
}}"""


def _split_graph(n: int, attrs: str, args: str) -> str:
    outs = ", ".join(f"s{i}" for i in range(n))
    convs = "\n  ".join(f"[head{i}] h{i} = Conv (s{i}, wh{i})" for i in range(n))
    heads = ", ".join(f"h{i}" for i in range(n))
    return SPLIT.format(outs=outs, attrs=attrs, args=args, convs=convs, heads=heads)


@pytest.mark.parametrize(
    ("opset", "attrs", "args", "sizes", "keep", "new_sizes"),
    [
        pytest.param(
            13, "<axis=1>", "a, split", [3, 5], [0, 2, 3, 6, 7], [2, 3], id="opset13-input"
        ),
        pytest.param(13, "<axis=1>", "a", [4, 4], [1, 2, 3, 4], [3, 1], id="opset13-equal"),
        pytest.param(
            18, "<axis=1, num_outputs=2>", "a", [4, 4], [0, 5, 6], [1, 2], id="opset18-num_outputs"
        ),
        pytest.param(
            18,
            "<axis=1, num_outputs=3>",
            "a",
            [3, 3, 2],
            [0, 1, 2, 4, 7],
            [3, 1, 1],
            id="opset18-num_outputs-uneven",
        ),
        pytest.param(
            11, "<axis=1, split=[3,5]>", "a", [3, 5], [1, 3, 4], [1, 2], id="opset11-attr"
        ),
        pytest.param(11, "<axis=-3>", "a", [4, 4], [0, 1, 7], [2, 1], id="opset11-equal"),
    ],
)
def test_split_on_channel_axis_rewrites_sizes(
    opset: int, attrs: str, args: str, sizes: list[int], keep: list[int], new_sizes: list[int]
) -> None:
    weights: dict[str, tuple[int, ...] | np.ndarray] = {"w1": (8, 3, 1, 1), "split": _ints(*sizes)}
    weights |= {f"wh{i}": (5, s, 1, 1) for i, s in enumerate(sizes)}
    model = build(_split_graph(len(sizes), attrs, args), weights, opset=opset)
    assert structure(model) == [(8, True), (5, False)]
    group = model.groups.groups[0]
    assert sorted(c.node for c in group.consumers) == [f"head{i}" for i in range(len(sizes))]
    pruned = prune_exact(model, {0: keep})
    split = node(pruned, "split")
    if opset >= 13:
        assert const_input(pruned, "split", 1).tolist() == new_sizes
        assert "num_outputs" not in [a.name for a in split.attribute]
    else:
        assert attr(pruned, "split", "split") == new_sizes
    bounds = np.cumsum([0, *sizes])
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        cols = [c - lo for c in keep if lo <= c < hi]
        np.testing.assert_array_equal(
            const_input(pruned, f"head{i}", 1), original(model, f"wh{i}")[:, cols]
        )


def test_split_off_the_channel_axis_passes() -> None:
    weights = {"w1": (8, 3, 1, 1), "split": _ints(1, 3), "wh0": (5, 8, 1, 1), "wh1": (5, 8, 1, 1)}
    graph = _split_graph(2, "<axis=2>", "a, split")
    model = build(graph.replace("Sum(h0, h1)", "Concat <axis=2> (h0, h1)"), weights)
    assert structure(model) == [(8, True), (5, False)]
    keep = [2, 3, 5]
    pruned = prune_exact(model, {0: keep})
    assert const_input(pruned, "split", 1).tolist() == [1, 3]
    np.testing.assert_array_equal(const_input(pruned, "head1", 1), original(model, "wh1")[:, keep])


SLICE = """
g (float[1,3,4,4] x) => (float y) {
  [conv1] a = Conv (x, w1)
  [slice] s = Slice (a, starts, ends, axes, steps)
  [conv2] y = Conv (s, w2)
}"""


@pytest.mark.parametrize(
    ("starts", "ends", "keep", "new_bounds"),
    [
        pytest.param(2, 6, [1, 2, 4, 5, 6], (1, 4), id="middle"),
        pytest.param(-6, INT64_MAX, [0, 3, 7], (1, 3), id="negative-start-open-end"),
        pytest.param(0, -2, [0, 5, 6, 7], (0, 2), id="negative-end"),
    ],
)
def test_slice_on_channel_axis_recounts_bounds(
    starts: int, ends: int, keep: list[int], new_bounds: tuple[int, int]
) -> None:
    lo, hi = (starts % 8 if starts < 0 else starts), min(ends % 8 if ends < 0 else ends, 8)
    weights = {
        "w1": (8, 3, 1, 1),
        "starts": _ints(starts),
        "ends": _ints(ends),
        "axes": _ints(1),
        "steps": _ints(1),
        "w2": (5, hi - lo, 1, 1),
    }
    model = build(SLICE, weights)
    assert structure(model) == [(8, True), (5, False)]
    pruned = prune_exact(model, {0: keep})
    assert (const_input(pruned, "slice", 1).tolist(), const_input(pruned, "slice", 2).tolist()) == (
        [new_bounds[0]],
        [new_bounds[1]],
    )
    cols = [c - lo for c in keep if lo <= c < hi]
    np.testing.assert_array_equal(const_input(pruned, "conv2", 1), original(model, "w2")[:, cols])


def test_slice_on_channel_axis_opset9_attributes() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [slice] s = Slice <starts=[1], ends=[5], axes=[1]> (a)
          [conv2] y = Conv (s, w2)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (5, 4, 1, 1)},
        opset=9,
    )
    assert structure(model) == [(8, True), (5, False)]
    pruned = prune_exact(model, {0: [0, 2, 4, 6]})
    assert (attr(pruned, "slice", "starts"), attr(pruned, "slice", "ends")) == ([1], [3])


def test_strided_slice_of_channels_is_a_barrier() -> None:
    weights = {
        "w1": (8, 3, 1, 1),
        "starts": _ints(0),
        "ends": _ints(8),
        "axes": _ints(1),
        "steps": _ints(2),
        "w2": (5, 4, 1, 1),
    }
    model = build(SLICE, weights)
    assert structure(model) == [(8, False), (5, False)]
    assert model.groups.groups[0].barriers == ("node 'slice' (Slice) takes every 2th channel",)


def test_slice_off_the_channel_axis_passes() -> None:
    weights = {
        "w1": (8, 3, 1, 1),
        "starts": _ints(1, 0),
        "ends": _ints(3, -1),
        "axes": _ints(2, 3),
        "steps": _ints(1, 1),
        "w2": (5, 8, 1, 1),
    }
    model = build(SLICE, weights)
    assert structure(model) == [(8, True), (5, False)]
    keep = [1, 2, 3, 7]
    pruned = prune_exact(model, {0: keep})
    assert const_input(pruned, "slice", 1).tolist() == [1, 0]
    assert const_input(pruned, "slice", 2).tolist() == [3, -1]
    np.testing.assert_array_equal(const_input(pruned, "conv2", 1), original(model, "w2")[:, keep])
