"""Loading and saving: external data, path traversal, atomic writes, input shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import onnxprune
from onnxprune import ir
from onnxprune.errors import InputError


def _conv_model(c: int = 8) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((c, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, c, 1, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4, 8, 8])],
        [w1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _save_external(model: onnx.ModelProto, path: Path, location: str) -> None:
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)


def test_external_data_loads_and_prunes(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    _save_external(_conv_model(), src, "m.onnx.data")
    model = onnxprune.load(src)
    assert model.input_shapes == {"x": (1, 3, 8, 8)}
    result = onnxprune.prune(model, ratio=0.5)
    assert result.after.params == 4 * 3 * 3 * 3 + 4 * 4
    out = ir.save_model(result.model, tmp_path / "p.onnx")
    assert ir.load_model(out).graph.node[0].op_type == "Conv"


def test_external_data_outside_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    src = tmp_path / "sub" / "m.onnx"
    _save_external(_conv_model(), src, "m.onnx.data")
    m = onnx.load(str(src), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../m.onnx.data"
    (tmp_path / "m.onnx.data").write_bytes((tmp_path / "sub" / "m.onnx.data").read_bytes())
    onnx.save_model(m, str(src))
    with pytest.raises(InputError, match="outside the model's folder"):
        ir.load_model(src)


def test_missing_external_data_is_named(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    _save_external(_conv_model(), src, "m.onnx.data")
    (tmp_path / "m.onnx.data").unlink()
    with pytest.raises(InputError, match="is missing"):
        ir.load_model(src)


def test_large_model_writer_uses_external_data(tmp_path: Path) -> None:
    # The >2 GB path, exercised on a small model: weights go to <name>.data beside the file.
    model = _conv_model(64)
    before = model.SerializeToString()
    out = ir.save_external(model, tmp_path / "big.onnx")
    assert model.SerializeToString() == before  # the in-memory model is left as it was
    # w1 (64x3x3x3 floats) and w2 (4x64) are over 1 KB: both leave the .onnx file
    assert (tmp_path / "big.onnx.data").stat().st_size == 4 * (64 * 27 + 4 * 64)
    assert out.stat().st_size < 1024
    back = ir.load_model(out)
    for a, b in zip(back.graph.initializer, model.graph.initializer, strict=True):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]


def test_save_model_switches_to_external_data_above_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ir.limits, "EXTERNAL_DATA_BYTES", 1000)
    ir.save_model(_conv_model(64), tmp_path / "o.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.onnx", "o.onnx.data"]
    monkeypatch.setattr(ir.limits, "EXTERNAL_DATA_BYTES", 10**9)
    ir.save_model(_conv_model(64), tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx.data").exists()


def test_save_is_atomic_and_protects_input(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    onnx.save_model(_conv_model(), str(src))
    before = src.read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite"):
        ir.save_model(_conv_model(4), src, protect=[src])
    assert src.read_bytes() == before
    ir.save_model(_conv_model(4), tmp_path / "o.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "o.onnx"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"q": (1, 3, 8, 8)}, "not a model input"),
        ({"x": (1, 3, 8)}, "gives 3 dims"),
        ({"x": (1, 4, 8, 8)}, "contradicts"),
    ],
    ids=["unknown-name", "wrong-rank", "contradicts-fixed-dim"],
)
def test_bad_input_shapes(given: dict[str, tuple[int, ...]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        ir.resolve_input_shapes(_conv_model(), given)


def test_dynamic_spatial_dims_need_shapes() -> None:
    m = _conv_model()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(InputError, match="--input-shapes x:\\?,3,\\?,8"):
        ir.resolve_input_shapes(m)
    assert ir.resolve_input_shapes(m, {"x": (2, 3, 8, 8)}) == {"x": (2, 3, 8, 8)}


def test_inferred_shapes_from_the_weightless_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above SHAPES_LIGHT_BYTES static shapes come from a weightless copy when it resolves
    every node output (the same shapes as inferring the whole model), else from the model."""
    import onnxprune.ir.shapes as shapes

    m, at = _conv_model(), {"x": (2, 3, 8, 8)}
    full = ir.static_shapes(ir.infer_shapes(ir.with_input_shapes(m, at)))
    assert ir.inferred_shapes(m, at) == full  # small: the whole model, as before
    monkeypatch.setattr(ir.limits, "SHAPES_LIGHT_BYTES", 0)
    calls = []
    infer = shapes.infer_shapes
    monkeypatch.setattr(shapes, "infer_shapes", lambda *a, **k: calls.append(1) or infer(*a, **k))
    assert ir.inferred_shapes(m, at) == full and not calls
    m.graph.node.append(helper.make_node("NonZero", ["y"], ["nz"], name="nz"))
    m.graph.output.append(helper.make_tensor_value_info("nz", onnx.TensorProto.INT64, None))
    ir.inferred_shapes(m, at)
    assert calls == [1]  # a run-time shape left unknown: the whole model is inferred


def test_verify_saved_checks_the_file_and_reads_the_weights_back(tmp_path: Path) -> None:
    from onnxprune.errors import VerificationError
    from onnxprune.verify import verify, verify_saved

    m, at = _conv_model(), {"x": (1, 3, 8, 8)}
    path = ir.save_external(m, tmp_path / "m.onnx")
    got = verify_saved(path, m, at)
    assert got.SerializeToString() == verify(_conv_model(), m, at).SerializeToString()
    bad = _conv_model()
    bad.graph.initializer[1].CopyFrom(numpy_helper.from_array(
        np.zeros((4, 5, 1, 1), np.float32), "w2"))  # 5 input channels for 8
    path = ir.save_external(bad, tmp_path / "bad.onnx")
    with pytest.raises(VerificationError) as in_memory:
        verify(bad, m, at)
    with pytest.raises(VerificationError, match="fails in onnxruntime") as saved:
        verify_saved(path, m, at)
    assert str(saved.value) == str(in_memory.value)



def test_export_falls_back_without_graphsurgeon_internals(monkeypatch, caplog) -> None:
    """An onnx-graphsurgeon without the private storage the lean export uses gets the plain
    export: the same model."""
    import onnx_graphsurgeon.ir.tensor as gs_tensor

    from onnxprune.testing.wide import wide_conv_stack

    model = wide_conv_stack(channels=8, layers=2)
    lean = ir.from_graph(ir.to_graph(model), model)
    monkeypatch.delattr(gs_tensor, "SparseValues")
    with caplog.at_level("DEBUG", logger="onnxprune.ir.graph"):
        plain = ir.from_graph(ir.to_graph(model), model)
    assert "lean export unavailable" in caplog.text
    assert plain.SerializeToString() == lean.SerializeToString()
    assert len(plain.graph.initializer) == len(model.graph.initializer) > 0
