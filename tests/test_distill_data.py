"""--distill-data: more unlabelled samples for distillation alone (the analysis keeps to --data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import onnxprune
from onnxprune import ir, progress
from onnxprune.cli import main
from onnxprune.data import Dataset, load_data
from onnxprune.errors import InputError

MODELS = Path(__file__).resolve().parents[1] / "models"
CALIB = MODELS / "digits_calib.npz"


@pytest.fixture(scope="module")
def digits() -> tuple[onnxprune.Model, object, np.ndarray]:
    model = onnxprune.load(MODELS / "digits_cnn.onnx")
    data = load_data(CALIB, ir.io_specs(model.proto), model.input_shapes, limit=64)
    with np.load(CALIB) as z:
        x = z[next(k for k in z.files if k != "labels")][:200]
    return model, data, x


def test_distillation_trains_on_the_distill_data_and_the_analysis_on_data(digits) -> None:
    model, data, more = digits
    plain = onnxprune.prune(model, target_macs=0.5, data=data, distill_epochs=1)
    wide = onnxprune.prune(model, target_macs=0.5, data=data, distill_epochs=1,
                           distill_data=more)
    # every 8th sample is held out of training: 64 -> 56 trained, 200 -> 175
    assert plain.distillation.samples == 56
    assert wide.distillation.samples == 175
    assert "trained on 175 samples" in wide.summary()
    # the analysis (and so the widths) saw the same 64 samples either way
    assert plain.plan.groups == wide.plan.groups


def test_distill_data_without_distillation_is_refused(digits) -> None:
    model, data, more = digits
    with pytest.raises(InputError, match="only read by distillation"):
        onnxprune.prune(model, target_macs=0.5, data=data, distill_data=more)


def test_distill_data_with_supervised_distillation_is_refused(digits) -> None:
    model, data, more = digits
    with pytest.raises(InputError, match="label-free"):
        onnxprune.prune(model, target_macs=0.5, data=data, distill_epochs=1,
                        distill_labels=True, distill_data=more)


def test_distill_data_of_another_shape_is_refused(digits) -> None:
    model, data, more = digits
    small = more[:, :, :4, :4].copy()
    with pytest.raises(InputError, match=r"--distill-data: .*\[200, 1, 4, 4\], expected"):
        onnxprune.prune(model, target_macs=0.5, data=data, distill_epochs=1,
                        distill_data=small)
    with pytest.raises(InputError, match="is 4x4 per sample but the model runs 1x8x8"):
        onnxprune.prune(model, target_macs=0.5, data=data, distill_epochs=1,
                        distill_data=Dataset({"input": small[:, 0]}))


def test_cli_distill_data(tmp_path, capsys) -> None:
    more = tmp_path / "more.npz"
    with np.load(CALIB) as z:
        np.savez(more, **{k: z[k][:120] for k in z.files if k != "labels"})
    out = tmp_path / "p.onnx"
    base = ["prune", str(MODELS / "digits_cnn.onnx"), "-o", str(out), "--target-macs", "0.5",
            "--data", str(CALIB), "--samples", "64", "--no-speed-check"]
    try:
        assert main([*base, "--distill-data", str(more)]) != 0
        assert "--distill-data is only read by distillation" in capsys.readouterr().err
        assert not out.exists()
        assert main([*base, "--distill-data", str(more), "--distill-epochs", "1"]) == 0
        assert "trained on 105 samples" in capsys.readouterr().out  # 120, every 8th held out
        assert out.exists()
    finally:
        progress.configure()  # the CLI configured it; later tests get the library default
