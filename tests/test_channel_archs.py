"""Every test architecture x exporter: exact pruning, verified structure, stated coverage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import onnxprune
from onnxprune import ir
from onnxprune.surgery import apply_plan
from onnxprune.testing import ARCH_CASES, oracle

# Share of MACs in nodes touched by a prunable group, per architecture (both exporters).
COVERAGE = {
    "vgg_bn": 1.0, "resnet_basic": 1.0, "resnet_bottleneck": 1.0, "mobilenetv2": 1.0,
    "mobilenetv3": 1.0, "efficientnet": 1.0, "densenet": 1.0, "inception": 1.0,
    "shufflenetv2": 1.0, "resnext": 1.0, "yolov8": 0.99, "unet": 1.0, "flatten_gemm": 1.0,
    "convnext": 0.65,
}
# Barriers that are correct by design; anything else means a missing or wrong rule.
EXPECTED_BARRIERS = {
    "shufflenetv2": ("splits the channels",),  # channel shuffle
    "yolov8": ("splits the channels",),  # DFL box bins
    # LayerNorm over channels; dynamo writes the head's as_strided as a flat Gather.
    "convnext": ("normalises across the channels", "gathers along the channel axis"),
}


def _model(arch_model: Callable[[str, str], Path], name: str, exporter: str) -> onnxprune.Model:
    return onnxprune.load(arch_model(name, exporter))


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_exact_against_zeroed_oracle(arch_model, name: str, exporter: str) -> None:
    model = _model(arch_model, name, exporter)
    plan = oracle.every_other_plan(model, share=0.3, seed=1)
    assert plan, "no prunable group"
    pruned = apply_plan(model, plan)
    feeds = oracle.random_feeds(model, seed=2)
    err = oracle.max_rel_error(oracle.run(pruned, feeds), oracle.run(oracle.zeroed(model, plan), feeds))
    assert err <= 1e-5


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_prune_30_percent_structure(arch_model, name: str, exporter: str) -> None:
    model = _model(arch_model, name, exporter)
    result = onnxprune.prune(model, ratio=0.3)
    for outputs in (False, True):
        got = ir.io_specs(result.model, outputs=outputs)
        want = ir.io_specs(model.proto, outputs=outputs)
        assert [(s.name, s.dtype, s.shape) for s in got] == [(s.name, s.dtype, s.shape) for s in want]
    assert result.after.macs < result.before.macs
    assert result.after.params < result.before.params
    for g in result.plan.groups:
        assert len(g.keep) == g.size - int(round(0.3 * g.size))


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_coverage_and_barriers(arch_model, name: str, exporter: str) -> None:
    report = onnxprune.inspect(_model(arch_model, name, exporter))
    assert report.prunable_share >= COVERAGE[name]
    allowed = ("channels reach graph output", *EXPECTED_BARRIERS.get(name, ()))
    for g in report.groups:
        for reason in g.reasons:
            assert any(a in reason for a in allowed), reason
    assert sum(g.prunable for g in report.groups) >= 2


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_plan_replay_is_byte_identical(arch_model, name: str, exporter: str, tmp_path: Path) -> None:
    model = _model(arch_model, name, exporter)
    first = onnxprune.prune(model, ratio=0.5, criterion="l2")
    first.plan.save(tmp_path / "plan.json")
    again = onnxprune.apply(model, onnxprune.load_plan(tmp_path / "plan.json", model.groups))
    a = {t.name: t.raw_data for t in first.model.graph.initializer}
    b = {t.name: t.raw_data for t in again.model.graph.initializer}
    assert a == b
    assert np.isclose(first.after.macs, again.after.macs)
