"""The result of a prune: the verified model, its plan, cost before/after and the story."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx

from onnxprune import ir, metrics
from onnxprune.model import Model
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning.compensation import CompensationReport
from onnxprune.pruning.plan import Plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult
    from onnxprune.pruning.distill import DistillReport



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
    fidelity: tuple[str, ...] = ()

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
        lines.extend(self.fidelity)
        return "\n".join(lines)


def make_result(model: Model, pruned: onnx.ModelProto, plan: Plan, **extra: object) -> PruneResult:
    """Measure the pruned model's cost and wrap it with its plan and story."""
    after = metrics.cost(pruned, pruned_shapes(pruned, model))
    blocked = tuple((g.id, g.barriers[0]) for g in model.groups.groups if g.barriers)
    return PruneResult(pruned, plan, model.cost, after, blocked, **extra)  # type: ignore[arg-type]


def pruned_shapes(pruned: onnx.ModelProto, model: Model) -> dict[str, tuple[int, ...]]:
    """Return the static shapes of a pruned model at the original's input shapes."""
    return ir.static_shapes(ir.infer_shapes(ir.with_input_shapes(pruned, model.input_shapes)))


