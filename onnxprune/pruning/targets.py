"""How many channels: widths for a MACs/params target from the analysis, and their plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from onnxprune import metrics
from onnxprune.errors import CannotPruneError, OnnxPruneError
from onnxprune.model import Model
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning import grid, grid_guard
from onnxprune.pruning.cost_model import touched
from onnxprune.pruning.criteria import CRITERIA
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import Plan, make_plan
from onnxprune.pruning.select import excluded, residuals, select

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult, GroupAnalysis



USABLE = ("ok", "data-limited", "taylor-fallback")
"""Analysis statuses whose spectrum the hierarchical allocation may use."""


def metric_of(cost: metrics.Cost, metric: str) -> int:
    """Return the MACs or parameter count of a cost, by metric name."""
    return cost.macs if metric == "macs" else cost.params


def target_plan(model: Model, target: float, opts: PruneOptions, analysis: AnalysisResult | None,
                cost: alloc_mod.Pricing | None = None, *, guard: bool = True,
                ) -> tuple[Plan, alloc_mod.Allocation]:
    """Allocate widths to reach ``target`` (of this model) and pick the channels.

    ``cost`` prices the widths (default: the bilinear MACs/params model of ``opts.metric``;
    a latency table for ``--target-latency``). ``round_to auto`` tries the coarsest grid first
    and relaxes it only when the target cannot be reached on it (``pruning/grid.py``).
    """
    assert opts.metric is not None
    grids = grid.candidates(opts.round_to, opts.provider)
    tried = []
    for step in grids:
        result = _allocate(model, target, opts, analysis, step, cost)
        tried.append((step, result))
        if abs(result.estimate - target) <= alloc_mod.TOLERANCE:
            break
    else:  # no grid lands within the tolerance: the closest one not above it
        step, result = min(tried, key=lambda t: (t[1].estimate > target + alloc_mod.TOLERANCE,
                                                 abs(t[1].estimate - target)))
    if opts.round_to == grid.AUTO and opts.allocation == "hierarchical" and analysis is not None:
        landed_step, landed = step, result
        step, result = _affordable_grid(model, target, opts, analysis, cost, grids, step, result)
        if (step != landed_step and guard and grid_guard.enabled()
                and abs(landed.estimate - target) <= alloc_mod.TOLERANCE):
            return _guarded(model, target, opts, analysis, (step, result),
                            (landed_step, landed))
    if step != grids[0]:
        result.notes.append(
            f"round-to auto: on the latency-friendly grid of {grids[0]} channels the target "
            f"cannot be reached or costs too much of the analysis' energy; widths are multiples "
            f"of {step} (may run slower than the grid; see the speed check)")
    elif opts.round_to == grid.AUTO:
        result.notes.append(f"round-to auto: widths are multiples of {step} "
                            f"({opts.provider} provider's channel block on this machine)")
    return _plan(model, target, opts, analysis, result, step)


def _guarded(model: Model, target: float, opts: PruneOptions, analysis: AnalysisResult,
             fine: tuple[int, alloc_mod.Allocation], block: tuple[int, alloc_mod.Allocation]
             ) -> tuple[Plan, alloc_mod.Allocation]:
    """Return the loss rule's finer grid, unless it is measured slow (``pruning/grid_guard.py``)."""
    fine_plan = _plan(model, target, opts, analysis, fine[1], fine[0])
    block_plan = _plan(model, target, opts, analysis, block[1], block[0])
    try:
        choice = grid_guard.measure(model, fine_plan[0], block_plan[0], fine[0], block[0], opts)
    except OnnxPruneError as e:  # cannot time it here (e.g. inputs without concrete shapes)
        fine_plan[1].notes.append(f"round-to auto: widths in multiples of {fine[0]} (the grid "
                                  f"guard could not time them: {e})")
        return fine_plan
    chosen = fine_plan if choice.keep_fine else block_plan
    chosen[1].notes.append(choice.line())
    return chosen


GRID_SLACK = 0.02
"""Spectral energy (summed share discarded over groups) the latency grid may cost beyond exact
widths, or half the exact widths' own loss if that is more (see :func:`_affordable_grid`)."""


