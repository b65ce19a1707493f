"""LSTM/GRU/RNN channel rule: X's features are consumed by W, the hidden size is a barrier."""

from __future__ import annotations

import numpy as np
import pytest

import onnxprune
from onnxprune.metrics import RECURRENT_GATES, node_macs, recurrent_macs
from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

# A conv map [N, C, 1, T] made a sequence [T, N, C] (Squeeze + Transpose), then the op.
CONV_SEQ = """
g (float[2,3,1,7] x) => (float y, float yh) {{
  [conv] a = Conv (x, wc, bc)
  [relu] r = Relu(a)
  [sq] s = Squeeze(r, axes)
  [tr] t = Transpose <perm=[2,0,1]> (s)
  [rec] y, yh = {op} <hidden_size=3, direction="{direction}"> (t, W, R, B)
}}"""

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _weights(op: str, dirs: int) -> dict[str, object]:
    g = GATES[op]
    return {
        "wc": (8, 3, 1, 1), "bc": (8,), "axes": np.array([2], np.int64),
        "W": (dirs, g * 3, 8), "R": (dirs, g * 3, 3), "B": (dirs, 2 * g * 3),
    }  # fmt: skip


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize(("direction", "dirs"), [("forward", 1), ("bidirectional", 2)])
def test_features_feeding_x_are_pruned_with_w_columns(op: str, direction: str, dirs: int) -> None:
    model = build(CONV_SEQ.format(op=op, direction=direction), _weights(op, dirs), opset=14)
    assert structure(model) == [(8, True)]
    group = model.groups.groups[0]
    assert [(c.node, c.weight.name, c.weight.axis) for c in group.consumers] == [("rec", "W", 2)]
    keep = [0, 2, 3, 7]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "rec", 1), original(model, "W")[:, :, keep])
    np.testing.assert_array_equal(const_input(pruned, "rec", 2), original(model, "R"))


LAYOUT1 = """
g (float[2,5,4] x) => (float y) {
  [mm] a = MatMul (x, wm)
  [rec] y = GRU <hidden_size=3, layout=1, linear_before_reset=1> (a, W, R)
}"""


def test_batch_first_layout_consumes_the_last_axis() -> None:
    # Structure only: onnxruntime's CPU kernels refuse layout=1, so no pruned run to compare.
    model = build(LAYOUT1, {"wm": (4, 6), "W": (1, 9, 6), "R": (1, 9, 3)}, opset=14)
    assert structure(model) == [(6, True)]
    (consumer,) = model.groups.groups[0].consumers
    assert (consumer.node, consumer.space.axis, consumer.weight.axis) == ("rec", 2, 2)


HIDDEN = """
g (float[5,2,4] x, float[1,2,6] z) => (float y) {
  [rec] seq, yh = LSTM <hidden_size=3> (x, W, R)
  [mm] m = MatMul (z, wm)
  [add] y = Add (yh, m)
}"""


def test_hidden_size_is_a_barrier_with_its_reason() -> None:
    model = build(HIDDEN, {"W": (1, 12, 4), "R": (1, 12, 3), "wm": (6, 3)}, opset=14)
    assert structure(model) == [(3, False)]
    (reason,) = model.groups.groups[0].barriers[:1]
    assert "node 'rec' (LSTM): its hidden size is not pruned" in reason


READ_Y = """
g (float[5,2,4] x) => (float y) {
  [rec] seq = GRU <hidden_size=3, direction="bidirectional"> (x, W, R)
  [tr] t = Transpose <perm=[0,2,1,3]> (seq)
  [flat] f = Reshape (t, shape)
  [mm] y = MatMul (f, wm)
}"""


def test_hidden_units_read_downstream_form_a_blocked_group_with_the_reason() -> None:
    weights = {"W": (2, 9, 4), "R": (2, 9, 3), "shape": np.array([5, 2, 6], np.int64),
               "wm": (6, 2)}
    model = build(READ_Y, weights, opset=14)
    hidden = next(g for g in model.groups.groups if g.root_nodes == ("rec",))
    assert (hidden.size, hidden.prunable) == (3, False)
    assert hidden.barriers[0].startswith("node 'rec' (GRU): its hidden size is not pruned")
    assert [c.node for c in hidden.consumers] == ["mm"]


STATE = """
g (float[5,2,4] x, float[2,6] z) => (float y) {
  [gemm] h = Gemm (z, wg)
  [un] h0 = Unsqueeze (h, axes)
  [rec] y = RNN <hidden_size=3> (x, W, R, , , h0)
}"""


def test_channels_reaching_an_initial_state_block() -> None:
    weights = {"W": (1, 3, 4), "R": (1, 3, 3), "wg": (6, 3), "axes": np.array([0], np.int64)}
    model = build(STATE, weights, opset=14)
    assert structure(model) == [(3, False)]
    assert "state or weight input of node 'rec' (RNN)" in model.groups.groups[0].barriers[0]


@pytest.mark.parametrize(
    ("op", "dirs", "want"),
    [
        pytest.param("LSTM", 2, (7 * 2 * 2 * 12 * 8, 7 * 2 * 2 * 12 * 3), id="LSTM-bidi"),
        pytest.param("GRU", 1, (7 * 2 * 9 * 8, 7 * 2 * 9 * 3), id="GRU"),
        pytest.param("RNN", 2, (7 * 2 * 2 * 3 * 8, 7 * 2 * 2 * 3 * 3), id="RNN-bidi"),
    ],
)
def test_recurrent_macs_split_into_projection_and_recurrence(
    op: str, dirs: int, want: tuple[int, int]
) -> None:
    w = (dirs, RECURRENT_GATES[op] * 3, 8)
    assert recurrent_macs(op, (7, 2, 8), w) == want
    assert node_macs(op, {}, [(7, 2, 8), w], (7, dirs, 2, 3)) == sum(want)


def test_pruning_features_lowers_only_the_projection_macs() -> None:
    model = build(CONV_SEQ.format(op="LSTM", direction="bidirectional"), _weights("LSTM", 2),
                  opset=14)
    before = model.cost.node_macs["rec"]
    pruned = prune_exact(model, {0: [0, 1, 2, 3]})  # 8 -> 4 input features
    after = onnxprune.load(pruned).cost.node_macs["rec"]
    steps_batch, rows = 7 * 2, 2 * 12
    assert before - after == steps_batch * rows * 4


@pytest.mark.parametrize("op", sorted(GATES))
def test_recurrent_bias_fold_creates_b_with_the_w_half(op: str) -> None:
    from onnxprune.channels.rules import weight_op

    g = GATES[op]
    model = build(f"""
        g (float[7,2,8] x) => (float y) {{
          [rec] y, yh = {op} <hidden_size=3> (x, W, R)
        }}""", {"W": (1, g * 3, 8), "R": (1, g * 3, 3)})
    cg = model.channel_graph()
    node = next(n for n in cg.ctx.graph.nodes if n.name == "rec")
    change = np.arange(g * 3.0)[None]
    wop = weight_op(op)
    assert wop.add_bias(cg.ctx, node, change, np.dtype(np.float32))
    b = cg.ctx.input_const(node, 3)
    np.testing.assert_array_equal(b, np.concatenate([change, np.zeros_like(change)], 1))
    assert wop.layout is not None and wop.layout({}, (7, 2, 8), (1, g * 3, 8)) is None
