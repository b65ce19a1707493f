from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune import bench as bench_mod
from onnxprune.bench import bench, check_compatible, fidelity
from onnxprune.data import Dataset
from onnxprune.errors import InputError

FAST = {"warmup": 1, "iterations": 3, "measure_memory": False}


def conv_gemm(
    channels: int = 4,
    *,
    seed: int = 0,
    batch: int | str = "N",
    hw: int | str = 8,
    pool: bool = False,
    input_name: str = "x",
    output_name: str = "y",
    dtype: int = TensorProto.FLOAT,
    classes: int = 10,
) -> onnx.ModelProto:
    """x[B,1,8,8] -> Conv 3x3 (C) -> Relu -> (GlobalAveragePool) -> Flatten -> Gemm (classes)."""
    rng = np.random.default_rng(seed)
    feat = channels if pool else channels * 36
    inits = {
        "W": rng.standard_normal((channels, 1, 3, 3)),
        "B": rng.standard_normal(channels),
        "G": rng.standard_normal((classes, feat)) * 0.1,
        "C": rng.standard_normal(classes),
    }
    is_float = dtype == TensorProto.FLOAT
    conv_in = input_name if is_float else "xf"
    nodes = [
        *(
            []
            if is_float
            else [helper.make_node("Cast", [input_name], ["xf"], to=TensorProto.FLOAT)]
        ),
        helper.make_node("Conv", [conv_in, "W", "B"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        *([helper.make_node("GlobalAveragePool", ["r"], ["p"])] if pool else []),
        helper.make_node("Flatten", ["p" if pool else "r"], ["f"]),
        helper.make_node("Gemm", ["f", "G", "C"], [output_name], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_gemm",
        [helper.make_tensor_value_info(input_name, dtype, [batch, 1, hw, hw])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def save(tmp_path: Path, model: onnx.ModelProto, name: str) -> Path:
    path = tmp_path / name
    onnx.save(model, path)
    return path


def inputs(n: int, hw: int = 8, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, hw, hw)).astype(np.float32)


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("channels", [1, 4, 6])
@pytest.mark.parametrize("batch", [1, 3])
def test_macs_and_params_are_exact(tmp_path, channels, batch):
    path = save(tmp_path, conv_gemm(channels), "m.onnx")
    report = bench(path, input_shapes={"x": (batch, 1, 8, 8)}, **FAST)
    stats = report.models[0]
    # Conv: C*6*6 outputs x 1*3*3 taps; Gemm: 10 outputs x C*36 features; MACs per sample.
    assert stats.macs == channels * 36 * 9 + 10 * channels * 36
    assert stats.params == channels * 9 + channels + 10 * channels * 36 + 10
    assert stats.size_bytes == path.stat().st_size
    assert report.settings.input_shapes == {"x": (batch, 1, 8, 8)}


@pytest.mark.parametrize("n", [5, 40])
@pytest.mark.parametrize("batch_size", [1, 32])
def test_fidelity_of_a_model_with_itself_is_perfect(n, batch_size):
    model = conv_gemm()
    report = fidelity(model, model, Dataset({"x": inputs(n)}, None, "mem"), batch_size=batch_size)
    (out,) = report.outputs
    assert out.name == "y" and report.samples == n and report.source == "mem"
    assert out.cosine == pytest.approx(1.0, abs=1e-12)
    assert out.cosine_min == pytest.approx(1.0, abs=1e-12)
    assert out.max_abs == 0.0
    assert out.top1_agreement == 1.0
    assert report.accuracy_original is None and report.accuracy_pruned is None


@pytest.mark.parametrize("seed", [1, 2])
def test_fidelity_and_accuracy_match_numpy(seed):
    a, b = conv_gemm(seed=0), conv_gemm(seed=seed)
    x = inputs(30)
    labels = np.random.default_rng(seed).integers(0, 10, 30)
    report = fidelity(a, b, Dataset({"x": x}, labels, "mem"), batch_size=7)
    ya, yb = ort_run(a, x).astype(np.float64), ort_run(b, x).astype(np.float64)
    cos = (ya * yb).sum(1) / np.linalg.norm(ya, axis=1) / np.linalg.norm(yb, axis=1)
    (out,) = report.outputs
    assert out.cosine == pytest.approx(cos.mean(), abs=1e-9)
    assert out.cosine_min == pytest.approx(cos.min(), abs=1e-9)
    assert out.max_abs == pytest.approx(np.abs(ya - yb).max(), rel=1e-6)
    assert out.top1_agreement == pytest.approx((ya.argmax(1) == yb.argmax(1)).mean())
    assert report.accuracy_original == pytest.approx((ya.argmax(1) == labels).mean())
    assert report.accuracy_pruned == pytest.approx((yb.argmax(1) == labels).mean())


def test_fixed_batch_model_pads_the_last_batch():
    model = conv_gemm(batch=4)
    x = inputs(10)
    report = fidelity(model, model, Dataset({"x": x}, np.zeros(10, np.int64), "mem"))
    assert report.samples == 10 and report.outputs[0].max_abs == 0.0
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    padded = np.concatenate([x, x[8:], x[8:]])
    expected = np.concatenate([sess.run(None, {"x": padded[i : i + 4]})[0] for i in (0, 4, 8)])
    assert report.accuracy_original == pytest.approx((expected[:10].argmax(1) == 0).mean())


@pytest.mark.parametrize("batches", [(1,), (1, 4)])
@pytest.mark.parametrize("two", [False, True])
def test_bench_report_structure(tmp_path, batches, two):
    a = save(tmp_path, conv_gemm(seed=0), "a.onnx")
    b = save(tmp_path, conv_gemm(seed=1), "b.onnx") if two else None
    report = bench(a, b, batches=batches, seed=3, **FAST)
    assert len(report.models) == (2 if two else 1)
    assert [lat.batch for lat in report.latency] == list(batches)
    for lat in report.latency:
        assert len(lat.p50_ms) == len(report.models)
        assert all(0 < p50 <= p90 for p50, p90 in zip(lat.p50_ms, lat.p90_ms, strict=True))
        expected = [lat.batch * 1e3 / p for p in lat.p50_ms]
        assert lat.throughput == pytest.approx(expected)
    assert (report.fidelity is not None) == two
    assert report.settings.data == "random" and report.settings.samples == 32
    assert all(m.peak_memory_bytes is None for m in report.models)
    assert report.settings.memory_method == "not measured"
    d = json.loads(report.to_json())
    assert d == json.loads(json.dumps(report.to_dict()))
    assert set(d) == {"models", "latency", "fidelity", "settings"} | ({"speedup"} if two else set())
    table = report.table().splitlines()
    header = ["metric", "original", "pruned", "ratio"] if two else ["metric", "model"]
    assert table[0].split() == header
    rows = {line.split("  ")[0].strip() for line in table[1:-1]}
    assert {"params", "MACs / sample", "size", "peak memory", "p50 latency b=1"} <= rows
    assert ("throughput b=4" in rows) == (4 in batches)
    assert ("top-1 agreement y" in rows) == two
    assert ("speed-up b=1" in rows and "efficiency b=1" in rows) == two
    md = report.markdown().splitlines()
    assert md[1].startswith("|:---|---:") and md[0].count("|") == len(header) + 1


def test_bench_speedup_and_efficiency(tmp_path):
    a = save(tmp_path, conv_gemm(4), "a.onnx")
    b = save(tmp_path, conv_gemm(2), "b.onnx")
    report = bench(a, b, **FAST)
    (speedup, efficiency), = report.speedups()
    lat = report.latency[0]
    assert speedup == pytest.approx(lat.p50_ms[0] / lat.p50_ms[1])
    assert efficiency == pytest.approx(speedup * report.models[1].macs / report.models[0].macs)
    assert report.to_dict()["speedup"] == [
        {"batch": 1, "speedup": speedup, "efficiency": efficiency}]


def test_bench_table_ratio_column(tmp_path):
    a = save(tmp_path, conv_gemm(4), "a.onnx")
    b = save(tmp_path, conv_gemm(2), "b.onnx")
    report = bench(a, b, **FAST)
    params = next(line for line in report.table().splitlines() if line.startswith("params"))
    assert params.split()[1:] == ["1,490", "750", f"{750 / 1490:.3f}"]


def test_bench_on_labelled_data_and_dynamic_dims(tmp_path):
    model = conv_gemm(seed=0, hw="H", pool=True)
    a = save(tmp_path, model, "a.onnx")
    x, labels = inputs(12, hw=10), np.arange(12) % 10
    np.savez(tmp_path / "d.npz", x=x, labels=labels)
    report = bench(a, a, data=tmp_path / "d.npz", **FAST)
    assert report.settings.input_shapes == {"x": (1, 1, 10, 10)}
    assert report.models[0].macs == 4 * 64 * 9 + 10 * 4
    accuracy = (ort_run(model, x).argmax(1) == labels).mean()
    assert report.models[0].accuracy == pytest.approx(accuracy)
    assert report.fidelity.accuracy_pruned == pytest.approx(accuracy)
    assert report.settings.samples == 12


def test_runs_are_interleaved(tmp_path, monkeypatch):
    calls: list[str] = []
    real = bench_mod.make_session

    class Recording:
        def __init__(self, sess: ort.InferenceSession, tag: str) -> None:
            self.sess, self.tag = sess, tag

        def run(self, *args, **kwargs):
            calls.append(self.tag)
            return self.sess.run(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.sess, name)

    def fake(model, **kwargs):
        return Recording(real(model, **kwargs), Path(str(model)).stem)

    monkeypatch.setattr(bench_mod, "make_session", fake)
    bench(
        save(tmp_path, conv_gemm(), "a.onnx"),
        save(tmp_path, conv_gemm(), "b.onnx"),
        warmup=2,
        iterations=5,
        measure_memory=False,
    )
    timed = calls[-14:]  # the latency phase comes last: (2 + 5) rounds of A, B
    assert timed == ["a", "b"] * 7


def _bad_pairs() -> dict[str, tuple[onnx.ModelProto, str]]:
    return {
        "input-name": (conv_gemm(input_name="z"), "different inputs"),
        "input-dtype": (conv_gemm(dtype=TensorProto.DOUBLE), "different inputs"),
        "output-name": (conv_gemm(output_name="logits"), "different outputs"),
        "output-shape": (conv_gemm(classes=5), "graph outputs must keep their shapes"),
    }


@pytest.mark.parametrize("case", ["input-name", "input-dtype", "output-name", "output-shape"])
def test_incompatible_models(tmp_path, case):
    other, fragment = _bad_pairs()[case]
    with pytest.raises(InputError, match=fragment):
        check_compatible(conv_gemm(), other)
    with pytest.raises(InputError, match=fragment):
        bench(save(tmp_path, conv_gemm(), "a.onnx"), save(tmp_path, other, "b.onnx"), **FAST)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"batches": (8,)}, "fixed batch of 1"),
        ({"labels": np.zeros(3, np.int64)}, "labels were given without data"),
        ({"provider": "cuda"}, "not available"),
        ({"optimization": "max"}, "optimization 'max'"),
        ({"threads": 0}, "threads 0"),
        ({"batches": ()}, "batch sizes"),
        ({"input_shapes": {"x": (1, 1, 9, 9)}}, "contradicts"),
    ],
)
def test_bad_options(tmp_path, kwargs, fragment):
    if (
        kwargs.get("provider") == "cuda"
        and "CUDAExecutionProvider" in ort.get_available_providers()
    ):
        pytest.skip("CUDA is available here")
    path = save(tmp_path, conv_gemm(batch=1), "a.onnx")
    with pytest.raises(InputError, match=fragment) as info:
        bench(path, **{**FAST, **kwargs})
    assert "\n" not in str(info.value)


