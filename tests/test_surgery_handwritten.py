"""Surgery against hand-written expectations, independent of the channel graph.

The zeroed-channel oracle (``onnxprune.testing.oracle``) derives which consumer weights to
zero from the same channel graph the surgery uses, so a rule bug could hide in both. Here
every expected shape and slice is written by hand from the architecture: for each small
graph (ONNX text syntax) and a hand-picked kept set, the pruned weights must be exactly the
original's rows/columns listed below, and the pruned model must equal the original with the
dropped channels' readers zeroed *by hand* (onnxruntime, 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import onnxprune
from onnxprune import ir
from onnxprune.surgery import apply_plan
from onnxprune.testing.oracle import run

RNG = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _model(text: str, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in weights.items())
    return model


def _prune(model: onnx.ModelProto, root: str, keep: Sequence[int]) -> onnx.ModelProto:
    loaded = onnxprune.load(model)
    (group,) = [g for g in loaded.groups.groups if root in g.root_nodes]
    assert group.prunable, group.barriers
    return apply_plan(loaded, {group.id: list(keep)})


def _input(model: onnx.ModelProto, node: str, i: int) -> np.ndarray:
    return ir.node_inputs(model, [(node, i)])[(node, i)][1]


def _same_outputs(a: onnx.ModelProto, b: onnx.ModelProto, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    (ya,), (yb,) = run(a, {"x": x}), run(b, {"x": x})
    assert ya.shape == yb.shape
    assert np.abs(ya - yb).max() <= 1e-5 * max(1.0, float(np.abs(ya).max()))


def _zero(model: onnx.ModelProto, name: str, index: tuple) -> onnx.ModelProto:
    """The original with ``initializer[name][index] = 0`` (the hand-written oracle)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        if t.name == name:
            v = numpy_helper.to_array(t).copy()
            v[index] = 0
            t.CopyFrom(numpy_helper.from_array(v, name))
    return out


