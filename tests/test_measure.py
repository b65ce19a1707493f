"""The output-aware measure: look-through to logits, std blocks, equal energy, weights."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import parser

import onnxprune
from onnxprune.analysis.measure import calibrate, locate, measured, output_measures
from onnxprune.data import Dataset
from onnxprune.shim.module import Shim

_TWO_HEADS = """
<ir_version: 8, opset_import: ["": 17]>
g (float[N, 4] x) => (float[N, 6] box, float[N, 3] prob, float[N, 3] score) {
    box = MatMul(x, wb)
    logits = MatMul(x, wp)
    soft = Softmax<axis = 1>(logits)
    prob = Identity(soft)
    z = MatMul(x, ws)
    score = Sigmoid(z)
}
"""


def _model() -> onnx.ModelProto:
    m = parser.parse_model(_TWO_HEADS)
    rng = np.random.default_rng(0)
    wb = rng.normal(size=(4, 6)).astype(np.float32)
    wb[:, 3:] *= 1000.0  # three rows in pixels, three in units: two std blocks
    for name, w in (("wb", wb), ("wp", rng.normal(size=(4, 3))), ("ws", rng.normal(size=(4, 3)))):
        m.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(w, np.float32), name))
    return m


def test_locate_looks_through_squashes_and_identity() -> None:
    shim = Shim(_model())
    found = {m.output: m for m in locate(shim.plan.steps, list(shim.plan.outputs))}
    assert found["box"].tensor == "box" and found["box"].transform == "none"
    assert found["prob"].tensor == "logits" and found["prob"].transform == "log_softmax"
    assert found["score"].tensor == "z" and found["score"].transform == "sigmoid"


def test_blocks_and_equal_energy_per_output() -> None:
    shim = Shim(_model())
    data = Dataset({"x": np.random.default_rng(1).normal(size=(256, 4)).astype(np.float32)})
    measures = output_measures(shim, data, 64, {"score": 4.0})
    by = {m.output: m for m in measures}
    assert by["box"].blocks == 2 and by["prob"].blocks == 1
    with shim.watch({"logits", "z"}, retain_grad=False) as watched:
        outs = shim({"x": data.inputs["x"]})
    vals = measured(measures, outs, watched)
    energy = {m.output: float((v.detach() - v.detach().mean(0)).pow(2).sum(1).mean()) for m, v in
              zip(measures, vals, strict=True)}
    assert energy["box"] == pytest.approx(1.0, rel=1e-3)
    assert energy["prob"] == pytest.approx(1.0, rel=1e-3)
    assert energy["score"] == pytest.approx(4.0, rel=1e-3)
    # within the box output, the pixel rows and the unit rows carry the same energy
    v = vals[0].detach() - vals[0].detach().mean(0)
    assert float(v[:, :3].pow(2).sum(1).mean()) == pytest.approx(
        float(v[:, 3:].pow(2).sum(1).mean()), rel=0.05)


def test_saturated_sigmoid_still_has_gradients() -> None:
    shim = Shim(_model())
    x = torch.full((2, 4), 50.0, requires_grad=True)
    m = next(m for m in locate(shim.plan.steps, list(shim.plan.outputs)) if m.output == "score")
    m = calibrate(m, [torch.randn(8, 3)], 1.0)
    with shim.watch({"z"}) as watched:
        outs = shim({"x": x})
    (v,) = measured([m], outs, watched)
    (g,) = torch.autograd.grad(v.sum(), x)
    assert float(outs[2].detach().min()) == 1.0 and float(g.abs().max()) > 0.1


def test_output_weight_names_must_exist() -> None:
    model = onnxprune.load(_model(), input_shapes={"x": (1, 4)})
    data = Dataset({"x": np.ones((4, 4), np.float32)})
    with pytest.raises(onnxprune.InputError, match="no output 'nope'"):
        output_measures(Shim(model.proto), data, 4, {"nope": 1.0})
