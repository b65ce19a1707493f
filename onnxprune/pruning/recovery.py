"""Recovery after the channels are chosen: surgery with compensation, refinement, distillation.

:func:`finish` removes a plan's channels with compensation (and refinement) folded in,
recording the edits so that a saved plan replays them; :func:`distil` fine-tunes the result.
Both run the original model as a torch shim; :class:`Teacher` builds it once per prune and
shares it with the analysis and the fidelity report.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from onnxprune import metrics, progress
from onnxprune.model import Model
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning import replay
from onnxprune.pruning.compensation import plan_updates, write_updates
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import Plan, Recovery
from onnxprune.pruning.result import PruneResult, make_result
from onnxprune.surgery import apply_plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult
    from onnxprune.data import Dataset
    from onnxprune.shim.module import Shim


class Teacher:
    """The original model as a shim, built once per prune and shared by the steps that run it.

    The analysis, refinement (its copy of the original), distillation (the teacher) and the
    fidelity report all read the same original weights; none of them edits the shim.
    """

    def __init__(self, model: Model, device: str) -> None:
        self.model, self.device = model, device
        self._shim: Shim | None = None

    def shim(self) -> Shim:
        """Return the shim of the original, built on first use."""
        if self._shim is None:
            from onnxprune.shim.module import Shim

            self._shim = Shim(self.model.proto, device=self.device)
        return self._shim


def shares_teacher(opts: PruneOptions, data: Dataset | None) -> bool:
    """Whether a step after the analysis runs the original again (else the analysis frees it)."""
    return data is not None and (bool(opts.compensate and opts.refine) or opts.distils
                                 or opts.objective == "output-aware")


def distil(model: Model, result: PruneResult, data: Dataset, opts: PruneOptions,
           teacher: Teacher | None) -> PruneResult:
    """Fine-tune the verified pruned model to match the original, with the shared teacher."""
    from onnxprune.pruning.distill import BATCH, LR, distill
    from onnxprune.verify import reweighted

    tuned, report = distill(
        model.proto, result.model, data, epochs=opts.distill_epochs,
        seconds=opts.distill_time, lr=opts.distill_lr or LR,
        batch_size=opts.distill_batch or BATCH, labels=opts.distill_labels, seed=opts.seed,
        device=opts.device, progress=opts.progress,
        output_weights=dict(opts.output_weights),
        teacher=None if teacher is None else teacher.shim(), mix=opts.distill_mix,
    )
    # the verified model with new weight values: verify's checks hold, its shapes too
    tuned = reweighted(tuned, result.model)
    return replace(result, model=tuned, distillation=report,
                   after=metrics.cost(tuned, result.shapes))


def finish(model: Model, plan: Plan, opts: PruneOptions, analysis: AnalysisResult | None,
           allocation: alloc_mod.Allocation | None, notes: list[str],
           data: Dataset | None = None, teacher: Teacher | None = None) -> PruneResult:
    """Apply ``plan`` with compensation (and refinement) recorded for replay; verify it."""
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
                       device=opts.device, teacher=None if teacher is None else teacher.shim())
            write_updates(cg, report)
            reports.append(report)

    # Note what the edit changed, so that a saved plan replays it exactly.
    changed: list[replay.Changes] = []
    hook = None if edit is None else (lambda cg: changed.append(replay.capture(cg, edit)))
    what = ("surgery, compensation and verification" if opts.compensate
            else "surgery and verification")
    with progress.task(what):
        pruned = apply_plan(model, plan.keep(), edit=hook)
    report = reports[0] if reports else None
    plan = replace(plan, recovery=Recovery(compensation=report is not None,
                                           updates=replay.finals(pruned, changed)))
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