def _affordable_grid(model: Model, target: float, opts: PruneOptions, analysis: AnalysisResult,
                     cost: alloc_mod.Pricing | None, grids: tuple[int, ...], step: int,
                     result: alloc_mod.Allocation) -> tuple[int, alloc_mod.Allocation]:
    """Keep the coarse grid only while it costs little of the analysis' estimated loss.

    On narrow nets (MTCNN's 28-128-channel layers) a 16-channel grid forces whole halves of a
    group out where exact widths would drop a few channels: measured, MTCNN O-Net's face
    decisions fell from 0.995 (exact widths) to 0.84 at 0.7 of the MACs. So the loss (the
    share of spectral energy discarded, summed over groups) is compared with the exact widths'
    and the coarsest grid within ``GRID_SLACK`` of it is used; wide nets keep the block grid.
    This loss stays in shares, whatever ``energy_power`` the allocation itself used:
    ``GRID_SLACK`` was set in those units.
    """
    fine = _allocate(model, target, opts, analysis, 1, cost)
    if abs(fine.estimate - target) > alloc_mod.TOLERANCE:
        return step, result
    floor = _loss(fine, analysis)
    limit = floor + max(GRID_SLACK, 0.5 * floor)
    for s in grids[grids.index(step):]:
        r = result if s == step else _allocate(model, target, opts, analysis, s, cost)
        if abs(r.estimate - target) <= alloc_mod.TOLERANCE and _loss(r, analysis) <= limit:
            return s, r
    return 1, fine


def _loss(result: alloc_mod.Allocation, analysis: AnalysisResult) -> float:
    """Estimated loss of an allocation: the spectral energy share discarded, over groups."""
    total = 0.0
    for gid, width in result.widths.items():
        a = analysis.group(gid)
        if a is not None and a.rank and a.singular_values is not None:
            total += 1.0 - energy_kept(a, width)
    return total


def _allocate(model: Model, target: float, opts: PruneOptions, analysis: AnalysisResult | None,
              round_to: int, cost: alloc_mod.Pricing | None) -> alloc_mod.Allocation:
    assert opts.metric is not None
    cg = model.groups
    skip = excluded(model, opts.exclude)
    allowed: dict[int, alloc_mod.Widths] = {}
    notes: list[str] = []
    for g in cg.groups:
        if g.prunable and g.id not in skip:
            wd = alloc_mod.widths_for(g, round_to, opts.min_channels)
            if wd.floor < g.size:
                allowed[g.id] = wd
    cm: alloc_mod.Pricing = cost if cost is not None else alloc_mod.CostModel(
        cg, opts.metric, metric_of(model.cost, opts.metric))
    rng = np.random.default_rng(opts.seed)

    def ga(gid: int) -> GroupAnalysis | None:
        return analysis.group(gid) if analysis is not None else None

    if opts.allocation == "hierarchical":
        assert analysis is not None
        budgets = []
        for gid, wd in allowed.items():
            a = ga(gid)
            b = budget(gid, wd, a, analysis.samples, opts.energy_power)
            if b is None:
                notes.append(f"group {gid}: {a.status if a else 'not analysed'}; left unpruned")
            else:
                budgets.append(b)
        result = alloc_mod.hierarchical(cm, budgets, target, opts.metric)
    elif opts.allocation == "uniform":
        result = alloc_mod.uniform(cm, allowed, target, opts.metric, touched(cg))
    else:
        # The effective criterion's scores are pivot ranks; across groups compare the energy
        # each channel adds when it is taken instead.
        scores = {gid: residuals(ga(gid)) if opts.criterion == "effective"
                  else CRITERIA[opts.criterion](cg, cg.group(gid), rng, ga(gid))
                  for gid in allowed}
        result = alloc_mod.global_ranking(cm, allowed, scores, target, opts.metric)
    result.notes.extend(notes)
    return result


