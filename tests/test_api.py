"""The one-call Python API: models and data in every usual form, results that save themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import onnxprune
from onnxprune import progress
from onnxprune.data import Dataset
from onnxprune.testing.graphs import DYNAMIC_CONV_GEMM, DYNAMIC_CONV_GEMM_W, scaled_model


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    progress.configure(progress.QUIET)
    yield
    progress.configure()


@pytest.fixture
def proto() -> onnx.ModelProto:
    return scaled_model(DYNAMIC_CONV_GEMM, DYNAMIC_CONV_GEMM_W)


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((12, 3, 8, 16)).astype(np.float32)


def _data_forms(x: np.ndarray) -> dict[str, object]:
    return {
        "array": x,
        "dict": {"x": x},
        "feeds": [{"x": x[i:i + 4]} for i in range(0, 12, 4)],
        "array-feeds": (x[i:i + 3] for i in range(0, 12, 3)),
        "dataset": Dataset({"x": x}),
    }


@pytest.mark.parametrize("form", ["array", "dict", "feeds", "array-feeds", "dataset"])
def test_prune_takes_a_model_proto_and_any_data_form(proto, x, form) -> None:
    r = onnxprune.prune(proto, target_macs=0.8, data=_data_forms(x)[form])
    assert r.after.macs / r.before.macs == pytest.approx(0.8, abs=0.03)
    assert r.compensation is not None  # data-aware mode: compensation ran
    assert r.summary().splitlines()[0].startswith("mode: target keep 80% of the MACs "
                                                  "(hierarchical widths, effective channels, "
                                                  "compensation, refinement, on 12 samples")


def test_prune_path_and_npz_and_save(tmp_path: Path, proto, x) -> None:
    onnx.save(proto, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=x)
    r = onnxprune.prune(str(tmp_path / "m.onnx"), target_macs=0.8, data=tmp_path / "calib.npz")
    written = r.save(tmp_path / "pruned.onnx")
    onnx.checker.check_model(str(written))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # atomic
    with pytest.raises(onnxprune.InputError, match="refusing to overwrite the input model"):
        r.save(tmp_path / "m.onnx", protect=[tmp_path / "m.onnx"])
    assert r.plan.groups and "kept" in r.table()


def test_ratio_baseline_summary_is_not_empty(proto) -> None:
    r = onnxprune.prune(proto, ratio=0.25, input_shapes={"x": (1, 3, 8, 8)})
    lines = r.summary().splitlines()
    assert lines[0] == ("mode: --prune-ratio 0.25 removes 25% of the channels of every prunable "
                        "group (uniform widths, l1 channels, no compensation, without data)")
    assert lines[-1].startswith("kept ") and "of the MACs" in lines[-1]


def test_target_without_data_is_the_data_free_baseline(proto) -> None:
    r = onnxprune.prune(proto, target_macs=0.8, input_shapes="x:1,3,8,8")
    assert r.compensation is None
    assert "uses the data-free baseline" in r.summary()


def test_cost_of_a_path_proto_and_model(tmp_path: Path, proto) -> None:
    onnx.save(proto, tmp_path / "m.onnx")
    shapes = {"x": (1, 3, 8, 16)}
    costs = {onnxprune.cost(m, input_shapes=shapes).macs for m in
             (proto, tmp_path / "m.onnx", onnxprune.load(proto, input_shapes=shapes))}
    assert costs == {8 * 16 * (8 * 27 + 8 * 72) + 32}


def test_cost_asks_for_dynamic_dims(proto) -> None:
    with pytest.raises(onnxprune.InputError, match="pass --input-shapes x:"):
        onnxprune.cost(proto)


def test_analyze_with_an_array(proto, x) -> None:
    result = onnxprune.analyze(proto, data=x, estimate=False)
    assert result.samples == 12 and [g.channels for g in result.groups][:2] == [8, 8]


def test_analyze_on_random_data_warns(proto, caplog) -> None:
    onnxprune.analyze(proto, input_shapes={"x": (1, 3, 8, 8)}, estimate=False)
    assert any("random samples is about the weights, not the task" in r.getMessage()
               for r in caplog.records)


def test_bench_compares_in_memory_models(proto, x) -> None:
    pruned = onnxprune.prune(proto, target_macs=0.8, data=x).model
    report = onnxprune.bench(proto, pruned, data={"x": x}, iterations=2, warmup=0,
                             measure_memory=False)
    assert report.settings.input_shapes == {"x": (1, 3, 8, 16)}
    assert [m.path for m in report.models] == ["<in-memory original>", "<in-memory pruned>"]
    assert report.fidelity is not None and report.fidelity.outputs[0].cosine > 0.9


def test_bench_module_names_still_import() -> None:
    from onnxprune.bench import BenchReport, bench, make_session

    assert callable(onnxprune.bench) and callable(bench) and make_session and BenchReport


def test_labels_without_data_is_refused(proto) -> None:
    with pytest.raises(onnxprune.InputError, match="labels were given without data"):
        onnxprune.prune(proto, ratio=0.3, labels=np.zeros(3, np.int64))


def test_preprocess_accepts_a_preset_name(tmp_path: Path, proto) -> None:
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 40, 3), 40 * i, np.uint8)).save(imgs / f"{i}.png")
    model, data = onnxprune.load_with_data(proto, imgs, preprocess={"preset": "paddle-ocr",
                                                                    "size": [8, 16]})
    assert data is not None and data.inputs["x"].shape == (3, 3, 8, 16)
    assert model.input_shapes == {"x": (1, 3, 8, 16)}


# The README's Python example, run exactly as printed (slow: it prunes and benches digits_cnn).
def _readme_python() -> str:
    """The README's Python example, as written there (the first ```python block)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


