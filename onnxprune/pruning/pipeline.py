"""Pruning entry points: hierarchical pruning to a target, ratio pruning, replaying plans.

``prune(model, target_macs=0.5, data=...)`` is the main job (DESIGN.md §2.4–2.5): the
effective filter analysis, a layer-wise allocation of widths (how many channels each group
keeps), a filter-wise selection (which), closed-form compensation, optional distillation,
and verification. ``prune(model, ratio=0.3)`` is the classic uniform baseline that needs no
data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from onnxprune import ir, progress
from onnxprune.bench.speed import SpeedCheck, speed_check
from onnxprune.calibration import calibration_warnings
from onnxprune.check import check, split_holdout
from onnxprune.errors import CannotPruneError, InputError
from onnxprune.model import Model
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning import grid, latency, latency_target, replay
from onnxprune.pruning.compose import compose
from onnxprune.pruning.latency_cost import LatencyCost
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import Plan
from onnxprune.pruning.recovery import Teacher, distil, finish, shares_teacher
from onnxprune.pruning.result import PruneResult, make_result
from onnxprune.pruning.select import check_something_prunable, ratio_plan
from onnxprune.pruning.targets import metric_of, target_plan
from onnxprune.surgery import apply_plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult
    from onnxprune.data import Dataset

_finish = finish  # its name before it moved to recovery.py (tests call it)


def apply(model: Model, plan: Plan, *, channels_only: bool = False) -> PruneResult:
    """Apply a plan to ``model`` and verify it (nothing is written).

    The plan's recorded compensation updates are replayed, so the result is ``prune``'s model.

    Args:
        model: the model the plan was made for.
        plan: a plan from ``prune`` (``result.plan`` or ``load_plan``).
        channels_only: remove the plan's channels and replay no recovery.

    Raises:
        InputError: the plan does not fit the model, or it cannot reproduce prune's model
            (distilled, refined, several steps, missing sidecar) and ``channels_only`` is off.
        VerificationError: the pruned model failed verification.

    """
    if channels_only:
        return make_result(model, apply_plan(model, plan.keep()), plan)
    problem = plan.recovery.replay_problem()
    if problem:
        raise InputError(f"the plan cannot reproduce prune's model: {problem}; use the model "
                         "prune wrote, or replay the kept channels alone (channels_only=True, "
                         "'apply --channels-only')")
    pruned = apply_plan(model, plan.keep(), check=not plan.recovery.updates)
    if plan.recovery.updates:  # verified once, after the replay
        pruned = _replayed(model, pruned, plan.recovery.updates)
    return make_result(model, pruned, plan)


def _replayed(model: Model, pruned: ir.ModelProto, updates: Sequence[replay.Update]
              ) -> ir.ModelProto:
    from onnxprune.verify import verify

    try:
        edited = replay.replay(pruned, updates)
    except KeyError as e:
        raise InputError(f"the plan's compensation names node {e}, which the pruned model does "
                         "not have; re-run 'onnxprune prune --save-plan'") from e
    return verify(edited, model.proto, model.input_shapes)


def prune(
    model: Model,
    *,
    data: Dataset | None = None,
    analysis: AnalysisResult | None = None,
    options: PruneOptions | None = None,
    distill_data: Dataset | None = None,
    **option_values: object,
) -> PruneResult:
    """Prune a model to a target (or by a uniform ratio) and verify the result.

    Args:
        model: a loaded model (``onnxprune.load``).
        data: calibration samples (``onnxprune.data.load_data``).
        distill_data: more unlabelled samples for distillation alone (default: ``data``'s fit
            part); the analysis, refinement and fidelity check keep to ``data``.
        analysis: a ready analysis of ``model`` (skips running it; single-step only).
        options: the options (:class:`PruneOptions`); keyword arguments override its fields.
        **option_values: any :class:`PruneOptions` field, e.g. ``target_macs=0.5``.

    Returns:
        The verified pruned model, its plan (in the original's channel indices, with the
        recovery to replay), its cost before/after, what the analysis, allocation and
        recovery did, the warnings about the data, and (with data) the fidelity gate's
        ``check`` against the original: large data (``check.HOLDOUT_MIN`` samples or more)
        is split and the check runs on the held-out part, smaller data on all of it.

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
    if distill_data is not None and not opts.distils:
        raise InputError("--distill-data is only read by distillation: add --distill-time 5m "
                         "(or --distill-epochs N), or drop --distill-data")
    if distill_data is not None and opts.distill_labels:
        raise InputError("--distill-data is label-free: drop --labels (supervised distillation "
                         "trains on --data and its labels)")
    check_something_prunable(model)
    mode = mode_line(opts, data, analysis)
    if "data-free" in mode:  # the one surprise: said before the work, not only in the summary
        progress.note(mode)
    fit, held = (None, None) if data is None else split_holdout(data)
    warnings = () if fit is None else calibration_warnings(model.proto, fit)
    teacher = Teacher(model, opts.device) if shares_teacher(opts, data) else None
    if opts.ratio is not None:
        result = _ratio_step(model, opts, fit, analysis, teacher)
    elif opts.metric == "latency":
        result = _latency_step(model, opts, fit, analysis, teacher)
    else:
        result = _target_steps(model, opts, fit, analysis, teacher)
    if opts.distils and fit is not None:
        result = distil(model, result, fit if distill_data is None else distill_data, opts,
                        teacher)
    recovery = replace(result.plan.recovery, compensation=bool(opts.compensate),
                       refinement=bool(opts.compensate and opts.refine and fit is not None),
                       distill_epochs=opts.distill_epochs or int(bool(opts.distill_time)),
                       steps=opts.steps)
    result = replace(result, plan=replace(result.plan, recovery=recovery), calibration=warnings)
    if data is not None:
        gate = check(model.proto, result.model, data if held is None else held,
                     max_drop=opts.max_drop,
                     held_out=held is not None)
        result = replace(result, check=gate)
        if opts.objective == "output-aware":
            from onnxprune.pruning.fidelity import output_fidelity

            result = replace(result, fidelity=output_fidelity(
                model.proto, result.model, data if held is None else held,
                dict(opts.output_weights), device=opts.device,
                teacher=None if teacher is None else teacher.shim()))
    return replace(result, notes=(mode, *result.notes))


