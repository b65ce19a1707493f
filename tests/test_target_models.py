"""``prune --target-macs 0.7`` on every test architecture and every fetched real model.

The full method (analysis, hierarchical allocation, effective selection, compensation) runs
on every architecture and on the real models whose analysis is quick; the large real
detectors run the data-free uniform-L1 path here (their full-method numbers come from
``python tools/target_sweep.py --real``, which takes minutes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import onnxprune
from onnxprune import ir
from onnxprune.data import load_data
from onnxprune.testing import ARCH_CASES

TARGET = 0.7
TOLERANCE = 0.02
FULL_METHOD_REAL = ("ppocr_cls", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet")
REAL = ("ppocr_det", "ppocr_cls", "ppocr_rec", "picodet_layout", "mtcnn_pnet", "mtcnn_rnet",
        "mtcnn_onet")


def _kept(res: onnxprune.PruneResult) -> float:
    return res.after.macs / res.before.macs


def _assert_runs_finite(res: onnxprune.PruneResult, model: onnxprune.Model) -> None:
    """The pruned model runs in onnxruntime with the original's output shapes, all finite."""
    import onnxruntime as ort

    feeds = {s.name: np.random.default_rng(0).standard_normal(model.input_shapes[s.name])
             .astype(s.dtype) for s in ir.io_specs(model.proto)}
    outs = ort.InferenceSession(res.model.SerializeToString()).run(None, feeds)
    ref = ort.InferenceSession(model.proto.SerializeToString()).run(None, feeds)
    assert [o.shape for o in outs] == [o.shape for o in ref]
    assert all(np.isfinite(o).all() for o in outs)


def _assert_compensated(res: onnxprune.PruneResult) -> None:
    """Compensation updated consumers, and the plan holds those updates for replay."""
    assert res.compensation is not None
    assert len(res.compensation.compensated) >= 1, res.compensation.line()
    assert res.plan.recovery.compensation and res.plan.recovery.updates


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_target_on_architecture(name: str, exporter: str, arch_model) -> None:
    model = onnxprune.load(arch_model(name, exporter))
    data = load_data(None, ir.io_specs(model.proto), model.input_shapes, random_samples=4)
    res = onnxprune.prune(model, target_macs=TARGET, data=data)
    assert abs(_kept(res) - TARGET) <= TOLERANCE, res.summary()
    assert res.plan.groups
    _assert_compensated(res)
    assert res.plan.method["allocation"] == "hierarchical"
    _assert_runs_finite(res, model)


def _load(rec: dict[str, Any]) -> onnxprune.Model:
    return onnxprune.load(rec["path"], input_shapes=ir.parse_input_shapes(rec["input_shapes"]))


def _assert_plan_replays(res: onnxprune.PruneResult, model: onnxprune.Model,
                         folder: Path) -> None:
    """The saved plan (JSON + compensation sidecar) replays prune's model to 1e-6."""
    import onnxruntime as ort

    from onnxprune.pruning.plan import load_plan

    res.plan.save(folder / "plan.json")
    again = onnxprune.apply(model, load_plan(folder / "plan.json", model.groups))
    feeds = {s.name: np.random.default_rng(1).standard_normal(model.input_shapes[s.name])
             .astype(s.dtype) for s in ir.io_specs(model.proto)}
    a = ort.InferenceSession(res.model.SerializeToString()).run(None, feeds)
    b = ort.InferenceSession(again.model.SerializeToString()).run(None, feeds)
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) <= 1e-6


@pytest.mark.real
@pytest.mark.parametrize("name", REAL)
def test_target_on_real_model(real_records, name: str, tmp_path: Path) -> None:
    rec = real_records[name]
    model = _load(rec)
    if name in FULL_METHOD_REAL:
        data = load_data(rec["calib"], ir.io_specs(model.proto), model.input_shapes, limit=4)
        res = onnxprune.prune(model, target_macs=TARGET, data=data)
        _assert_compensated(res)
        _assert_plan_replays(res, model, tmp_path)
    else:
        res = onnxprune.prune(model, target_macs=TARGET, allocation="uniform", criterion="l1",
                              compensate=False)
    assert abs(_kept(res) - TARGET) <= TOLERANCE, res.summary()
    assert res.plan.groups and res.after.params < res.before.params
    _assert_runs_finite(res, model)
