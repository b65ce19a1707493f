"""Pruning entry points: hierarchical pruning to a target, ratio pruning, replaying plans.

``prune(model, target_macs=0.5, data=...)`` is the main job (DESIGN.md §2.4–2.5): the
effective filter analysis, a layer-wise allocation of widths (how many channels each group
keeps), a filter-wise selection (which), closed-form compensation, optional distillation,
and verification. ``prune(model, ratio=0.3)`` is the classic uniform baseline that needs no
data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from onnxprune import metrics
from onnxprune.errors import InputError
from onnxprune.model import Model, load
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning.compensation import plan_updates, write_updates
from onnxprune.pruning.compose import compose
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import Plan
from onnxprune.pruning.result import PruneResult, make_result, pruned_shapes
from onnxprune.pruning.select import ratio_plan
from onnxprune.pruning.targets import metric_of, target_plan
from onnxprune.surgery import apply_plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult
    from onnxprune.data import Dataset



def apply(model: Model, plan: Plan) -> PruneResult:
    """Apply a plan to ``model`` and verify it (nothing is written).

    Raises:
        InputError: the plan does not fit the model.
        VerificationError: the pruned model failed verification.

    """
    pruned = apply_plan(model, plan.keep())
    return make_result(model, pruned, plan)


def prune(
    model: Model,
    *,
    data: Dataset | None = None,
    analysis: AnalysisResult | None = None,
    options: PruneOptions | None = None,
    **option_values: object,
) -> PruneResult:
    """Prune a model to a target (or by a uniform ratio) and verify the result.

    Args:
        model: a loaded model (``onnxprune.load``).
        data: calibration samples (``onnxprune.data.load_data``).
        analysis: a ready analysis of ``model`` (skips running it; single-step only).
        options: the options (:class:`PruneOptions`); keyword arguments override its fields.
        **option_values: any :class:`PruneOptions` field, e.g. ``target_macs=0.5``.

    Returns:
        The verified pruned model, its plan (in the original's channel indices), its cost
        before/after, and what the analysis, allocation and recovery did.

    Raises:
        InputError: bad options or data.
        CannotPruneError: nothing can be pruned, or the target cannot be reached.
        VerificationError: the pruned model failed verification.

    """
    opts = PruneOptions.of(options, **option_values).resolved(
        has_data=data is not None or analysis is not None)
    if data is None and (opts.distils or (opts.steps > 1 and opts.needs_analysis)):
        raise InputError(
            "distillation and --steps re-analysis need the calibration data itself: pass data"
        )
    if opts.ratio is not None:
        result = _ratio_step(model, opts, data, analysis)
    else:
        result = _target_steps(model, opts, data, analysis)
    if opts.distils and data is not None:
        result = _distil(model, result, data, opts)
    if data is not None and opts.objective == "output-aware":
        from onnxprune.pruning.fidelity import output_fidelity

        result = replace(result, fidelity=output_fidelity(
            model.proto, result.model, data, dict(opts.output_weights), device=opts.device))
    return result


def _distil(model: Model, result: PruneResult, data: Dataset, opts: PruneOptions
            ) -> PruneResult:
    from onnxprune.pruning.distill import BATCH, LR, distill
    from onnxprune.verify import verify

    tuned, report = distill(
        model.proto, result.model, data, epochs=opts.distill_epochs,
        seconds=opts.distill_time, lr=opts.distill_lr or LR,
        batch_size=opts.distill_batch or BATCH, labels=opts.distill_labels, seed=opts.seed,
        device=opts.device, progress=opts.progress,
        output_weights=dict(opts.output_weights),
    )
    tuned = verify(tuned, model.proto, model.input_shapes)
    return replace(result, model=tuned, distillation=report,
                   after=metrics.cost(tuned, pruned_shapes(tuned, model)))


def _analyse(model: Model, data: Dataset | None, opts: PruneOptions) -> AnalysisResult:
    from onnxprune.analysis import analyze

    return analyze(model, data, objective=opts.objective, seed=opts.seed, device=opts.device,
                   progress=opts.progress, estimate=False,
                   output_weights=dict(opts.output_weights))


def _ratio_step(model: Model, opts: PruneOptions, data: Dataset | None,
                analysis: AnalysisResult | None) -> PruneResult:
    assert opts.ratio is not None
    if opts.needs_analysis and analysis is None:
        analysis = _analyse(model, data, opts)
    plan = ratio_plan(model, ratio=opts.ratio, criterion=opts.criterion, exclude=opts.exclude,
                      seed=opts.seed, analysis=analysis)
    return _finish(model, plan, opts, analysis, None, [], data)


def _target_steps(model: Model, opts: PruneOptions, data: Dataset | None,
                  analysis: AnalysisResult | None) -> PruneResult:
    assert opts.target is not None and opts.metric is not None
    total = metric_of(model.cost, opts.metric)
    current, composed = model, None
    result = None
    notes: list[str] = []
    for step in range(1, opts.steps + 1):
        goal = 1.0 - (1.0 - opts.target) * step / opts.steps  # of the original
        now = metric_of(current.cost, opts.metric)
        rel = min(0.999999, goal * total / now) if now else 1.0
        if step > 1:
            analysis = None
        if opts.needs_analysis and analysis is None:
            analysis = _analyse(current, data, opts)
        plan, allocation = target_plan(current, rel, opts, analysis)
        result = _finish(current, plan, opts, analysis, allocation, notes, data)
        composed = plan if composed is None else compose(composed, plan, model)
        if step < opts.steps:
            current = load(result.model, input_shapes=model.input_shapes)
            notes.append(f"step {step}/{opts.steps}: {opts.metric} kept "
                         f"{metric_of(result.after, opts.metric) / total:.3f} of the original")
    assert result is not None and composed is not None
    if opts.steps > 1:
        result = replace(result, plan=composed, before=model.cost,
                         notes=tuple(notes) + result.notes[len(notes):])
    achieved = metric_of(result.after, opts.metric) / total
    line = f"{opts.metric} kept {achieved:.3f} (target {opts.target:.3f})"
    return replace(result, notes=(*result.notes, line))


def _finish(model: Model, plan: Plan, opts: PruneOptions, analysis: AnalysisResult | None,
            allocation: alloc_mod.Allocation | None, notes: list[str],
            data: Dataset | None = None) -> PruneResult:
    reports = []
    edit = None
    if opts.compensate:
        assert analysis is not None
        groups = {g.id: g for g in analysis.groups}

        def edit(cg):  # type: ignore[no-untyped-def]
            report = plan_updates(cg, plan.keep(), groups, ridge=opts.ridge)
            if opts.refine and data is not None:
                from onnxprune.pruning.refine import refine

                refine(model, cg, plan.keep(), report, data, ridge=opts.ridge, seed=opts.seed,
                       device=opts.device)
            write_updates(cg, report)
            reports.append(report)

    pruned = apply_plan(model, plan.keep(), edit=edit)
    report = reports[0] if reports else None
    lines = list(allocation.notes) if allocation is not None else []
    if allocation is not None and allocation.past_rank:
        parts = [f"group {gid} rank {r} -> kept {w}" for gid, (r, w) in
                 sorted(allocation.past_rank.items())]
        lines.append(
            f"target beyond the estimated redundancy: {len(parts)} group(s) pruned past their "
            f"max rate ({'; '.join(parts[:6])}{' …' if len(parts) > 6 else ''})"
        )
    return make_result(model, pruned, plan, analysis=analysis, allocation=allocation,
                   compensation=report, notes=tuple(notes + lines))