def mode_line(opts: PruneOptions, data: Dataset | None,
              analysis: AnalysisResult | None) -> str:
    """Return one line saying what runs.

    Ratio (share removed) or target (share kept), with or without data, and the allocation,
    criterion and recovery that follow from it.
    """
    how = (f"{opts.allocation} widths, {opts.criterion} channels, "
           f"{'compensation' if opts.compensate else 'no compensation'}"
           + (", refinement" if opts.compensate and opts.refine and data is not None else "")
           + (f", {opts.distill_epochs} distillation epochs" if opts.distill_epochs else "")
           + (f", {opts.distill_time:g} s of distillation" if opts.distill_time else ""))
    source = (f"on {len(data)} samples of {data.source}" if data is not None
              else "on a given analysis" if analysis is not None else "without data")
    if opts.ratio is not None:
        return (f"mode: --prune-ratio {opts.ratio:g} removes {opts.ratio:.0%} of the channels "
                f"of every prunable group ({how}, {source})")
    what = dict(macs="MACs", params="parameters").get(opts.metric or "", "latency")
    keep = f"keep {opts.target:.0%} of the {what}"
    if data is None and analysis is None and not opts.needs_analysis:
        return (f"mode: no data, so the target ({keep}) uses the data-free baseline ({how}); "
                "pass --data FILE.npz|DIR for data-aware pruning with compensation")
    return f"mode: target {keep} ({how}, {source})"


def _analyse(model: Model, data: Dataset | None, opts: PruneOptions,
             teacher: Teacher | None) -> AnalysisResult:
    from onnxprune.analysis import analyze

    return analyze(model, data, objective=opts.objective, seed=opts.seed, device=opts.device,
                   progress=opts.progress, estimate=False,
                   output_weights=dict(opts.output_weights),
                   shim=None if teacher is None else teacher.shim())


def _ratio_step(model: Model, opts: PruneOptions, data: Dataset | None,
                analysis: AnalysisResult | None, teacher: Teacher | None) -> PruneResult:
    assert opts.ratio is not None
    if opts.needs_analysis and analysis is None:
        analysis = _analyse(model, data, opts, teacher)
    plan = ratio_plan(model, ratio=opts.ratio, criterion=opts.criterion, exclude=opts.exclude,
                      seed=opts.seed, analysis=analysis)
    return finish(model, plan, opts, analysis, None, [], data, teacher)


