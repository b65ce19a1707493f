"""QDQ graphs: channels pass Quantize/DequantizeLinear, weights behind DequantizeLinear shrink."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.surgery import apply_plan
from onnxprune.testing import oracle
from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

RNG = np.random.default_rng(0)


def _q(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(-127, 128, shape).astype(np.int8)


def _init(proto: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == name))


def _dq_inputs(proto: onnx.ModelProto, node: str, i: int) -> list[str]:
    """Inputs of the DequantizeLinear feeding input ``i`` of ``node``."""
    name = next(n for n in proto.graph.node if n.name == node).input[i]
    return list(next(n for n in proto.graph.node if name in n.output).input)


ACTIVATIONS = """
g (float[1,3,4,4] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [q] q = QuantizeLinear <axis=1> (a, {scale}, {zp})
  [dq] d = DequantizeLinear <axis=1> (q, {scale}, {zp})
  [conv2] b = Conv (d, w2)
  [conv3] y = Conv (b, w3)
}}"""


@pytest.mark.parametrize("per_axis", [False, True], ids=["per-tensor", "per-axis"])
def test_activations_pass_quantize_dequantize(per_axis: bool) -> None:
    scale = np.linspace(0.01, 0.08, 8, dtype=np.float32) if per_axis else np.float32(0.05)
    zp = np.arange(8, dtype=np.int8) - 4 if per_axis else np.int8(1)
    weights = {"w1": (8, 3, 1, 1), "s": np.asarray(scale), "z": np.asarray(zp),
               "w2": (6, 8, 1, 1), "w3": (4, 6, 1, 1)}
    model = build(ACTIVATIONS.format(scale="s", zp="z"), weights)
    assert structure(model) == [(8, True), (6, True), (4, False)]
    keep = [0, 2, 5, 7]
    pruned = prune_exact(model, {0: keep, 1: [1, 2, 4]})
    s, z = _dq_inputs(pruned, "conv2", 0)[1:]
    want_s, want_z = (scale[keep], zp[keep]) if per_axis else (scale, zp)
    np.testing.assert_array_equal(_init(pruned, s), want_s)
    np.testing.assert_array_equal(_init(pruned, z), want_z)


CONV_QDQ = """
g (float[1,3,5,5] x) => (float y) {
  [dqw1] w1 = DequantizeLinear <axis=0> (w1q, w1s, w1z)
  [dqb1] b1 = DequantizeLinear <axis=0> (b1q, b1s)
  [conv1] a = Conv <pads=[1,1,1,1]> (x, w1, b1)
  [relu] r = Relu (a)
  [dqw2] w2 = DequantizeLinear <axis=0> (w2q, w2s, w2z)
  [conv2] y = Conv (r, w2)
}"""


def _conv_weights(per_channel: bool) -> dict[str, object]:
    n1 = 8 if per_channel else 1
    n2 = 4 if per_channel else 1
    def vec(n: int, lo: float, hi: float) -> np.ndarray:  # noqa: E306
        v = np.linspace(lo, hi, n, dtype=np.float32)
        return v if per_channel else v.reshape(())
    return {
        "w1q": _q((8, 3, 3, 3)), "w1s": vec(n1, 0.01, 0.03),
        "w1z": np.zeros(n1 if per_channel else (), np.int8),
        "b1q": RNG.integers(-3000, 3000, 8).astype(np.int32), "b1s": vec(n1, 1e-4, 3e-4),
        "w2q": _q((4, 8, 1, 1)), "w2s": vec(n2, 0.02, 0.05),
        "w2z": (np.arange(n2) - 1).astype(np.int8).reshape(n2 if per_channel else ()),
    }  # fmt: skip


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_conv_weights_behind_dequantize_are_sliced_with_their_scales(per_channel: bool) -> None:
    weights = _conv_weights(per_channel)
    model = build(CONV_QDQ, weights)
    assert structure(model) == [(8, True), (4, False)]
    keep = [1, 2, 4, 6, 7]
    pruned = prune_exact(model, {0: keep})
    w1q, w1s, w1z = _dq_inputs(pruned, "conv1", 1)
    np.testing.assert_array_equal(_init(pruned, w1q), weights["w1q"][keep])
    pick = (lambda v: v[keep]) if per_channel else (lambda v: v)
    np.testing.assert_array_equal(_init(pruned, w1s), pick(weights["w1s"]))
    np.testing.assert_array_equal(_init(pruned, w1z), pick(weights["w1z"]))
    b1q, b1s = _dq_inputs(pruned, "conv1", 2)
    np.testing.assert_array_equal(_init(pruned, b1q), weights["b1q"][keep])
    np.testing.assert_array_equal(_init(pruned, b1s), pick(weights["b1s"]))
    # conv2 drops input channels: axis 1, not its quantisation axis, so its scales stay.
    w2q, w2s, w2z = _dq_inputs(pruned, "conv2", 1)
    np.testing.assert_array_equal(_init(pruned, w2q), weights["w2q"][:, keep])
    np.testing.assert_array_equal(_init(pruned, w2s), weights["w2s"])
    np.testing.assert_array_equal(_init(pruned, w2z), weights["w2z"])


SHARED = """
g (float[1,3,4,4] x) => (float y, float u) {
  [dqw] w = DequantizeLinear <axis=0> (wq, ws)
  [conv1] a = Conv (x, w1)
  [conv2] y = Conv (a, w)
  [conv3] z = Conv (x, w3)
  [conv4] u = Conv (z, w)
}"""


def test_dequantized_weight_read_by_two_nodes_is_sliced_per_reader() -> None:
    weights = {"w1": (3, 3, 1, 1), "wq": _q((4, 3, 1, 1)), "ws": np.array(0.02, np.float32),
               "w3": (3, 3, 1, 1)}
    model = build(SHARED, weights)
    ids = {g.root_nodes: g.id for g in model.groups.groups if g.prunable}
    assert sorted(ids) == [("conv1",), ("conv3",)]
    # (The zeroed oracle cannot zero a shared weight for one reader: compare directly.)
    pruned = apply_plan(model, {ids["conv1",]: [0, 2]})
    q2, q4 = (_init(pruned, _dq_inputs(pruned, n, 1)[0]) for n in ("conv2", "conv4"))
    np.testing.assert_array_equal(q2, weights["wq"][:, [0, 2]])
    np.testing.assert_array_equal(q4, weights["wq"])
    feeds = oracle.random_feeds(model, seed=1)
    (_, u), (_, u_pruned) = oracle.run(model.proto, feeds), oracle.run(pruned, feeds)
    np.testing.assert_array_equal(u_pruned, u)


# Activations are QDQ'd with fixed scales as quantize_static writes them (a DequantizeLinear'd
# weight alone makes onnxruntime quantise the activation dynamically, from its own range).
GEMM_QDQ = """
g (float[2,6] x) => (float y) {
  [qx] xq = QuantizeLinear (x, sx, zx)
  [dqx] xd = DequantizeLinear (xq, sx, zx)
  [dqw1] w1 = DequantizeLinear <axis=0> (w1q, w1s)
  [gemm] a = Gemm <transB=1> (xd, w1)
  [qa] aq = QuantizeLinear (a, sa, zx)
  [dqa] ad = DequantizeLinear (aq, sa, zx)
  [dqw2] w2 = DequantizeLinear <axis=1> (w2q, w2s, w2z)
  [mm] y = MatMul (ad, w2)
}"""


def test_gemm_and_matmul_weights_behind_dequantize() -> None:
    weights = {"w1q": _q((8, 6)), "w1s": np.linspace(0.01, 0.02, 8, dtype=np.float32),
               "w2q": _q((8, 3)), "w2s": np.linspace(0.01, 0.02, 3, dtype=np.float32),
               "w2z": np.array([1, 0, -1], np.int8), "sx": np.array(0.03, np.float32),
               "sa": np.array(0.1, np.float32), "zx": np.array(0, np.int8)}
    model = build(GEMM_QDQ, weights)
    assert structure(model) == [(8, True), (3, False)]
    keep = [0, 3, 4, 7]
    pruned = prune_exact(model, {0: keep})
    w1q, w1s = _dq_inputs(pruned, "gemm", 1)
    np.testing.assert_array_equal(_init(pruned, w1q), weights["w1q"][keep])
    np.testing.assert_array_equal(_init(pruned, w1s), weights["w1s"][keep])
    w2q, w2s, _ = _dq_inputs(pruned, "mm", 1)
    np.testing.assert_array_equal(_init(pruned, w2q), weights["w2q"][keep])
    np.testing.assert_array_equal(_init(pruned, w2s), weights["w2s"])


def test_run_time_scale_on_activations_is_a_barrier() -> None:
    model = build(
        ACTIVATIONS.format(scale="s", zp="z").replace("float[1,3,4,4] x",
                                                      "float[1,3,4,4] x, float s"),
        {"w1": (8, 3, 1, 1), "z": np.array(0, np.int8), "w2": (6, 8, 1, 1), "w3": (4, 6, 1, 1)},
    )
    assert structure(model)[0] == (8, False)
    assert model.groups.groups[0].barriers[0] == (
        "node 'q' (QuantizeLinear) has a scale computed at run time"
    )


def test_original_weights_are_unchanged_by_pruning() -> None:
    weights = _conv_weights(True)
    model = build(CONV_QDQ, weights)
    prune_exact(model, {0: [0, 1]})
    np.testing.assert_array_equal(original(model, "w1q"), weights["w1q"])
    assert const_input(model.proto, "dqw1", 0).shape == (8, 3, 3, 3)
