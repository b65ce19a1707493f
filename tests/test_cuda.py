"""The torch side on a GPU (``--device cuda``): analysis, compensation and distillation.

These run only where torch sees a CUDA device (CI has none; the project checks them on a lent
GPU machine). Each compares the GPU result with the CPU result of the same call.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import onnxprune
from onnxprune import ir
from onnxprune.analysis import analyze
from onnxprune.data import load_data
from onnxprune.testing.oracle import run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def digits():
    model = onnxprune.load(MODELS / "digits_resnet.onnx")
    data = load_data(MODELS / "digits_calib.npz", ir.io_specs(model.proto), model.input_shapes,
                     limit=128)
    return model, data


def _accuracy(proto) -> float:
    test = np.load(MODELS / "digits_test.npz")
    (y,) = run(proto, {"input": test["input"]})
    return float((y.argmax(1) == test["labels"]).mean())


def test_analysis_on_cuda_matches_cpu(digits) -> None:
    model, data = digits
    cpu = analyze(model, data, estimate=False, device="cpu")
    gpu = analyze(model, data, estimate=False, device="cuda")
    assert [g.id for g in cpu.groups] == [g.id for g in gpu.groups]
    for a, b in zip(cpu.groups, gpu.groups, strict=True):
        assert a.status == b.status
        if a.gram is None:
            continue
        ka, kb = np.asarray(a.gram), np.asarray(b.gram)
        assert np.abs(ka - kb).max() <= 1e-3 * np.abs(ka).max(), a.id
        assert abs((a.rank or 0) - (b.rank or 0)) <= 1, (a.id, a.rank, b.rank)


def test_prune_with_distillation_on_cuda(digits) -> None:
    model, data = digits
    res = onnxprune.prune(model, data=data, target_macs=0.5, distill_epochs=2, device="cuda")
    assert res.distillation is not None
    assert res.after.macs < 0.55 * res.before.macs
    ref = onnxprune.prune(model, data=data, target_macs=0.5, distill_epochs=2, device="cpu")
    assert [g.keep for g in res.plan.groups] == [g.keep for g in ref.plan.groups]
    assert _accuracy(res.model) >= _accuracy(ref.model) - 0.02


def test_cli_device_cuda(tmp_path: Path) -> None:
    out = tmp_path / "p.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", "prune", str(MODELS / "digits_resnet.onnx"),
         "-o", str(out), "--target-macs", "0.5", "--data", str(MODELS / "digits_calib.npz"),
         "--device", "cuda", "--distill-epochs", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    assert _accuracy(onnxprune.load(out).proto) > 0.9