README_PYTHON = _readme_python()


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "models").symlink_to(repo / "models")
    (tmp_path / "example.py").write_text(README_PYTHON)
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=1200, check=False,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 0, proc.stderr
    assert "mode: target keep 50% of the MACs (hierarchical widths" in proc.stdout
    assert "top-1 agreement logits" in proc.stdout
    onnx.checker.check_model(str(tmp_path / "pruned.onnx"))
    assert json.loads((tmp_path / "plan.json").read_text())


def test_read_only_channel_graph_keeps_no_weights(tmp_path: Path) -> None:
    """Weights read through ``model.groups`` (L1 scores, analysis specs) are not kept in it."""
    import onnx_graphsurgeon as gs

    from onnxprune.model import load

    model = load(Path(__file__).resolve().parents[1] / "models" / "digits_cnn.onnx")
    onnxprune.prune(model, ratio=0.3)
    consts = [t for t in model.groups.ctx.graph.tensors().values() if isinstance(t, gs.Constant)]
    assert consts and all(isinstance(t._values, gs.ir.tensor.LazyValues) for t in consts)


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-data"])
def test_heavy_model_is_verified_and_timed_from_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        external: bool) -> None:
    """Over HEAVY_BYTES the pruned model is verified from a temporary external-data copy and
    timed from another (its weights read back after), and the original is timed from its
    own file when that keeps the weights in a data file, else from a temporary copy; the
    written model is the same bytes as without these detours."""
    import onnxprune.commands.prune as command
    import onnxprune.surgery as surgery
    from onnxprune import ir
    from onnxprune.cli import main

    src = Path(__file__).resolve().parents[1] / "models" / "digits_cnn.onnx"
    if external:
        model = tmp_path / "m.onnx"
        onnx.save_model(onnx.load(str(src)), str(model), save_as_external_data=True,
                        location="m.onnx.data", size_threshold=0)
        src = model
    plain = tmp_path / "plain.onnx"
    assert main(["prune", str(src), "-o", str(plain), "--ratio", "0.3"]) == 0
    monkeypatch.setattr(ir.limits, "HEAVY_BYTES", 1000)
    timed: list[tuple[object, object]] = []
    saved: list[Path] = []
    check, verify_saved = command.speed_check, surgery.verify_saved

    def spy(original: object, pruned: object, *args: object, **kwargs: object) -> object:
        timed.append((original, pruned))
        return check(original, pruned, *args, **kwargs)  # type: ignore[arg-type]

    def spy_saved(path: Path, *args: object) -> object:
        saved.append(path)
        return verify_saved(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(command, "speed_check", spy)
    monkeypatch.setattr(surgery, "verify_saved", spy_saved)
    out = tmp_path / "out.onnx"
    capsys.readouterr()
    assert main(["prune", str(src), "-o", str(out), "--ratio", "0.3"]) == 0
    assert "speed-up" in capsys.readouterr().out
    assert out.read_bytes() == plain.read_bytes()
    assert len(saved) == 1 and not saved[0].exists()
    [(original, pruned)] = timed
    assert isinstance(pruned, Path) and pruned.name == "pruned.onnx" and not pruned.exists()
    if external:
        assert original == src
    else:
        assert isinstance(original, Path) and original.name == "original.onnx"
        assert not original.exists()