def _plan(model: Model, target: float, opts: PruneOptions, analysis: AnalysisResult | None,
          result: alloc_mod.Allocation, round_to: int) -> tuple[Plan, alloc_mod.Allocation]:
    cg = model.groups

    def ga(gid: int) -> GroupAnalysis | None:
        return analysis.group(gid) if analysis is not None else None

    if result.estimate > target + alloc_mod.TOLERANCE:
        raise alloc_mod.unreachable(result, opts.metric)
    if result.estimate < target - alloc_mod.TOLERANCE:
        result.notes.append(
            f"the {opts.allocation} widths (round-to {round_to}) cannot land within "
            f"{alloc_mod.TOLERANCE:.0%} of the target: {opts.metric} kept "
            f"{result.estimate:.3f} instead of {target:.3f}"
        )
    if not result.widths:
        raise CannotPruneError(
            "no channel group can be pruned: every group is a barrier, excluded, too small "
            "or without signal on the data; run 'onnxprune inspect' / 'analyze' to see why"
        )
    keep, info = {}, {}
    rng = np.random.default_rng(opts.seed)
    for gid, width in result.widths.items():
        g = cg.group(gid)
        keep[gid] = select(g, CRITERIA[opts.criterion](cg, g, rng, ga(gid)), width)
        a = ga(gid)
        info[gid] = {
            "width": width, "criterion": opts.criterion,
            **({"rank": a.rank, "rank_threshold": a.rank_threshold, "max_rate": a.max_rate,
                "status": a.status,
                "energy_kept": energy_kept(a, width)} if a is not None and a.rank else {}),
            **({"loss_scale": round(a.loss_scale, 9)}
               if a is not None and a.loss_scale is not None else {}),
            **({"past_rank": True} if gid in result.past_rank else {}),
        }
    method = {"target": target, "metric": opts.metric, "allocation": opts.allocation,
              "criterion": opts.criterion, "round_to": round_to,
              "energy_power": opts.energy_power,
              "probed": analysis.probed if analysis is not None else 0,
              "min_channels": opts.min_channels, "estimate": round(result.estimate, 6)}
    return make_plan(cg, keep, method=method, info=info), result


def budget(gid: int, wd: alloc_mod.Widths, a: GroupAnalysis | None, samples: int,
           power: float) -> alloc_mod.GroupBudget | None:
    """Build a group's allocation budget from its spectrum, or None when it cannot be used.

    Each direction's loss is its share of the group's spectral energy times the group's total
    estimated loss (over the directions the data shows) to the power ``power``
    (``PruneOptions.energy_power``, default ``allocation.ENERGY_POWER``).
    """
    if a is None or a.status not in USABLE or a.singular_values is None or a.rank is None:
        return None
    # The currency is the share of the group's gradient energy discarded, weighed by the
    # group's measured total to the power `power` (see allocation), or by the scale a probe
    # measured pruning the group alone (pruning/probe.py).
    scale = estimated_weight(a, samples, power) if a.loss_scale is None else a.loss_scale
    lam = direction_shares(a, wd.size, samples) * scale
    trusted = a.capacity >= wd.size
    cap = wd.at_least(a.rank) if trusted else wd.size
    return alloc_mod.GroupBudget(gid, wd, lam, cap, a.rank)


def direction_shares(a: GroupAnalysis, size: int, samples: int) -> np.ndarray:
    """Each of the ``size`` directions' share of the group's spectral energy (summing to 1).

    Directions the data cannot show (past ``a.capacity``) are assumed to cost as much as the
    last one seen. (The energies are ``½·s²/N`` before normalising, as they always were, so
    that the allocation's arithmetic, and so its ties, stay as they were.)
    """
    lam = np.asarray(a.singular_values, dtype=np.float64) ** 2 / (2.0 * max(1, samples))
    lam = np.pad(lam, (0, max(0, size - lam.size)))[:size]
    if a.capacity < size and a.capacity > 0:
        cut = min(a.capacity, size)
        lam[cut:] = lam[cut - 1]
    return lam / max(float(lam.sum()), np.finfo(float).tiny)


def estimated_weight(a: GroupAnalysis, samples: int, power: float) -> float:
    """A group's weight in the allocation without measurement: its estimated loss over the
    directions the data shows, ``½·Σs²/N``, to ``power``."""
    lam = np.asarray(a.singular_values, dtype=np.float64) ** 2 / (2.0 * max(1, samples))
    return float(lam.sum()) ** power


def energy_kept(a: GroupAnalysis, width: int) -> float:
    """Share of the group's spectral energy kept at ``width``."""
    lam = np.asarray(a.singular_values, dtype=np.float64) ** 2
    total = float(lam.sum())
    return round(float(lam[:width].sum()) / total, 6) if total > 0 else 1.0