def test_data_that_does_not_fit(tmp_path):
    path = save(tmp_path, conv_gemm(), "a.onnx")
    np.save(tmp_path / "x.npy", inputs(4, hw=9))
    with pytest.raises(InputError, match=r"expected \[N,1,8,8\]"):
        bench(path, data=tmp_path / "x.npy", **FAST)


def test_labels_out_of_range(tmp_path):
    path = save(tmp_path, conv_gemm(), "a.onnx")
    np.savez(tmp_path / "d.npz", x=inputs(4), labels=np.array([0, 1, 2, 10]))
    with pytest.raises(InputError, match=r"0\.\.10 but output has 10 classes"):
        bench(path, data=tmp_path / "d.npz", **FAST)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_peak_memory_of_identical_models_agrees(tmp_path):
    # Weights of ~37 MB dominate the measurement, so the comparison does not hinge on a few
    # pages: RSS moves by whole (possibly 2 MiB transparent huge) pages, which on a small
    # model (1.4 MB of growth) made a ratio band flaky on a loaded machine.
    a = save(tmp_path, conv_gemm(256, classes=1000), "a.onnx")
    b = save(tmp_path, conv_gemm(256, classes=1000), "b.onnx")
    weights = 256 * 36 * 1000 * 4
    report = bench(a, b, batches=(1, 16), warmup=1, iterations=2)
    mem = [m.peak_memory_bytes for m in report.models]
    assert all(isinstance(m, int) for m in mem)
    assert min(mem) >= 0.9 * weights, mem  # the session holds the weights
    # fresh process per model: no first-session bias; +-10% plus two huge pages
    assert abs(mem[1] - mem[0]) <= 0.1 * max(mem) + 4 * 2**20, mem
    assert report.settings.memory_method.startswith("host RSS high-water")


def test_unbatched_outputs_count_as_one_row_per_run():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        two (float[N, 4] x) => (float[N, 4] y, float total) {
            y = Relu(x)
            total = ReduceSum <keepdims = 0> (x)
        }
        """
    )
    report = fidelity(
        model,
        model,
        Dataset({"x": np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)}),
        batch_size=4,
    )
    by_name = {o.name: o for o in report.outputs}
    assert set(by_name) == {"y", "total"}
    assert by_name["total"].max_abs == 0.0 and by_name["total"].cosine == pytest.approx(1.0)
    assert by_name["total"].top1_agreement is None
    assert by_name["y"].top1_agreement == 1.0  # [N, 4] looks like class scores


PUBLIC = [
    "BenchReport", "BenchSettings", "FidelityReport", "Latency", "MEMORY_METHOD", "ModelStats",
    "OPTIMIZATION", "OutputFidelity", "PROVIDERS", "RANDOM_SAMPLES", "bench", "check_compatible",
    "fidelity", "make_session",
]  # fmt: skip


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_stay_in_onnxprune_bench(name):
    # the module became a package (runtime, inputs, compare, memory, report); callers import
    # every public name from onnxprune.bench as before
    assert name in bench_mod.__all__
    assert hasattr(bench_mod, name)
