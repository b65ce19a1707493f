"""Real models from PyPI wheels: coverage, exact pruning, and 30% structure (marked real)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import onnxprune
from onnxprune import ir
from onnxprune.surgery import apply_plan
from onnxprune.testing import oracle

pytestmark = pytest.mark.real

# Share of MACs in prunable groups (measured, asserted as a floor) and the groups that must
# stay barriers and why: detection heads, softmax over classes, outputs.
EXPECTED = {
    "ppocr_det": (1.0, ()),
    # Paddle's shapes are Concats of Shape slices and constants: a constant entry that names
    # the channel count ("fixes the channel count") now that Slices of shapes are followed.
    "ppocr_cls": (0.9999, ("unknown shape", "normalises over the channels",
                           "computed in a way not modelled", "fixes the channel count")),
    # SVTR's LayerNorm is written as ReduceMean over the features: its stream stays a barrier.
    "ppocr_rec": (0.999, ("unknown shape", "normalises over the channels",
                          "computed in a way not modelled", "fixes the channel count",
                          "reduces over the channels")),
    "picodet_layout": (1.0, ()),
    "mtcnn_pnet": (1.0, ("normalises over the channels",)),
    "mtcnn_rnet": (1.0, ("normalises over the channels",)),
    "mtcnn_onet": (1.0, ("normalises over the channels",)),
}


def _load(rec: dict[str, Any]) -> onnxprune.Model:
    return onnxprune.load(rec["path"], input_shapes=ir.parse_input_shapes(rec["input_shapes"]))


def _calib(rec: dict[str, Any], model: onnxprune.Model) -> dict[str, np.ndarray]:
    data = np.load(rec["calib"])
    name = ir.io_specs(model.proto)[0].name
    return {name: data[name][:1]}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_coverage(real_records, name: str) -> None:
    report = onnxprune.inspect(_load(real_records[name]))
    floor, allowed = EXPECTED[name]
    assert report.prunable_share >= floor - 1e-9
    for g in report.groups:
        for reason in g.reasons:
            assert any(a in reason for a in ("graph output", *allowed)), reason


NOISE_FACTOR = 20
"""The pruned model may differ from the oracle by this many times the model's own float noise."""


def _noise(proto, feeds: dict[str, np.ndarray], ref: list[np.ndarray]) -> float:
    """The model's float noise: its largest output change under 1e-7 input perturbations.

    Pruning re-associates float sums (fewer terms, other kernels), which moves outputs by
    about what a last-bit input change does; on a softmax over thousands of classes (the
    PP-OCR recogniser) that is ~1e-5, elsewhere ~1e-7. Three draws, the largest counts.
    """
    worst = 0.0
    for k in range(3):
        rng = np.random.default_rng(100 + k)
        moved = {n: (x + 1e-7 * float(np.abs(x).max()) * rng.standard_normal(x.shape))
                 .astype(x.dtype) for n, x in feeds.items()}
        worst = max(worst, oracle.max_rel_error(oracle.run(proto, moved), ref, floor=1.0))
    return worst


@pytest.mark.parametrize("seed", [0, 1, 3])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_exact(real_records, name: str, seed: int) -> None:
    rec = real_records[name]
    model = _load(rec)
    plan = oracle.every_other_plan(model, share=0.3, seed=seed)
    pruned = apply_plan(model, plan)
    feeds = _calib(rec, model)
    zeroed = oracle.zeroed(model, plan)
    ref = oracle.run(zeroed, feeds)
    # Outputs are probabilities/scores of scale ~1: compare on that scale, not on the scale
    # of an all-but-zero probability map (float rounding would dominate).
    err = oracle.max_rel_error(oracle.run(pruned, feeds), ref, floor=1.0)
    tolerance = max(1e-6, NOISE_FACTOR * _noise(zeroed, feeds, ref))
    assert err <= tolerance, f"error {err:.3g} > {NOISE_FACTOR} x the model's float noise"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_prune_30_percent(real_records, name: str) -> None:
    model = _load(real_records[name])
    result = onnxprune.prune(model, ratio=0.3)
    assert result.after.macs < result.before.macs
    outs = [(s.name, s.shape) for s in ir.io_specs(result.model, outputs=True)]
    assert outs == [(s.name, s.shape) for s in ir.io_specs(model.proto, outputs=True)]
