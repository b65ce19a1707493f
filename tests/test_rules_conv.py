"""Conv and ConvTranspose channel rules: roots, consumers, grouped convs."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing import oracle
from onnxprune.testing.graphs import (
    attr,
    build,
    const_input,
    original,
    prune_exact,
    structure,
)

# -- tests -----------------------------------------------------------------------------------

REGULAR = """
g (float[1,3,8,8] x) => (float y) {
  [conv1] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (x, w1, b1)
  [relu] r = Relu(a)
  [conv2] y = Conv(r, w2, b2)
}"""


def test_regular_conv_groups() -> None:
    model = build(REGULAR, {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (4, 8, 1, 1), "b2": (4,)})
    assert structure(model) == [(8, True), (4, False)]
    first, last = model.groups.groups
    assert first.root_nodes == ("conv1",)
    assert [(c.node, c.weight.name, c.weight.axis) for c in first.consumers] == [("conv2", "w2", 1)]
    assert [(r.weight.name, r.weight.axis) for r in first.roots] == [("w1", 0)]
    assert last.barriers == ("channels reach graph output 'y'",)


def test_regular_conv_shrinks_filters_bias_and_consumer() -> None:
    model = build(REGULAR, {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (4, 8, 1, 1), "b2": (4,)})
    keep = [0, 2, 3, 5, 7]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "conv1", 1), original(model, "w1")[keep])
    np.testing.assert_array_equal(const_input(pruned, "conv1", 2), original(model, "b1")[keep])
    np.testing.assert_array_equal(const_input(pruned, "conv2", 1), original(model, "w2")[:, keep])
    np.testing.assert_array_equal(const_input(pruned, "conv2", 2), original(model, "b2"))


def test_oracle_is_not_vacuous() -> None:
    # The pruned model matches the zeroed original, not the untouched one.
    model = build(REGULAR, {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (4, 8, 1, 1), "b2": (4,)})
    pruned = prune_exact(model, {0: [0, 2, 3, 5, 7]})
    feeds = oracle.random_feeds(model, seed=1)
    assert oracle.max_rel_error(oracle.run(pruned, feeds), oracle.run(model.proto, feeds)) > 1e-2


GROUPED = """
g (float[1,3,8,8] x) => (float y) {{
  [conv1] a = Conv <kernel_shape=[1,1]> (x, w1)
  [gconv] b = Conv <group={group}, kernel_shape=[3,3], pads=[1,1,1,1]> (a, w2, b2)
  [conv3] y = Conv(b, w3)
}}"""


@pytest.mark.parametrize(
    ("c_in", "c_out", "group", "n_groups", "keep", "new_group"),
    [
        pytest.param(8, 8, 8, 8, [0, 2, 3, 5, 7], 5, id="depthwise"),
        pytest.param(8, 16, 8, 8, [1, 4, 6], 3, id="depthwise-multiplier2"),
        pytest.param(8, 8, 2, 2, [1], 1, id="group2-drop-one-group"),
        pytest.param(16, 8, 4, 4, [0, 2], 2, id="group4-16to8"),
    ],
)
def test_grouped_conv_removes_whole_groups(
    c_in: int, c_out: int, group: int, n_groups: int, keep: list[int], new_group: int
) -> None:
    weights = {
        "w1": (c_in, 3, 1, 1),
        "w2": (c_out, c_in // group, 3, 3),
        "b2": (c_out,),
        "w3": (4, c_out, 1, 1),
    }
    model = build(GROUPED.format(group=group), weights)
    assert structure(model) == [(n_groups, True), (4, False)]
    assert model.groups.groups[0].root_nodes == ("conv1", "gconv")
    pruned = prune_exact(model, {0: keep})
    assert attr(pruned, "gconv", "group") == new_group
    in_per, out_per = c_in // group, c_out // group
    keep_in = [g * in_per + i for g in keep for i in range(in_per)]
    keep_out = [g * out_per + o for g in keep for o in range(out_per)]
    np.testing.assert_array_equal(const_input(pruned, "conv1", 1), original(model, "w1")[keep_in])
    np.testing.assert_array_equal(const_input(pruned, "gconv", 1), original(model, "w2")[keep_out])
    np.testing.assert_array_equal(const_input(pruned, "gconv", 2), original(model, "b2")[keep_out])
    want = original(model, "w3")[:, keep_out]
    np.testing.assert_array_equal(const_input(pruned, "conv3", 1), want)


CONV_TRANSPOSE = """
g (float[1,3,4,4] x) => (float y) {
  [conv1] a = Conv <kernel_shape=[1,1]> (x, w1)
  [deconv] b = ConvTranspose <kernel_shape=[2,2], strides=[2,2]> (a, w2, b2)
  [conv3] y = Conv(b, w3)
}"""


def test_conv_transpose_is_root_and_consumer() -> None:
    model = build(
        CONV_TRANSPOSE, {"w1": (8, 3, 1, 1), "w2": (8, 6, 2, 2), "b2": (6,), "w3": (4, 6, 1, 1)}
    )
    assert structure(model) == [(8, True), (6, True), (4, False)]
    first, second, _ = model.groups.groups
    assert [(c.node, c.weight.axis) for c in first.consumers] == [("deconv", 0)]
    assert [(r.node, r.weight.axis) for r in second.roots] == [("deconv", 1)]
    keep_a, keep_b = [1, 2, 4, 7], [0, 3, 5]
    pruned = prune_exact(model, {0: keep_a, 1: keep_b})
    w2 = original(model, "w2")[keep_a][:, keep_b]
    np.testing.assert_array_equal(const_input(pruned, "deconv", 1), w2)
    np.testing.assert_array_equal(const_input(pruned, "deconv", 2), original(model, "b2")[keep_b])
    np.testing.assert_array_equal(const_input(pruned, "conv3", 1), original(model, "w3")[:, keep_b])


GROUPED_CONV_TRANSPOSE = """
g (float[1,3,4,4] x) => (float y) {
  [conv1] a = Conv <kernel_shape=[1,1]> (x, w1)
  [deconv] b = ConvTranspose <group=2, kernel_shape=[2,2], strides=[2,2]> (a, w2, b2)
  [conv3] y = Conv(b, w3)
}"""


def test_grouped_conv_transpose_removes_whole_groups() -> None:
    # 8 inputs in 2 groups of 4, each group writing 3 outputs (weight [in, out/group, k, k]).
    model = build(
        GROUPED_CONV_TRANSPOSE,
        {"w1": (8, 3, 1, 1), "w2": (8, 3, 2, 2), "b2": (6,), "w3": (4, 6, 1, 1)},
    )
    assert structure(model) == [(2, True), (4, False)]
    pruned = prune_exact(model, {0: [1]})
    assert attr(pruned, "deconv", "group") == 1
    np.testing.assert_array_equal(const_input(pruned, "deconv", 1), original(model, "w2")[4:])
    np.testing.assert_array_equal(const_input(pruned, "deconv", 2), original(model, "b2")[3:])
    np.testing.assert_array_equal(const_input(pruned, "conv3", 1), original(model, "w3")[:, 3:])


def test_conv_with_run_time_weights_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,8,8] x, float[4,8,1,1] wx) => (float y) {
          [conv1] a = Conv (x, w1)
          [conv2] y = Conv (a, wx)
        }""",
        {"w1": (8, 3, 1, 1)},
    )
    assert structure(model) == [(8, False), (4, False)]
    first, second = model.groups.groups
    assert first.barriers == ("node 'conv2' (Conv) has weights computed at run time",)
    # conv2 still roots a group, so the report says why its filters stay.
    assert second.root_nodes == ("conv2",)
    assert second.barriers[0] == "node 'conv2' (Conv) has weights computed at run time"