def _target_steps(model: Model, opts: PruneOptions, data: Dataset | None,
                  analysis: AnalysisResult | None, teacher: Teacher | None) -> PruneResult:
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
            analysis, teacher = None, None  # the teacher is the original's
        if opts.needs_analysis and analysis is None:
            analysis = _analyse(current, data, opts, teacher)
        plan, allocation = _probed_plan(current, rel, opts, analysis, data, teacher)
        result = finish(current, plan, opts, analysis, allocation, notes, data, teacher)
        composed = plan if composed is None else compose(composed, plan, model)
        if step < opts.steps:  # the verified step's model and shapes, not loaded again
            current = Model(result.model, dict(model.input_shapes), shapes=result.shapes)
            notes.append(f"step {step}/{opts.steps}: {opts.metric} kept "
                         f"{metric_of(result.after, opts.metric) / total:.3f} of the original")
    assert result is not None and composed is not None
    if opts.steps > 1:
        result = replace(result, plan=composed, before=model.cost,
                         notes=tuple(notes) + result.notes[len(notes):])
    achieved = metric_of(result.after, opts.metric) / total
    line = f"{opts.metric} kept {achieved:.3f} (target {opts.target:.3f})"
    return replace(result, notes=(*result.notes, line))


def _probed_plan(model: Model, target: float, opts: PruneOptions,
                 analysis: AnalysisResult | None, data: Dataset | None, teacher: Teacher | None
                 ) -> tuple[Plan, alloc_mod.Allocation]:
    """The target's plan, allocated again on measured loss scales (``pruning/probe.py``)."""
    if not (opts.probe and opts.allocation == "hierarchical" and opts.compensate
            and analysis is not None and data is not None):
        return target_plan(model, target, opts, analysis)
    from onnxprune.pruning import probe  # torch

    first, _ = target_plan(model, target, opts, analysis, guard=False)
    analysis = probe.calibrate(model, analysis, first, opts, data,
                               None if teacher is None else teacher.shim())
    plan, allocation = target_plan(model, target, opts, analysis)
    pruned = sum(0 < len(g.keep) < g.size for g in first.groups)
    allocation.notes.append(
        f"--probe: {analysis.probed} of the {pruned} group(s) a first allocation prunes "
        "measured, each pruned alone at that width; the rest (under "
        f"{probe.MIN_SHARE:g} of their energy dropped there, or not buildable alone) keep the "
        "estimate, converted")
    return plan, allocation


def _latency_step(model: Model, opts: PruneOptions, data: Dataset | None,
                  analysis: AnalysisResult | None, teacher: Teacher | None) -> PruneResult:
    """Allocate on the latency table, measure against the original, re-aim while it misses.

    See ``pruning/latency_target.py``.
    """
    target = opts.target_latency
    assert target is not None
    table = latency.table_for(model, threads=opts.threads, provider=opts.provider,
                              optimization=opts.optimization,
                              step=grid.candidates(opts.round_to, opts.provider)[0])
    cost = LatencyCost(model.groups, table)
    if opts.needs_analysis and analysis is None:
        analysis = _analyse(model, data, opts, teacher)
    aim = latency_target.Aim(target)
    best: tuple[PruneResult, SpeedCheck] | None = None
    while (goal := aim.next()) is not None:
        try:
            plan, allocation = target_plan(model, goal, opts, analysis, cost=cost)
        except CannotPruneError:
            if best is None:
                raise
            break
        result = finish(model, plan, opts, analysis, allocation, [table.line()], data,
                        teacher)
        speed = speed_check(model.unchanged_file or model.proto, result.model,
                            model.input_shapes, threads=opts.threads, provider=opts.provider,
                            optimization=opts.optimization)
        aim.measured(allocation.estimate, speed.ratio)
        if best is None or aim.closer(speed.ratio, best[1].ratio):
            best = (result, speed)
    assert best is not None
    result, speed = best
    return replace(result, speed=speed, notes=(*result.notes, *aim.lines(speed)))
