from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.cli import main

MODELS = Path(__file__).resolve().parents[1] / "models"
FAST = ["--warmup", "1", "--iterations", "3", "--no-memory"]


def tiny(
    *, classes: int = 3, batch: int | str = "N", name: str = "x", seed: int = 0
) -> onnx.ModelProto:
    """x[B,4] -> Gemm(classes): the smallest classifier."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((4, classes)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Gemm", [name, "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, classes])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    out = {
        "a": tiny(),
        "b": tiny(seed=1),
        "fixed": tiny(batch=1),
        "renamed": tiny(name="z"),
        "wider": tiny(classes=5),
    }
    paths = {}
    for key, model in out.items():
        paths[key] = str(tmp_path / f"{key}.onnx")
        onnx.save(model, paths[key])
    arrays = {
        "data": {"x": x, "labels": np.array([0, 1, 2, 0, 1, 2])},
        "wrong_dims": {"x": rng.standard_normal((6, 5)).astype(np.float32)},
        "wrong_key": {"inputs": x, "extra": x},
        "few_labels": {"x": x, "labels": np.arange(5)},
        "float_labels": {"x": x, "y": np.zeros(6)},
        "int_data": {"x": np.ones((6, 4), np.int64)},
    }
    for key, arr in arrays.items():
        paths[key] = str(tmp_path / f"{key}.npz")
        np.savez(paths[key], **arr)
    bad_x = x.copy()
    bad_x[1, 2] = np.nan
    paths["nan"] = str(tmp_path / "nan.npy")
    np.save(paths["nan"], bad_x)
    paths["labels_npy"] = str(tmp_path / "labels.npy")
    np.save(paths["labels_npy"], np.array([2, 2, 2, 2, 2, 2]))
    paths["missing"] = str(tmp_path / "missing.onnx")
    return paths


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_bench_prints_the_report(capsys, files, fmt):
    flag = [] if fmt == "table" else [f"--{fmt}"]
    argv = ["bench", files["a"], files["b"], "--data", files["data"], "--batch", "1,4", *FAST]
    code, out, err = run_cli(capsys, argv + flag)
    assert code == 0, err
    if fmt == "json":
        report = json.loads(out)
        assert [m["params"] for m in report["models"]] == [12, 12]
        assert [m["macs"] for m in report["models"]] == [12, 12]
        assert [lat["batch"] for lat in report["latency"]] == [1, 4]
        assert report["settings"]["samples"] == 6
        assert report["fidelity"]["samples"] == 6
    elif fmt == "markdown":
        assert out.splitlines()[0] == "| metric | original | pruned | ratio |"
    else:
        lines = out.splitlines()
        assert lines[0].split() == ["metric", "original", "pruned", "ratio"]
        params = next(line for line in lines if line.startswith("params"))
        assert params.split()[1:] == ["12", "12", "1.000"]
        assert any(line.startswith("throughput b=4") for line in lines)


def test_labels_option_gives_accuracy(capsys, files):
    argv = ["bench", files["a"], "--data", files["data"], "--labels", files["labels_npy"], "--json"]
    code, out, _ = run_cli(capsys, argv + FAST)
    x = np.load(files["data"])["x"]
    sess = ort.InferenceSession(files["a"], providers=["CPUExecutionProvider"])
    expected = float((sess.run(None, {"x": x})[0].argmax(1) == 2).mean())
    assert code == 0
    assert json.loads(out)["models"][0]["accuracy"] == pytest.approx(expected)


def _bad(files: dict[str, str]) -> dict[str, tuple[list[str], str]]:
    a = files["a"]
    return {
        "missing-model": (["bench", files["missing"]], "no such file"),
        "missing-pruned": (["bench", a, files["missing"]], "no such file"),
        "missing-data": (["bench", a, "--data", files["missing"] + ".npz"], "no such file"),
        "bad-batch": (["bench", a, "--batch", "1,x"], "expected positive integers"),
        "bad-shapes": (["bench", a, "--input-shapes", "x=1,4"], "NAME:D1,D2"),
        "unknown-input": (["bench", a, "--input-shapes", "q:1,4"], "not a model input"),
        "bad-optimization": (["bench", a, "--optimization", "max"], "invalid choice"),
        "wrong-dims": (["bench", a, "--data", files["wrong_dims"]], "expected [N,4]"),
        "npz-keys": (["bench", a, "--data", files["wrong_key"]], "found keys ['extra', 'inputs']"),
        "nan": (["bench", a, "--data", files["nan"]], "NaN/inf"),
        "int-for-float": (["bench", files["a"], "--data", files["int_data"]], None),
        "few-labels": (["bench", a, "--data", files["few_labels"]], "5 labels for 6 samples"),
        "float-labels": (["bench", a, "--data", files["float_labels"]], "integer class ids"),
        "labels-no-data": (["bench", a, "--labels", files["labels_npy"]], "without data"),
        "renamed": (["bench", a, files["renamed"]], "different inputs"),
        "wider": (["bench", a, files["wider"]], "keep their shapes"),
        "fixed-batch": (["bench", files["fixed"], "--batch", "8"], "fixed batch of 1"),
        "threads": (["bench", a, "--threads", "0"], "threads 0"),
    }


BAD = [
    "missing-model",
    "missing-pruned",
    "missing-data",
    "bad-batch",
    "bad-shapes",
    "unknown-input",
    "bad-optimization",
    "wrong-dims",
    "npz-keys",
    "nan",
    "few-labels",
    "float-labels",
    "labels-no-data",
    "renamed",
    "wider",
    "fixed-batch",
    "threads",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_with_one_line(capsys, files, case):
    argv, fragment = _bad(files)[case]
    code, out, err = run_cli(capsys, argv + FAST)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("onnxprune: error: "), err
    assert fragment in err


def test_int_data_for_float_input_is_accepted(capsys, files):
    code, out, err = run_cli(
        capsys, ["bench", files["a"], "--data", files["int_data"], "--json", *FAST]
    )
    assert code == 0, err
    assert json.loads(out)["settings"]["samples"] == 6


def test_cuda_when_unavailable(capsys, files):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    code, _, err = run_cli(capsys, ["bench", files["a"], "--provider", "cuda"])
    assert code == 2 and err.count("\n") == 1 and "not available" in err


@pytest.mark.slow
def test_bench_on_digits_cnn(capsys):
    model, data = MODELS / "digits_cnn.onnx", MODELS / "digits_test.npz"
    if not (model.exists() and data.exists()):
        pytest.skip("models/digits_cnn.onnx and models/digits_test.npz are not built yet")
    argv = ["bench", str(model), str(model), "--data", str(data), "--batch", "1,8", "--json"]
    code, out, err = run_cli(capsys, argv + FAST)
    assert code == 0, err
    report = json.loads(out)
    fid = report["fidelity"]["outputs"][0]
    assert fid["cosine"] == pytest.approx(1.0, abs=1e-9) and fid["max_abs"] == 0.0
    assert fid["top1_agreement"] == 1.0
    assert report["models"][0]["params"] == report["models"][1]["params"] > 0
    with np.load(data) as z:
        labels = next((z[k] for k in ("labels", "y") if k in z.files), None)
    if labels is not None:
        assert report["models"][0]["accuracy"] == report["fidelity"]["accuracy_original"]
        assert 0.0 <= report["models"][0]["accuracy"] <= 1.0
