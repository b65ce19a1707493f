"""Pruning entry points: hierarchical pruning to a target, ratio pruning, replaying plans.

``prune(model, target_macs=0.5, data=...)`` is the main job (DESIGN.md §2.4–2.5): the
effective filter analysis, a layer-wise allocation of widths (how many channels each group
keeps), a filter-wise selection (which), closed-form compensation, optional distillation,
and verification. ``prune(model, ratio=0.3)`` is the classic uniform baseline that needs no
data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxprune import allocation as alloc_mod
from onnxprune import ir, metrics
from onnxprune.channels.graph import Group
from onnxprune.compensation import RIDGE, CompensationReport, compensate
from onnxprune.criteria import CRITERIA, NEEDS_ANALYSIS, top_k
from onnxprune.errors import CannotPruneError, InputError
from onnxprune.model import Model, load
from onnxprune.plan import Plan, make_plan
from onnxprune.surgery import apply_plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult, GroupAnalysis
    from onnxprune.data import Dataset
    from onnxprune.distill import DistillReport

log = logging.getLogger(__name__)

USABLE = ("ok", "data-limited", "taylor-fallback")
"""Analysis statuses whose spectrum the hierarchical allocation may use."""


@dataclass(frozen=True)
class PruneResult:
    """A verified pruned model, the plan that made it, its cost before/after and the story.

    ``plan`` indexes the original model's channels; replaying it with :func:`apply` gives
    the same model when no recovery (compensation, distillation) was used.
    """

    model: onnx.ModelProto
    plan: Plan
    before: metrics.Cost
    after: metrics.Cost
    skipped: tuple[tuple[int, str], ...]
    analysis: AnalysisResult | None = None
    allocation: alloc_mod.Allocation | None = None
    compensation: CompensationReport | None = None
    distillation: DistillReport | None = None
    notes: tuple[str, ...] = ()

    def table(self) -> str:
        """Before/after table of parameters, MACs and file size."""
        rows = [("params", self.before.params, self.after.params),
                ("MACs", self.before.macs, self.after.macs),
                ("size (bytes)", self.before.size_bytes, self.after.size_bytes)]
        lines = [f"{'':<14}{'before':>14}{'after':>14}{'kept':>8}"]
        for name, b, a in rows:
            lines.append(f"{name:<14}{b:>14,}{a:>14,}{a / b if b else 1:>8.3f}")
        return "\n".join(lines)

    def groups_table(self) -> str:
        """Per pruned group: channels kept and, when analysed, rank and max rate."""
        head = f"{'group':>5} {'kept':>11} {'rank':>5} {'max rate':>8}  roots"
        lines = [head, "-" * len(head)]
        for g in self.plan.groups:
            info = g.info
            rank = info.get("rank")
            rate = info.get("max_rate")
            past = " *past max rate*" if info.get("past_rank") else ""
            lines.append(
                f"{g.id:>5} {f'{len(g.keep)}/{g.size}':>11} {'-' if rank is None else rank:>5} "
                f"{'-' if rate is None else f'{rate:.3f}':>8}  {', '.join(g.roots[:2])}{past}"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        """Return the notes, compensation and distillation lines."""
        lines = list(self.notes)
        if self.compensation is not None:
            lines.append(self.compensation.line())
        if self.distillation is not None:
            lines.append(self.distillation.line())
        return "\n".join(lines)


def _excluded(model: Model, exclude: Iterable[str]) -> set[int]:
    names = set(exclude)
    out = set()
    known: set[str] = set()
    for g in model.groups.groups:
        known.add(str(g.id))
        known.update(g.root_nodes)
        if str(g.id) in names or names.intersection(g.root_nodes):
            out.add(g.id)
    unknown = sorted(names - known)
    if unknown:
        raise InputError(
            f"--exclude {unknown[0]}: no group id or root node of that name; run "
            "'onnxprune inspect' to list them"
        )
    return out


def ratio_plan(
    model: Model, *, ratio: float, criterion: str = "l1", exclude: Iterable[str] = (),
    seed: int = 0, analysis: AnalysisResult | None = None,
) -> Plan:
    """Remove ``ratio`` of the channels of every prunable group, keeping the best by criterion.

    Raises:
        InputError: ratio outside (0, 1) or an unknown criterion.
        CannotPruneError: no group of the model can be pruned.

    """
    if not 0.0 < ratio < 1.0:
        raise InputError(f"--ratio {ratio}: must be strictly between 0 and 1, e.g. 0.3")
    _check_criterion(criterion, analysis)
    cg = model.groups
    skip = _excluded(model, exclude)
    rng = np.random.default_rng(seed)
    keep = {}
    for g in cg.groups:
        if not g.prunable or g.id in skip:
            continue
        n_keep = max(1, g.size - int(round(ratio * g.size)))
        if n_keep < g.size:
            ga = analysis.group(g.id) if analysis is not None else None
            keep[g.id] = _select(g, CRITERIA[criterion](cg, g, rng, ga), n_keep)
    if not keep:
        raise CannotPruneError(
            "no channel group can be pruned at this ratio: every group is a barrier, excluded "
            "or too small; run 'onnxprune inspect' to see why"
        )
    return make_plan(cg, keep, method={"ratio": ratio, "criterion": criterion})


def _check_something_prunable(model: Model) -> None:
    """Refuse early, naming the commonest barrier, when no group at all can be pruned."""
    groups = model.groups.groups
    if any(g.prunable for g in groups):
        return
    reasons = [g.barriers[0] for g in groups if g.barriers]
    if not reasons:
        return  # single-channel groups only: the usual messages say so
    first = max(set(reasons), key=reasons.count)
    raise CannotPruneError(
        f"no channel group can be pruned: all {len(groups)} are barriers, e.g. {first}; "
        "run 'onnxprune inspect' to see each"
    )


def _select(group: Group, scores: np.ndarray, width: int) -> np.ndarray:
    """Pick the ``width`` best channels by ``scores``, keeping at least one of every part.

    A part is a tensor holding only some of the group's channels and nothing else (a Split or
    channel-Slice output): emptying it would leave a zero-channel tensor. Its best channel
    replaces the weakest kept channel that no other part needs.
    """
    keep = set(top_k(scores, width).tolist())
    parts = []
    for owner in group.members.values():
        if (owner < 0).any():
            continue
        chans = set(np.unique(owner).tolist())
        if len(chans) < group.size:
            parts.append(chans)
    for part in parts:
        if keep & part:
            continue
        best = max(part, key=lambda c: (scores[c], -c))
        needed = {c for p in parts if len(keep & p) == 1 for c in keep & p}
        spare = [c for c in keep if c not in needed]
        if not spare:
            break  # surgery's check_plan refuses the plan with a clear message
        keep.discard(min(spare, key=lambda c: (scores[c], -c)))
        keep.add(best)
    return np.array(sorted(keep), dtype=np.int64)


def _check_criterion(criterion: str, analysis: AnalysisResult | None) -> None:
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion '{criterion}'; choose one of {sorted(CRITERIA)}")
    if criterion in NEEDS_ANALYSIS and analysis is None:
        raise InputError(f"criterion '{criterion}' needs calibration data; pass --data")


def apply(model: Model, plan: Plan) -> PruneResult:
    """Apply a plan to ``model`` and verify it (nothing is written).

    Raises:
        InputError: the plan does not fit the model.
        VerificationError: the pruned model failed verification.

    """
    pruned = apply_plan(model, plan.keep())
    return _result(model, pruned, plan)


def _result(model: Model, pruned: onnx.ModelProto, plan: Plan, **extra: object) -> PruneResult:
    after = metrics.cost(pruned, _shapes(pruned, model))
    blocked = tuple((g.id, g.barriers[0]) for g in model.groups.groups if g.barriers)
    return PruneResult(pruned, plan, model.cost, after, blocked, **extra)  # type: ignore[arg-type]


def _shapes(pruned: onnx.ModelProto, model: Model) -> dict[str, tuple[int, ...]]:
    return ir.static_shapes(ir.infer_shapes(ir.with_input_shapes(pruned, model.input_shapes)))


@dataclass(frozen=True)
class Options:
    """Everything :func:`prune` was asked for (validated)."""

    metric: str | None
    target: float | None
    ratio: float | None
    criterion: str
    allocation: str
    compensate: bool
    round_to: int
    min_channels: int
    exclude: tuple[str, ...]
    steps: int
    seed: int
    objective: str
    ridge: float
    device: str
    progress: bool
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def needs_analysis(self) -> bool:
        """True when the analysis (and so data) is needed."""
        return (self.allocation == "hierarchical" or self.criterion in NEEDS_ANALYSIS
                or self.compensate)


def _options(
    *, ratio: float | None, target_macs: float | None, target_params: float | None,
    criterion: str | None, allocation: str | None, compensate: bool | None,
    has_data: bool, round_to: int, min_channels: int, exclude: Iterable[str], steps: int,
    seed: int, objective: str, ridge: float, device: str, progress: bool,
) -> Options:
    given = [n for n, v in (("ratio", ratio), ("target-macs", target_macs),
                            ("target-params", target_params)) if v is not None]
    if len(given) != 1:
        raise InputError("give exactly one of --target-macs, --target-params or --ratio "
                         f"(got {', '.join(given) or 'none'})")
    metric = None if ratio is not None else ("macs" if target_macs is not None else "params")
    target = None
    if metric is not None:
        target = alloc_mod.check_target(target_macs if metric == "macs" else target_params,
                                        f"target-{metric}")
    if ratio is not None and allocation not in (None, "uniform"):
        raise InputError("--ratio removes the same share of every group; use --target-macs "
                         "for --allocation hierarchical/global")
    if allocation is None:
        allocation = "uniform" if ratio is not None else ("hierarchical" if has_data
                                                          else "uniform")
    if allocation not in alloc_mod.ALLOCATIONS:
        raise InputError(f"unknown allocation '{allocation}'; choose one of "
                         f"{', '.join(alloc_mod.ALLOCATIONS)}")
    if criterion is None:
        criterion = "effective" if has_data and ratio is None else "l1"
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion '{criterion}'; choose one of {sorted(CRITERIA)}")
    if compensate is None:
        compensate = has_data and ratio is None
    if round_to < 1 or min_channels < 1:
        raise InputError("--round-to and --min-channels must be at least 1")
    if steps < 1:
        raise InputError(f"--steps {steps}: must be at least 1")
    if steps > 1 and ratio is not None:
        raise InputError("--steps needs --target-macs or --target-params")
    if ridge <= 0:
        raise InputError(f"ridge {ridge}: must be positive, e.g. {RIDGE:g}")
    opts = Options(metric, target, ratio, criterion, allocation, bool(compensate), round_to,
                   min_channels, tuple(exclude), steps, seed, objective, ridge, device, progress)
    if opts.needs_analysis and not has_data:
        need = [w for w, on in (
            (f"--allocation {allocation}", allocation == "hierarchical"),
            (f"--criterion {criterion}", criterion in NEEDS_ANALYSIS),
            ("compensation", opts.compensate)) if on]
        raise InputError(
            f"{' and '.join(need)} need(s) calibration data: pass --data FILE.npz (or "
            "--random-data N), or use --allocation uniform --criterion l1 --no-compensation"
        )
    return opts


def prune(
    model: Model,
    *,
    ratio: float | None = None,
    target_macs: float | None = None,
    target_params: float | None = None,
    criterion: str | None = None,
    allocation: str | None = None,
    data: Dataset | None = None,
    objective: str = "gauss-newton",
    analysis: AnalysisResult | None = None,
    compensate: bool | None = None,
    ridge: float = RIDGE,
    distill_epochs: int = 0,
    distill_lr: float | None = None,
    distill_batch: int | None = None,
    distill_labels: bool = False,
    round_to: int = 1,
    min_channels: int = 1,
    exclude: Iterable[str] = (),
    steps: int = 1,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> PruneResult:
    """Prune a model to a target (or by a uniform ratio) and verify the result.

    Args:
        model: a loaded model (``onnxprune.load``).
        ratio: remove this share of every prunable group (the classic uniform baseline).
        target_macs: fraction of the MACs to keep, in (0, 1).
        target_params: fraction of the parameters to keep, in (0, 1).
        criterion: which channels to keep: ``effective`` (default with data), ``taylor``,
            ``l1`` (default without data), ``l2``, ``random``.
        allocation: how many per group: ``hierarchical`` (default with data), ``uniform``,
            ``global``.
        data: calibration samples (``onnxprune.data.load_data``).
        objective: objective of the analysis (``gauss-newton``, ``labels``, ``pseudo-label``).
        analysis: a ready analysis of ``model`` (skips running it; single-step only).
        compensate: fold dropped channels into kept ones (default: on when data is given).
        ridge: compensation ridge relative to the Gram's mean diagonal.
        distill_epochs: epochs of distillation against the original (0: none).
        distill_lr: Adam learning rate of distillation (1e-4).
        distill_batch: distillation batch size (32).
        distill_labels: distil with cross-entropy on the data's labels instead.
        round_to: widths are multiples of this (the full width is always allowed).
        min_channels: no group goes below this width.
        exclude: group ids (as text) or root node names to leave alone.
        steps: reach the target in this many steps, re-analysing in between.
        seed: seed of ``random``, the analysis directions and distillation.
        device: torch device of the analysis and distillation.
        progress: report progress on stderr.

    Returns:
        The verified pruned model, its plan (in the original's channel indices), its cost
        before/after, and what the analysis, allocation and recovery did.

    Raises:
        InputError: bad options or data.
        CannotPruneError: nothing can be pruned, or the target cannot be reached.
        VerificationError: the pruned model failed verification.

    """
    opts = _options(
        ratio=ratio, target_macs=target_macs, target_params=target_params, criterion=criterion,
        allocation=allocation, compensate=compensate, has_data=data is not None or
        analysis is not None, round_to=round_to, min_channels=min_channels, exclude=exclude,
        steps=steps, seed=seed, objective=objective, ridge=ridge, device=device,
        progress=progress,
    )
    if distill_epochs < 0:
        raise InputError(f"--distill-epochs {distill_epochs}: must be 0 (none) or more")
    if data is None and (distill_epochs or (steps > 1 and opts.needs_analysis)):
        raise InputError(
            "distillation and --steps re-analysis need the calibration data itself: pass data"
        )
    _check_something_prunable(model)
    if opts.ratio is not None:
        result = _ratio_step(model, opts, data, analysis)
    else:
        result = _target_steps(model, opts, data, analysis)
    if distill_epochs:
        from onnxprune.distill import BATCH, LR, distill
        from onnxprune.verify import verify

        assert data is not None  # _options demanded it
        tuned, report = distill(
            model.proto, result.model, data, epochs=distill_epochs, lr=distill_lr or LR,
            batch_size=distill_batch or BATCH, labels=distill_labels, seed=seed,
            device=device, progress=progress,
        )
        tuned = verify(tuned, model.proto, model.input_shapes)
        result = replace(result, model=tuned, distillation=report)
        result = replace(result, after=metrics.cost(tuned, _shapes(tuned, model)))
    return result


def _analyse(model: Model, data: Dataset | None, opts: Options) -> AnalysisResult:
    from onnxprune.analysis import analyze

    return analyze(model, data, objective=opts.objective, seed=opts.seed, device=opts.device,
                   progress=opts.progress, estimate=False)


def _ratio_step(model: Model, opts: Options, data: Dataset | None,
                analysis: AnalysisResult | None) -> PruneResult:
    assert opts.ratio is not None
    if opts.needs_analysis and analysis is None:
        analysis = _analyse(model, data, opts)
    plan = ratio_plan(model, ratio=opts.ratio, criterion=opts.criterion, exclude=opts.exclude,
                      seed=opts.seed, analysis=analysis)
    return _finish(model, plan, opts, analysis, None, [])


def _target_steps(model: Model, opts: Options, data: Dataset | None,
                  analysis: AnalysisResult | None) -> PruneResult:
    assert opts.target is not None and opts.metric is not None
    total = _metric(model.cost, opts.metric)
    current, composed = model, None
    result = None
    notes: list[str] = []
    for step in range(1, opts.steps + 1):
        goal = 1.0 - (1.0 - opts.target) * step / opts.steps  # of the original
        now = _metric(current.cost, opts.metric)
        rel = min(0.999999, goal * total / now) if now else 1.0
        if step > 1:
            analysis = None
        if opts.needs_analysis and analysis is None:
            analysis = _analyse(current, data, opts)
        plan, allocation = _target_plan(current, rel, opts, analysis)
        result = _finish(current, plan, opts, analysis, allocation, notes)
        composed = plan if composed is None else _compose(composed, plan, model)
        if step < opts.steps:
            current = load(result.model, input_shapes=model.input_shapes)
            notes.append(f"step {step}/{opts.steps}: {opts.metric} kept "
                         f"{_metric(result.after, opts.metric) / total:.3f} of the original")
    assert result is not None and composed is not None
    if opts.steps > 1:
        result = replace(result, plan=composed, before=model.cost,
                         notes=tuple(notes) + result.notes[len(notes):])
    achieved = _metric(result.after, opts.metric) / total
    line = f"{opts.metric} kept {achieved:.3f} (target {opts.target:.3f})"
    return replace(result, notes=(*result.notes, line))


def _metric(cost: metrics.Cost, metric: str) -> int:
    return cost.macs if metric == "macs" else cost.params


def _target_plan(model: Model, target: float, opts: Options, analysis: AnalysisResult | None
                 ) -> tuple[Plan, alloc_mod.Allocation]:
    """Allocate widths to reach ``target`` (of this model) and pick the channels."""
    assert opts.metric is not None
    cg = model.groups
    skip = _excluded(model, opts.exclude)
    allowed: dict[int, alloc_mod.Widths] = {}
    notes: list[str] = []
    for g in cg.groups:
        if g.prunable and g.id not in skip:
            wd = alloc_mod.widths_for(g, opts.round_to, opts.min_channels)
            if wd.floor < g.size:
                allowed[g.id] = wd
    total = _metric(model.cost, opts.metric)
    cm = alloc_mod.CostModel(cg, opts.metric, total)
    rng = np.random.default_rng(opts.seed)

    def ga(gid: int) -> GroupAnalysis | None:
        return analysis.group(gid) if analysis is not None else None

    if opts.allocation == "hierarchical":
        assert analysis is not None
        budgets = []
        for gid, wd in allowed.items():
            a = ga(gid)
            b = _budget(gid, wd, a, analysis.samples)
            if b is None:
                notes.append(f"group {gid}: {a.status if a else 'not analysed'}; left unpruned")
            else:
                budgets.append(b)
        result = alloc_mod.hierarchical(cm, budgets, target, opts.metric)
    elif opts.allocation == "uniform":
        result = alloc_mod.uniform(cm, allowed, target, opts.metric)
    else:
        # The effective criterion's scores are pivot ranks; across groups compare the energy
        # each channel adds when it is taken instead.
        scores = {gid: _residuals(ga(gid)) if opts.criterion == "effective"
                  else CRITERIA[opts.criterion](cg, cg.group(gid), rng, ga(gid))
                  for gid in allowed}
        result = alloc_mod.global_ranking(cm, allowed, scores, target, opts.metric)
    result.notes.extend(notes)
    if result.estimate > target + alloc_mod.TOLERANCE:
        raise alloc_mod.unreachable(result, opts.metric)
    if result.estimate < target - alloc_mod.TOLERANCE:
        result.notes.append(
            f"the {opts.allocation} widths (round-to {opts.round_to}) cannot land within "
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
        keep[gid] = _select(g, CRITERIA[opts.criterion](cg, g, rng, ga(gid)), width)
        a = ga(gid)
        info[gid] = {
            "width": width, "criterion": opts.criterion,
            **({"rank": a.rank, "rank_threshold": a.rank_threshold, "max_rate": a.max_rate,
                "status": a.status,
                "energy_kept": _energy_kept(a, width)} if a is not None and a.rank else {}),
            **({"past_rank": True} if gid in result.past_rank else {}),
        }
    method = {"target": target, "metric": opts.metric, "allocation": opts.allocation,
              "criterion": opts.criterion, "round_to": opts.round_to,
              "min_channels": opts.min_channels, "estimate": round(result.estimate, 6)}
    return make_plan(cg, keep, method=method, info=info), result


def _budget(gid: int, wd: alloc_mod.Widths, a: GroupAnalysis | None, samples: int
            ) -> alloc_mod.GroupBudget | None:
    if a is None or a.status not in USABLE or a.singular_values is None or a.rank is None:
        return None
    lam = np.asarray(a.singular_values, dtype=np.float64) ** 2 / (2.0 * max(1, samples))
    lam = np.pad(lam, (0, max(0, wd.size - lam.size)))[: wd.size]
    trusted = a.capacity >= wd.size
    if not trusted and a.capacity > 0:
        # Directions the data cannot show: assume each costs as much as the last one seen.
        cut = min(a.capacity, wd.size)
        lam[cut:] = lam[cut - 1]
    # The currency is the *share* of the group's gradient energy discarded (see allocation).
    lam = lam / max(float(lam.sum()), np.finfo(float).tiny)
    cap = wd.at_least(a.rank) if trusted else wd.size
    return alloc_mod.GroupBudget(gid, wd, lam, cap, a.rank)


def _energy_kept(a: GroupAnalysis, width: int) -> float:
    lam = np.asarray(a.singular_values, dtype=np.float64) ** 2
    total = float(lam.sum())
    return round(float(lam[:width].sum()) / total, 6) if total > 0 else 1.0


def _residuals(a: GroupAnalysis | None) -> np.ndarray:
    """Per-channel residual energy at its pivot (a model-wide comparable effective score)."""
    from onnxprune.criteria import pivoted_cholesky

    assert a is not None and a.gram is not None
    order, taken = pivoted_cholesky(np.asarray(a.gram, dtype=np.float64))
    # Ties (round-off residuals) keep the pivot order.
    rank = np.empty(len(order))
    rank[order] = np.arange(len(order), 0, -1)
    return taken + 1e-300 * rank


def _finish(model: Model, plan: Plan, opts: Options, analysis: AnalysisResult | None,
            allocation: alloc_mod.Allocation | None, notes: list[str]) -> PruneResult:
    report = None
    edit = None
    if opts.compensate:
        assert analysis is not None
        report = CompensationReport()
        groups = {g.id: g for g in analysis.groups}

        def edit(cg):  # type: ignore[no-untyped-def]
            r = compensate(cg, plan.keep(), groups, ridge=opts.ridge)
            report.compensated.extend(r.compensated)
            report.no_intercept.extend(r.no_intercept)
            report.skipped.extend(r.skipped)

    pruned = apply_plan(model, plan.keep(), edit=edit)
    lines = list(allocation.notes) if allocation is not None else []
    if allocation is not None and allocation.past_rank:
        parts = [f"group {gid} rank {r} -> kept {w}" for gid, (r, w) in
                 sorted(allocation.past_rank.items())]
        lines.append(
            f"target beyond the estimated redundancy: {len(parts)} group(s) pruned past their "
            f"max rate ({'; '.join(parts[:6])}{' …' if len(parts) > 6 else ''})"
        )
    return _result(model, pruned, plan, analysis=analysis, allocation=allocation,
                   compensation=report, notes=tuple(notes + lines))


def _compose(first: Plan, second: Plan, original: Model) -> Plan:
    """Express ``second`` (made on the model ``first`` produced) in the original's indices."""
    before = {frozenset(g.roots): g for g in first.groups}
    keep: dict[int, list[int]] = {}
    info = {}
    for g0 in original.groups.groups:
        roots = frozenset(g0.root_nodes)
        prev = before.get(roots)
        k = list(prev.keep) if prev is not None else list(range(g0.size))
        nxt = next((g for g in second.groups if frozenset(g.roots) == roots), None)
        if nxt is not None:
            k = [k[i] for i in nxt.keep]
            info[g0.id] = dict(nxt.info)
        elif prev is not None:
            info[g0.id] = dict(prev.info)
        if len(k) < g0.size:
            keep[g0.id] = k
    return make_plan(original.groups, keep, method={**second.method, "steps": "composed"},
                     info=info)
