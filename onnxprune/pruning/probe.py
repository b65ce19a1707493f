"""Measured loss weights (``--probe``): each group pruned alone, its output error measured.

The hierarchical allocation prices a group's discarded directions by their share of the
group's spectral energy times a weight for the whole group (``targets.budget``). Without
measurement that weight is the analysis' own total, ``E = ½·Σλ/N``, to the power
``energy_power``: an estimate, and on real models a rough one. Pruned alone at the widths of
the default plan (compensated and refined), the groups of the PP-OCR angle classifier lost
0.07 to 1.7 times their energy share in output error, loosely following ``E^0.5``: the last
conv before the pooling and classifier (32 -> 200 channels, the smallest ``E`` of all) was the
most under-priced, and the plan kept 8 of its 200 channels
(``benchmarks/results/probe_2026-11-29.md``).

So a probe measures it. Every group a first allocation prunes is pruned alone at that width,
compensated and refined on the calibration data as the final prune will be, the result runs on
:data:`SAMPLES` calibration samples, and its error in the output-aware measure (each output
standardised, logits behind Sigmoid/Softmax; :mod:`onnxprune.analysis.measure`),
``½·Σ‖Δ‖²/N`` like ``E``, divided by the group's share of energy discarded, becomes the
group's weight. Groups the first allocation left whole (nothing to measure) and probes whose
share is at round-off keep their estimate, converted by the median ratio of measured to
estimated weight over the probed groups. The allocation then runs again on these weights.
One refinement pass per pruned group makes it slow on large models; hence opt-in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from onnxprune import ir, progress
from onnxprune.analysis.measure import OutputMeasure, measured, output_measures
from onnxprune.channels.graph import ChannelGraph
from onnxprune.data import Dataset
from onnxprune.errors import OnnxPruneError
from onnxprune.model import Model
from onnxprune.pruning.compensation import plan_updates, write_updates
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.refine import refine
from onnxprune.pruning.targets import direction_shares, estimated_weight
from onnxprune.shim.module import Shim
from onnxprune.surgery import apply_plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult, GroupAnalysis
    from onnxprune.pruning.plan import Plan

log = logging.getLogger(__name__)

SAMPLES = 32
"""Calibration samples each probe runs on (spread over the data)."""
BATCH = 16
MIN_SHARE = 1e-4
"""Below this share of energy discarded a probe measures round-off, not a scale."""


def energy_share(a: GroupAnalysis, size: int, width: int, samples: int) -> float:
    """Share of the group's energy discarded at ``width``, as the allocation counts it."""
    return float(direction_shares(a, size, samples)[width:].sum())


def calibrate(model: Model, analysis: AnalysisResult, plan: Plan, opts: PruneOptions,
              data: Dataset, teacher: Shim | None = None) -> AnalysisResult:
    """Return ``analysis`` with every usable group's ``loss_scale`` set (see the module doc)."""
    probes = [(g.id, g.size, list(g.keep)) for g in plan.groups if 0 < len(g.keep) < g.size]
    groups = {g.id: g for g in analysis.groups}
    batch = ir.fixed_batch(model.proto) or BATCH
    take = min(len(data), SAMPLES)
    take = max(batch, take // batch * batch) if len(data) >= batch else len(data)
    index = np.unique(np.linspace(0, len(data) - 1, take).round().astype(int))
    probe_data = data.subset(index)
    ref_shim = teacher if teacher is not None else Shim(model.proto, device=opts.device)
    measures = output_measures(ref_shim, probe_data, batch, dict(opts.output_weights))
    ref = _measure(ref_shim, measures, probe_data, batch)
    measured_scales: dict[int, float] = {}
    with progress.task(f"probes: {len(probes)} group(s) pruned alone"):
        for gid, size, keep in probes:
            a = groups.get(gid)
            share = (energy_share(a, size, len(keep), analysis.samples)
                     if a is not None and a.rank else 0.0)
            if share < MIN_SHARE:
                continue
            try:
                edit = _recover(model, gid, keep, groups, opts, data, ref_shim)
                proto = apply_plan(model, {gid: keep}, edit=edit, check=False)
            except OnnxPruneError as e:  # cannot build this probe: the estimate stands
                log.info("probe of group %d skipped: %s", gid, e)
                continue
            got = _measure(Shim(proto, device=opts.device), measures, probe_data, batch)
            err = 0.5 * sum(float((g - r).pow(2).sum()) for g, r in zip(got, ref, strict=True))
            measured_scales[gid] = err / len(probe_data) / share
    return _with_scales(analysis, measured_scales, opts.energy_power)


def _with_scales(analysis: AnalysisResult, scales: Mapping[int, float], power: float
                 ) -> AnalysisResult:
    """Every usable group's scale: measured, or estimated times the median conversion."""
    est = {g.id: estimated_weight(g, analysis.samples, power) for g in analysis.groups
           if g.singular_values is not None and g.rank}
    ratios = [scales[gid] / est[gid] for gid in scales if est.get(gid, 0) > 0]
    convert = float(np.median(ratios)) if ratios else 1.0
    groups = tuple(
        replace(g, loss_scale=scales.get(g.id, convert * est[g.id])) if g.id in est else g
        for g in analysis.groups
    )
    return replace(analysis, groups=groups, probed=len(scales))


def _recover(model: Model, gid: int, keep: list[int], groups: Mapping[int, GroupAnalysis],
             opts: PruneOptions, data: Dataset, teacher: Shim
             ) -> Callable[[ChannelGraph], None]:
    """The edit that compensates (and refines, as the final prune will) one group's probe."""
    def edit(cg: ChannelGraph) -> None:
        report = plan_updates(cg, {gid: keep}, groups, ridge=opts.ridge)
        if opts.refine:
            refine(model, cg, {gid: keep}, report, data, ridge=opts.ridge, seed=opts.seed,
                   device=opts.device, teacher=teacher)
        write_updates(cg, report)
    return edit


@torch.no_grad()
def _measure(shim: Shim, measures: tuple[OutputMeasure, ...], data: Dataset, batch: int
             ) -> list[torch.Tensor]:
    names = {m.tensor for m in measures if m.tensor != m.output}
    parts: list[list[torch.Tensor]] = []
    for feeds, _ in data.batches(batch):
        with shim.watch(names, retain_grad=False) as watched:
            outs = shim(feeds)
        parts.append([t.double() for t in measured(measures, outs, watched)])
    return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]
