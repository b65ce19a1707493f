"""Issue 13: each friction a new user met, rerun with its command (one test per item).

Small ONNX graphs with dynamic H, W (like PP-OCR's) built here; the CLI runs in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper
from PIL import Image

from onnxprune import progress
from onnxprune.cli import main
from onnxprune.testing.graphs import DYNAMIC_CONV_GEMM, DYNAMIC_CONV_GEMM_W, scaled_model

REPO = Path(__file__).resolve().parents[1]

DYNAMIC, DYNAMIC_W = DYNAMIC_CONV_GEMM, DYNAMIC_CONV_GEMM_W
# one prunable group (conv1's output) and one barrier (the graph output)
ONE_GROUP = """
g (float[N,3,8,8] x) => (float[N,4,8,8] y) {
    a = Conv <pads = [1, 1, 1, 1]> (x, w1)
    b = Relu (a)
    y = Conv <pads = [1, 1, 1, 1]> (b, w2)
}
"""
ONE_GROUP_W = {"w1": (8, 3, 3, 3), "w2": (4, 8, 3, 3)}
# two inputs, both with dynamic dims
TWO_INPUTS = """
g (float[N,3,H,W] x, float[N,K] z) => (float[N,4] y) {
    a = Conv <pads = [1, 1, 1, 1]> (x, w1)
    e = GlobalAveragePool (a)
    f = Flatten (e)
    g0 = Gemm <transB = 1> (f, w3)
    y = Add (g0, z)
}
"""
TWO_INPUTS_W = {"w1": (8, 3, 3, 3), "w3": (4, 8)}


def _model(path: Path, text: str, weights: dict[str, tuple[int, ...]]) -> Path:
    onnx.save(scaled_model(text, weights), path)
    return path


@pytest.fixture(autouse=True)
def _quiet_after() -> Iterator[None]:
    yield
    progress.configure()  # the CLI configured it; later tests get the library default


@pytest.fixture
def dyn(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    model = _model(tmp_path / "dyn.onnx", DYNAMIC, DYNAMIC_W)
    npz = tmp_path / "dyn.npz"
    np.savez(npz, x=rng.standard_normal((12, 3, 8, 16)).astype(np.float32))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(6):
        pixels = rng.integers(0, 256, (10 + i, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(imgs / f"{i}.{'jpg' if i % 2 else 'png'}")
    return {"model": model, "npz": npz, "imgs": imgs, "dir": tmp_path}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. preprocessing as data --------------------------------------------------------------

def test_image_folder_with_preprocess_preset_and_summary(capsys, dyn) -> None:
    code, out, err = run(capsys, "analyze", dyn["model"], "--data", dyn["imgs"], "--preprocess",
                         "paddle-ocr", "size=8,16", "--no-estimate")
    assert code == 0, err
    assert ("6 image(s) from " in err and "preprocess paddle-ocr: BGR, keep-height-pad to 8x16 "
            "(bilinear, pad 127.5), x*1/255, -[0.5], /[0.5], NCHW float32" in err)
    assert "6 samples" in out


def test_preprocess_file(capsys, dyn) -> None:
    f = dyn["dir"] / "pre.json"
    f.write_text(json.dumps({"preset": "imagenet", "size": [8, 16], "channels": "bgr"}))
    code, _, err = run(capsys, "analyze", dyn["model"], "--data", dyn["imgs"],
                       "--preprocess-file", f, "--no-estimate")
    assert code == 0, err
    assert "preprocess imagenet: BGR, center-crop to 8x16" in err


def test_preprocess_needs_an_image_folder(capsys, dyn) -> None:
    code, _, err = run(capsys, "analyze", dyn["model"], "--data", dyn["npz"], "--preprocess",
                       "imagenet")
    assert code == 2 and err.startswith("onnxprune: error: --preprocess applies to an image")


# -- 2. shapes from the data, several --input-shapes after one flag ---------------------

def test_analyze_and_bench_take_dynamic_dims_from_the_data(capsys, dyn) -> None:
    code, out, err = run(capsys, "analyze", dyn["model"], "--data", dyn["npz"], "--no-estimate")
    assert code == 0, err
    assert "12 samples" in out
    pruned = dyn["dir"] / "pruned.onnx"
    code, _, err = run(capsys, "prune", dyn["model"], "-o", pruned, "--data", dyn["npz"],
                       "--target-macs", "0.8")
    assert code == 0, err
    code, out, err = run(capsys, "bench", dyn["model"], pruned, "--data", dyn["npz"],
                         "--iterations", "2", "--warmup", "0", "--no-memory", "--json")
    assert code == 0, err
    assert json.loads(out)["settings"]["input_shapes"] == {"x": [1, 3, 8, 16]}


@pytest.mark.parametrize("form", ["one-flag", "repeated"])
def test_input_shapes_several_after_one_flag_or_repeated(capsys, tmp_path, form) -> None:
    model = _model(tmp_path / "two.onnx", TWO_INPUTS, TWO_INPUTS_W)
    shapes = (["--input-shapes", "x:1,3,320,320", "z:1,4"] if form == "one-flag"
              else ["--input-shapes", "x:1,3,320,320", "--input-shapes", "z:1,4"])
    code, out, err = run(capsys, "inspect", model, *shapes)
    assert code == 0, err
    assert "input   x: float32 [N,3,H,W] -> resolved 1,3,320,320" in out
    assert "input   z: float32 [N,K] -> resolved 1,4" in out


# -- 3. progress, -q/-v anywhere, --version ----------------------------------------------

def test_progress_lines_in_logs_without_carriage_returns(capsys, dyn, monkeypatch) -> None:
    monkeypatch.setattr(progress._settings, "interval", 0.0)
    pruned = dyn["dir"] / "p.onnx"
    code, _, err = run(capsys, "prune", dyn["model"], "-o", pruned, "--data", dyn["npz"],
                       "--target-macs", "0.8", "--distill-epochs", "2")
    assert code == 0, err
    assert "\r" not in err
    assert "onnxprune: analysis: 1/1 batches (100%)" not in err  # periodic lines stop at the end
    assert "onnxprune: analysis: done, 1/1 batches (100%)" in err
    assert "onnxprune: distillation: epoch 1.00" in err and "held-out loss" in err
    assert "onnxprune: distillation: epoch 2.00" in err
    assert "onnxprune: surgery, compensation and verification: done" in err


def test_progress_bar_on_a_terminal(capsys) -> None:
    progress.configure(progress.NORMAL, tty=True)
    for _ in progress.track(range(3), what="work", unit="batch"):
        pass
    err = capsys.readouterr().err
    assert err.startswith("\rwork [") and err.endswith("3/3 batches (100%), 0.0 s\x1b[K\n")


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_before_or_after_the_command(capsys, dyn, monkeypatch, where) -> None:
    monkeypatch.setattr(progress._settings, "interval", 0.0)
    argv = ["analyze", str(dyn["model"]), "--data", str(dyn["npz"]), "--no-estimate"]
    argv = ["-q", *argv] if where == "before" else [*argv, "-q"]
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert "12 samples" in out


def test_verbose_after_the_command_adds_detail(capsys, dyn) -> None:
    code, _, err = run(capsys, "inspect", dyn["model"], "--input-shapes", "x:1,3,8,8", "-v")
    assert code == 0
    assert "DEBUG" in err or err == ""  # accepted after the command (detail depends on steps)


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("onnxprune 0.1.0 (onnx ")


# -- 4. what mode runs ---------------------------------------------------------------------

def test_target_without_data_says_it_uses_the_data_free_baseline(capsys, tmp_path) -> None:
    model = _model(tmp_path / "m.onnx", ONE_GROUP, ONE_GROUP_W)
    code, out, err = run(capsys, "prune", model, "-o", tmp_path / "o.onnx", "--target-macs",
                         "0.5")
    assert code == 0, err
    line = ("mode: no data, so the target (keep 50% of the MACs) uses the data-free baseline "
            "(uniform widths, l1 channels, no compensation); pass --data FILE.npz|DIR for "
            "data-aware pruning with compensation")
    assert f"onnxprune: {line}\n" in err and line in out


def test_ratio_removes_target_keeps_in_help_and_summary(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "share of the MACs to KEEP, in (0, 1): 0.3 keeps 30%" in help_text
    assert "--prune-ratio REMOVE, --ratio REMOVE" in help_text
    assert "0.3 removes 30%, the opposite sense of --target-macs" in help_text
    model = _model(tmp_path / "m.onnx", ONE_GROUP, ONE_GROUP_W)
    code, out, err = run(capsys, "prune", model, "-o", tmp_path / "o.onnx", "--ratio", "0.25")
    assert code == 0, err
    assert "mode: --prune-ratio 0.25 removes 25% of the channels of every prunable group" in out


# -- 6. outputs ------------------------------------------------------------------------------

def test_inspect_shows_interface_and_macs_sum_to_100(capsys) -> None:
    code, out, _ = run(capsys, "inspect", REPO / "models" / "digits_resnet.onnx")
    assert code == 0
    assert out.startswith("opset 17, producer pytorch ")
    assert "input   input: float32 [batch,1,8,8] -> resolved 1,1,8,8" in out
    assert "output  logits: float32 [batch,10] -> resolved 1,10" in out
    assert "MACs%: each weight node's MACs counted once" in out and "tensors:" in out
    code, out, _ = run(capsys, "inspect", REPO / "models" / "digits_resnet.onnx", "--json")
    report = json.loads(out)
    total = sum(g["macs_share"] for g in report["groups"])
    assert total + report["outside_macs"] / report["total_macs"] == pytest.approx(1.0, abs=1e-4)
    assert report["opset"] == 17 and report["inputs"][0]["resolved_shape"] == [1, 1, 8, 8]


def test_inspect_warns_about_unknown_shapes(capsys, caplog, tmp_path) -> None:
    # a Reshape to a shape read from a runtime input: shape inference cannot follow it
    text = """
    g (float[1,3,8,8] x, int64[4] s) => (float[1,4,8,8] y) {
        a = Conv <pads = [1, 1, 1, 1]> (x, w1)
        r = Reshape (a, s)
        y = Conv <pads = [1, 1, 1, 1]> (r, w2)
    }
    """
    proto = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n' + text)
    rng = np.random.default_rng(0)
    for name, shape in {"w1": (8, 3, 3, 3), "w2": (4, 8, 3, 3)}.items():
        proto.graph.initializer.append(
            numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name))
    onnx.save(proto, tmp_path / "u.onnx")
    code, out, err = run(capsys, "inspect", tmp_path / "u.onnx")
    assert code == 0
    assert "1 weight node with unknown shapes (" in out
    assert any("their MACs are not counted, so the MACs are a lower bound" in r.getMessage()
               and r.levelname == "WARNING" for r in caplog.records)


def test_json_names_agree_between_inspect_and_analyze(capsys, dyn) -> None:
    _, out, _ = run(capsys, "inspect", dyn["model"], "--input-shapes", "x:1,3,8,16", "--json")
    inspected = json.loads(out)["groups"][0]
    _, out, _ = run(capsys, "analyze", dyn["model"], "--data", dyn["npz"], "--json",
                    "--no-estimate")
    analysed = json.loads(out)["groups"][0]
    for key in ("id", "channels", "roots", "touched_macs_share", "reasons"):
        assert key in inspected and key in analysed
    assert analysed["touched_macs_share"] == pytest.approx(inspected["touched_macs_share"])
    assert "mac_share" not in analysed and "reason" not in analysed


def test_one_group_grammar(capsys, tmp_path) -> None:
    model = _model(tmp_path / "m.onnx", ONE_GROUP, ONE_GROUP_W)
    code, out, _ = run(capsys, "prune", model, "-o", tmp_path / "o.onnx", "--ratio", "0.5")
    assert code == 0
    assert "pruned 1 group; 1 group left unpruned (barriers)" in out
    assert "1 groups" not in out


def test_bench_without_data_does_not_warn_about_analysis(capsys) -> None:
    code, _, err = run(capsys, "bench", REPO / "models" / "digits_cnn.onnx", "--iterations", "2",
                       "--warmup", "0", "--no-memory")
    assert code == 0
    assert "analysis" not in err and "random data" not in err


@pytest.mark.parametrize("command", ["inspect", "apply", "analyze", "prune", "bench"])
def test_every_command_has_a_description(capsys, command) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert not description.startswith(("positional", "options")), text[:300]


def test_top_level_help_is_for_users(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Command line: parse into options" not in text
    assert "Structured pruning of ONNX models" in text and "examples:" in text
    assert "-v/-q work before or after it" in text


def test_plot_with_many_groups_shows_blocked_groups(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from onnxprune.analysis.plot import _rates, plot
    from onnxprune.analysis.result import AnalysisResult, GroupAnalysis

    rng = np.random.default_rng(0)
    groups = tuple(
        GroupAnalysis(i, (f"Conv@{i}",), 16, "blocked", reason="barrier")
        if i % 7 == 3 else
        GroupAnalysis(i, (f"Conv@{i}",), 16, "ok", rank=8, max_rate=0.5,
                      singular_values=np.sort(rng.random(16))[::-1])
        for i in range(30)
    )
    result = AnalysisResult(groups, None, "gauss-newton", 4, 32, 1e-4, 1e-3)
    plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    fig, ax = plt.subplots()
    _rates(ax, result)
    bars = ax.patches[:30]
    assert len(ax.patches) >= 30  # one bar per group, blocked ones included
    assert sum(b.get_hatch() == "//" for b in bars) == 4  # ids 3, 10, 17, 24
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "no rate: blocked / single channel / no signal (4)" in labels
    plt.close(fig)


# -- 5. the one-call Python API ---------------------------------------------------------------

README_EXAMPLE = (
    "import onnxprune; r = onnxprune.prune('models/digits_resnet.onnx', target_macs=0.5, "
    "data='models/digits_calib.npz'); r.save('pruned.onnx')"
)


@pytest.mark.slow
def test_readme_one_liner_works_as_written(tmp_path) -> None:
    (tmp_path / "models").symlink_to(REPO / "models")
    proc = subprocess.run([sys.executable, "-c", README_EXAMPLE], cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200, check=False,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    pruned = onnx.load(tmp_path / "pruned.onnx")
    onnx.checker.check_model(pruned)
    import onnxprune

    kept = onnxprune.cost(pruned).macs / onnxprune.cost(REPO / "models" / "digits_resnet.onnx").macs
    assert kept == pytest.approx(0.5, abs=0.02)


# -- the issue's own commands on the real PP-OCR models ----------------------------------

CACHE = Path.home() / ".cache" / "onnxprune"


def _real(name: str) -> tuple[Path, Path]:
    model, npz = CACHE / "models" / f"{name}.onnx", CACHE / "calib" / f"{name}.npz"
    if not model.exists() or not npz.exists():
        pytest.skip("run tools/fetch_models.py first")
    return model, npz


@pytest.mark.real
def test_real_ppocr_cls_analyze_and_bench_without_input_shapes(capsys, tmp_path) -> None:
    model, npz = _real("ppocr_cls")  # input x: [-1, 3, ?, ?], data 16x3x48x192
    code, out, err = run(capsys, "analyze", model, "--data", npz, "--no-estimate", "--samples",
                         "4")
    assert code == 0, err
    assert "4 samples" in out
    pruned = tmp_path / "cls_pruned.onnx"
    code, _, err = run(capsys, "prune", model, "-o", pruned, "--data", npz, "--ratio", "0.2",
                       "--force")  # uniform L1 without recovery fails the gate; shapes matter here
    assert code == 0, err
    code, out, err = run(capsys, "bench", model, pruned, "--data", npz, "--iterations", "2",
                         "--warmup", "0", "--no-memory", "--json")
    assert code == 0, err
    assert json.loads(out)["settings"]["input_shapes"] == {"x": [1, 3, 48, 192]}


@pytest.mark.real
def test_real_ppocr_det_unsupported_size_warns(capsys, caplog) -> None:
    model, _ = _real("ppocr_det")
    code, out, _ = run(capsys, "inspect", model, "--input-shapes", "x:1,3,321,320")
    assert code == 0
    assert "weight nodes with unknown shapes" in out
    assert any("MACs are not counted" in r.getMessage() for r in caplog.records)


def test_model_after_several_input_shapes_gets_a_hint(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["inspect", "--input-shapes", "x:1,3,8,8", str(REPO / "models" / "digits_cnn.onnx")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "give the model before options that take several values" in err
    assert len(err.strip().splitlines()) == 1
