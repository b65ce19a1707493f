"""Calibration sanity (onnxprune.calibration) and the photo-calibrated PP-OCR detector."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from onnxprune.calibration import calibration_warnings
from onnxprune.data import Dataset

RNG = np.random.default_rng(0)


def _model(text: str, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in weights.items())
    return model


SIGMOID = """
<ir_version: 8, opset_import: ["" : 17]>
det (float[N, 2, 4, 4] x) => (float[N, 1, 4, 4] y) {
    a = Conv <kernel_shape = [1, 1]> (x, W, B)
    y = Sigmoid (a)
}
"""


@pytest.mark.parametrize(("bias", "warned"), [(-20.0, True), (0.0, False)])
def test_saturated_sigmoid_output_is_named(bias: float, warned: bool) -> None:
    model = _model(SIGMOID, {"W": RNG.standard_normal((1, 2, 1, 1)).astype(np.float32),
                             "B": np.array([bias], np.float32)})
    data = Dataset({"x": RNG.standard_normal((16, 2, 4, 4)).astype(np.float32)})
    lines = calibration_warnings(model, data)
    hits = [ln for ln in lines if "saturated" in ln]
    assert len(hits) == int(warned)
    if warned:
        assert "output 'y' (Sigmoid)" in hits[0] and "16 of 16 samples" in hits[0]
        assert "give inputs like the model's real inputs" in hits[0]


CONSTANT = """
<ir_version: 8, opset_import: ["" : 17]>
flat (float[N, 3] x) => (float[N, 3] y) {
    z = Mul (x, Zero)
    y = Add (z, C)
}
"""


def test_near_constant_output_is_named() -> None:
    model = _model(CONSTANT, {"Zero": np.zeros(3, np.float32),
                              "C": np.array([1.0, 2.0, 3.0], np.float32)})
    data = Dataset({"x": RNG.standard_normal((8, 3)).astype(np.float32)})
    (line,) = calibration_warnings(model, data)
    assert "output 'y' is near-constant across the 8 samples" in line


BN = """
<ir_version: 8, opset_import: ["" : 17]>
stem (float[N, 3, 6, 6] x) => (float[N, 4, 6, 6] y) {
    a = Conv <kernel_shape = [1, 1]> (x, W)
    y = BatchNormalization (a, S, Bb, M, V)
}
"""


@pytest.mark.parametrize(("scale", "warned"), [(1.0, False), (255.0, True)])
def test_inputs_far_from_the_first_bn_are_named(scale: float, warned: bool) -> None:
    w = RNG.standard_normal((4, 3, 1, 1)).astype(np.float32)
    x = RNG.standard_normal((32, 3, 6, 6)).astype(np.float32)
    a = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)  # what the BN saw in training
    model = _model(BN, {"W": w, "S": np.ones(4, np.float32), "Bb": np.zeros(4, np.float32),
                        "M": a.mean((0, 2, 3)).astype(np.float32),
                        "V": a.var((0, 2, 3)).astype(np.float32)})
    fresh = RNG.standard_normal((16, 3, 6, 6)).astype(np.float32) * scale
    lines = [ln for ln in calibration_warnings(model, Dataset({"x": fresh}))
             if "BatchNormalization" in ln]
    assert len(lines) == int(warned)
    if warned:
        assert "input 'x'" in lines[0] and "variance off by" in lines[0]


@pytest.mark.real
@pytest.mark.slow
def test_photo_calibrated_ppocr_det_warns_and_writes_nothing(real_records,
                                                             tmp_path: Path) -> None:
    """Issue 12: text-free photos calibrate a text detector; the prune collapses (drop 0.875).

    The calibration warning comes before the analysis, the gate refuses with exit 3 and one
    error line naming the output file and the drop, and nothing is written.
    """
    rec = real_records["ppocr_det"]
    photos = tmp_path.parent / f"{tmp_path.name}_photos.npz"
    np.savez(photos, x=_photo_crops(16))
    out = tmp_path / "det.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", "prune", rec["path"], "--input-shapes",
         "x:1,3,320,320", "-o", str(out), "--target-macs", "0.5", "--data", str(photos),
         "--round-to", "8", "--check", "--save-plan", str(tmp_path / "p.json")],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    saturated = [i for i, ln in enumerate(lines) if "saturated" in ln]
    errors = [i for i, ln in enumerate(lines) if "error:" in ln]
    assert len(saturated) == 1 and len(errors) == 1 and saturated[0] < errors[0]
    assert "sigmoid_0.tmp_0" in lines[saturated[0]]
    error = lines[errors[0]]
    assert str(out) in error and "not written" in error and "--max-drop 0.05" in error
    assert float(error.split(" is ")[1].split()[0]) > 0.5
    assert not out.exists() and not (tmp_path / "p.json").exists()
    assert list(tmp_path.iterdir()) == []


def _photo_crops(n: int) -> np.ndarray:
    """Text-free 320x320 crops of scikit-learn's sample photos, preprocessed as PP-OCR det.

    (The project's own ppocr_det calibration is now rendered text pages; this rebuilds the
    photo calibration the issue's run used.)
    """
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = load_sample_images().images[i % 2]  # RGB uint8, 427x640
        y, x = rng.integers(0, img.shape[0] - 320), rng.integers(0, img.shape[1] - 320)
        crop = img[y:y + 320, x:x + 320, ::-1].astype(np.float32) / 255.0  # BGR
        out.append(((crop - 0.5) / 0.5).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)