CHAIN = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 3, 6, 6] x) => (float[1, 5, 6, 6] y) {
    a = Conv <pads = [1, 1, 1, 1], kernel_shape = [3, 3]> (x, W1, B1)
    r = Relu (a)
    y = Conv <kernel_shape = [1, 1]> (r, W2, B2)
}
"""


def test_chain_conv_relu_conv() -> None:
    w = {"W1": _w(4, 3, 3, 3), "B1": _w(4), "W2": _w(5, 4, 1, 1), "B2": _w(5)}
    model = _model(CHAIN, w)
    model.graph.node[0].name, model.graph.node[2].name = "c1", "c2"
    pruned = _prune(model, "c1", [0, 2])
    np.testing.assert_array_equal(_input(pruned, "c1", 1), w["W1"][[0, 2]])
    np.testing.assert_array_equal(_input(pruned, "c1", 2), w["B1"][[0, 2]])
    np.testing.assert_array_equal(_input(pruned, "c2", 1), w["W2"][:, [0, 2]])
    np.testing.assert_array_equal(_input(pruned, "c2", 2), w["B2"])
    _same_outputs(pruned, _zero(model, "W2", (slice(None), [1, 3])), (1, 3, 6, 6))


RESIDUAL = """
<ir_version: 8, opset_import: ["" : 17]>
residual (float[1, 3, 4, 4] x) => (float[1, 2, 4, 4] y) {
    a = Conv <kernel_shape = [1, 1]> (x, Wa)
    b = Conv <kernel_shape = [1, 1]> (x, Wb, Bb)
    s = Add (a, b)
    y = Conv <kernel_shape = [1, 1]> (s, Wc)
}
"""


def test_residual_add_prunes_both_producers_alike() -> None:
    w = {"Wa": _w(4, 3, 1, 1), "Wb": _w(4, 3, 1, 1), "Bb": _w(4), "Wc": _w(2, 4, 1, 1)}
    model = _model(RESIDUAL, w)
    for node, name in zip(model.graph.node, ("ca", "cb", "add", "cc"), strict=True):
        node.name = name
    pruned = _prune(model, "ca", [1, 3])
    np.testing.assert_array_equal(_input(pruned, "ca", 1), w["Wa"][[1, 3]])
    np.testing.assert_array_equal(_input(pruned, "cb", 1), w["Wb"][[1, 3]])
    np.testing.assert_array_equal(_input(pruned, "cb", 2), w["Bb"][[1, 3]])
    np.testing.assert_array_equal(_input(pruned, "cc", 1), w["Wc"][:, [1, 3]])
    _same_outputs(pruned, _zero(model, "Wc", (slice(None), [0, 2])), (1, 3, 4, 4))


CONCAT = """
<ir_version: 8, opset_import: ["" : 17]>
concat (float[1, 2, 4, 4] x) => (float[1, 3, 4, 4] y) {
    a = Conv <kernel_shape = [1, 1]> (x, Wa)
    b = Conv <kernel_shape = [1, 1]> (x, Wb)
    c = Concat <axis = 1> (a, b)
    y = Conv <kernel_shape = [1, 1]> (c, Wc)
}
"""


def test_concat_offsets_the_second_input() -> None:
    w = {"Wa": _w(3, 2, 1, 1), "Wb": _w(2, 2, 1, 1), "Wc": _w(3, 5, 1, 1)}
    model = _model(CONCAT, w)
    for node, name in zip(model.graph.node, ("ca", "cb", "cat", "cc"), strict=True):
        node.name = name
    pruned = _prune(model, "cb", [1])  # b's channel 1 is channel 4 of the concat
    np.testing.assert_array_equal(_input(pruned, "ca", 1), w["Wa"])
    np.testing.assert_array_equal(_input(pruned, "cb", 1), w["Wb"][[1]])
    np.testing.assert_array_equal(_input(pruned, "cc", 1), w["Wc"][:, [0, 1, 2, 4]])
    _same_outputs(pruned, _zero(model, "Wc", (slice(None), [3])), (1, 2, 4, 4))


FLATTEN_GEMM = """
<ir_version: 8, opset_import: ["" : 17]>
flat (float[1, 2, 2, 2] x) => (float[1, 6] y) {
    a = Conv <kernel_shape = [1, 1]> (x, Wa, Ba)
    r = Relu (a)
    f = Flatten <axis = 1> (r)
    y = Gemm <transB = 1> (f, Wg, Bg)
}
"""


def test_flatten_gemm_keeps_each_channels_block_of_features() -> None:
    w = {"Wa": _w(4, 2, 1, 1), "Ba": _w(4), "Wg": _w(6, 16), "Bg": _w(6)}
    model = _model(FLATTEN_GEMM, w)
    for node, name in zip(model.graph.node, ("ca", "relu", "flat", "gemm"), strict=True):
        node.name = name
    pruned = _prune(model, "ca", [1, 3])
    # channel c of a 2x2 map owns features 4c..4c+3 of the flattened vector
    np.testing.assert_array_equal(_input(pruned, "ca", 1), w["Wa"][[1, 3]])
    np.testing.assert_array_equal(_input(pruned, "gemm", 1),
                                  w["Wg"][:, [4, 5, 6, 7, 12, 13, 14, 15]])
    np.testing.assert_array_equal(_input(pruned, "gemm", 2), w["Bg"])
    _same_outputs(pruned, _zero(model, "Wg", (slice(None), [0, 1, 2, 3, 8, 9, 10, 11])),
                  (1, 2, 2, 2))


DEPTHWISE = """
<ir_version: 8, opset_import: ["" : 17]>
dw (float[1, 2, 5, 5] x) => (float[1, 3, 5, 5] y) {
    a = Conv <kernel_shape = [1, 1]> (x, Wa)
    d = Conv <group = 4, pads = [1, 1, 1, 1], kernel_shape = [3, 3]> (a, Wd, Bd)
    y = Conv <kernel_shape = [1, 1]> (d, Wc)
}
"""


@pytest.mark.parametrize("keep", [[0, 3], [2]])
def test_depthwise_follows_its_input_and_shrinks_group(keep: list[int]) -> None:
    w = {"Wa": _w(4, 2, 1, 1), "Wd": _w(4, 1, 3, 3), "Bd": _w(4), "Wc": _w(3, 4, 1, 1)}
    model = _model(DEPTHWISE, w)
    for node, name in zip(model.graph.node, ("ca", "dw", "cc"), strict=True):
        node.name = name
    pruned = _prune(model, "ca", keep)
    np.testing.assert_array_equal(_input(pruned, "ca", 1), w["Wa"][keep])
    np.testing.assert_array_equal(_input(pruned, "dw", 1), w["Wd"][keep])
    np.testing.assert_array_equal(_input(pruned, "dw", 2), w["Bd"][keep])
    np.testing.assert_array_equal(_input(pruned, "cc", 1), w["Wc"][:, keep])
    (dw,) = [n for n in pruned.graph.node if n.name == "dw"]
    group = [a.i for a in dw.attribute if a.name == "group"]
    assert group == [len(keep)]
    gone = [c for c in range(4) if c not in keep]
    _same_outputs(pruned, _zero(model, "Wc", (slice(None), gone)), (1, 2, 5, 5))