def test_conv_with_run_time_dequantized_weights_is_a_barrier_naming_the_producer() -> None:
    # Weights behind a DequantizeLinear of constants are prunable (test_rules_quant.py); a
    # scale that arrives at run time is not.
    model = build(
        """
        g (float[1,3,8,8] x, float scale) => (float y) {
          [dq] wd = DequantizeLinear (wq, scale, zero_point)
          [conv1] a = Conv (x, wd)
          [conv2] y = Conv (a, w2)
        }""",
        {
            "wq": np.arange(24, dtype=np.int8).reshape(8, 3, 1, 1),
            "zero_point": np.array(0, np.int8),
            "w2": (4, 8, 1, 1),
        },
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].root_nodes == ("conv1",)
    assert model.groups.groups[0].barriers == (
        "node 'conv1' (Conv) has weights computed at run time by node 'dq' (DequantizeLinear)",
    )


def test_seeded_plan_on_every_group_is_exact() -> None:
    model = build(
        CONV_TRANSPOSE, {"w1": (8, 3, 1, 1), "w2": (8, 6, 2, 2), "b2": (6,), "w3": (4, 6, 1, 1)}
    )
    plan = oracle.every_other_plan(model, share=0.5, seed=3)
    assert sorted(plan) == [0, 1] and [len(k) for k in plan.values()] == [4, 3]
    prune_exact(model, plan)


def _conv_node(bias: bool, group: int = 1):  # type: ignore[no-untyped-def]
    model = build(f"""
        g (float[1,4,5,5] x) => (float y) {{
          [conv] y = Conv <group={group}> (x, w{", b" if bias else ""})
        }}""", {"w": (4, 4 // group, 3, 3), **({"b": (4,)} if bias else {})})
    cg = model.channel_graph()
    return cg.ctx, next(n for n in cg.ctx.graph.nodes if n.name == "conv")


@pytest.mark.parametrize("bias", [False, True])
def test_conv_bias_fold_adds_to_b_or_creates_it(bias: bool) -> None:
    from onnxprune.channels.rules import weight_op

    ctx, node = _conv_node(bias)
    before = ctx.input_const(node, 2) if bias else np.zeros(4, np.float32)
    change = np.arange(4.0)
    assert weight_op("Conv").add_bias(ctx, node, change, np.dtype(np.float32))
    np.testing.assert_allclose(ctx.input_const(node, 2), before + change, rtol=1e-6)


@pytest.mark.parametrize(("op", "group", "layout"), [
    ("Conv", 1, (1, 1, False)), ("Conv", 4, (1, 0, True)), ("Conv", 2, None),
    ("ConvTranspose", 1, (1, 0, False)), ("ConvTranspose", 4, None),
])  # fmt: skip
def test_conv_refit_layout(op: str, group: int, layout: object) -> None:
    from onnxprune.channels.rules import weight_op

    layout_fn = weight_op(op).layout  # W [4, 4/group, 3, 3]: out (Conv) or in (transposed)
    assert layout_fn is not None
    assert layout_fn({"group": group}, (1, 4, 5, 5), (4, 4 // group, 3, 3)) == layout
