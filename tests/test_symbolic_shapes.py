"""Symbolic shape inference fallback: shapes ONNX's inference leaves unknown become static."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune import ir
from onnxprune.ir import symbolic as symbolic_shapes
from onnxprune.testing.graphs import build, const_input, prune_exact, structure

# Paddle2ONNX's way of writing a reshape target: the dims go through int32, which ONNX's
# inference (opset 12) does not propagate, so every shape after the Reshape is unknown.
PADDLE_RESHAPE = """
g (float[1,4,6] x) => (float[1,4,5] y) {
  [proj] a = MatMul (x, w1)
  s = Shape (a)
  s32 = Cast <to=6> (s)
  d1 = Gather <axis=0> (s32, at)
  d1l = Cast <to=7> (d1)
  [cat] target = Concat <axis=0> (one, d1l, last)
  [reshape] r = Reshape (a, target)
  [fc] y = MatMul (r, w2)
}"""


def _model(last: int):  # noqa: ANN202 - a test helper
    weights = {
        "w1": (6, 8),
        "w2": (8, 5),
        "at": np.array([1], np.int64),
        "one": np.array([1], np.int64),
        "last": np.array([last], np.int64),
    }
    return build(PADDLE_RESHAPE, weights, opset=12)


def test_symbolic_inference_resolves_what_onnx_leaves_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Shape-folding pass resolves this small case too; switch it off to see the fallback
    # alone (on the Paddle recogniser the folding pass does not resolve it).
    monkeypatch.setattr(ir.shapes, "_add_folded_shapes", lambda m: m)
    proto = ir.with_input_shapes(_model(-1).proto, {"x": (1, 4, 6)})
    assert ir.static_shapes(ir.infer_shapes(proto))["r"] == (1, 4, 8)
    monkeypatch.setattr(symbolic_shapes, "fill_missing", lambda m: m)
    assert "r" not in ir.static_shapes(ir.infer_shapes(proto))


@pytest.mark.parametrize(("last", "new_last"), [(-1, -1), (8, 4)])
def test_group_through_a_shape_computed_reshape(last: int, new_last: int) -> None:
    model = _model(last)
    assert structure(model)[0] == (8, True)
    pruned = prune_exact(model, {0: [0, 2, 3, 7]})
    assert ir.static_shapes(ir.infer_shapes(pruned))["r"] == (1, 4, 4)
    assert const_input(pruned, "cat", 2).tolist() == [new_last]


def test_known_shapes_are_never_overridden() -> None:
    proto = ir.infer_shapes(ir.with_input_shapes(_model(-1).proto, {"x": (1, 4, 6)}))
    before = [(v.name, v.type.SerializeToString()) for v in proto.graph.value_info]
    after = symbolic_shapes.fill_missing(proto)
    assert [(v.name, v.type.SerializeToString()) for v in after.graph.value_info] == before


@pytest.mark.real
def test_paddle_recogniser_neck_group_becomes_prunable(
    real_records: dict[str, dict[str, object]],
) -> None:
    import onnxprune

    rec = real_records["ppocr_rec"]
    shapes = ir.parse_input_shapes(rec["input_shapes"])  # type: ignore[arg-type]
    model = onnxprune.load(str(rec["path"]), input_shapes=shapes)
    group = next(g for g in model.groups.groups if g.root_nodes == ("p2o.Conv.32",))
    assert (group.size, group.prunable) == (480, True)
