"""The result of a prune: the verified model, its plan, cost before/after and the story."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from onnxprune import ir, metrics
from onnxprune.errors import VerificationError
from onnxprune.model import Model
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning.compensation import CompensationReport
from onnxprune.pruning.plan import Plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult
    from onnxprune.bench.speed import SpeedCheck
    from onnxprune.check import CheckResult
    from onnxprune.pruning.distill import DistillReport



@dataclass(frozen=True)
class PruneResult:
    """A verified pruned model, the plan that made it, its cost before/after and the story.

    ``plan`` indexes the original model's channels and records the recovery; replaying it
    with :func:`apply` gives the same model (compensation included) unless it was distilled,
    refined or made in several steps (``plan.recovery.replay_problem()`` says so).
    ``check`` is the fidelity gate's measurement against the original (None without data):
    ``check.passed`` is False when the drop exceeds ``max_drop``. ``calibration`` holds the
    warnings about the calibration data (also logged). ``shapes`` are the static shapes of
    ``model`` at the original's input shapes (what ``after`` was counted on).
    """

    model: ir.ModelProto
    plan: Plan
    before: metrics.Cost
    after: metrics.Cost
    skipped: tuple[tuple[int, str], ...]
    analysis: AnalysisResult | None = None
    allocation: alloc_mod.Allocation | None = None
    compensation: CompensationReport | None = None
    distillation: DistillReport | None = None
    notes: tuple[str, ...] = ()
    speed: SpeedCheck | None = None  # measured original vs pruned (--target-latency)
    check: CheckResult | None = None
    calibration: tuple[str, ...] = ()
    fidelity: tuple[str, ...] = ()
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

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
        """Return what ran (notes, compensation, distillation) and what it kept; never empty."""
        lines = list(self.notes)
        if self.compensation is not None:
            lines.append(self.compensation.line())
        if self.distillation is not None:
            lines.append(self.distillation.line())
        lines.extend(self.fidelity)
        lines.append(self.kept_line())
        return "\n".join(lines)

    def kept_line(self) -> str:
        """One line: share of MACs and parameters kept, groups pruned."""
        def kept(a: int, b: int) -> str:
            return f"{a / b:.3f}" if b else "1.000"

        n = len(self.plan.groups)
        return (f"kept {kept(self.after.macs, self.before.macs)} of the MACs "
                f"({self.before.macs:,} -> {self.after.macs:,}) and "
                f"{kept(self.after.params, self.before.params)} of the parameters; "
                f"{n} group{'' if n == 1 else 's'} pruned")

    def save(self, path: str | os.PathLike[str], *,
             protect: Sequence[str | os.PathLike[str]] = ()) -> Path:
        """Write the pruned model atomically and check the written file; return its path.

        Args:
            path: destination ``.onnx`` file (its folder must exist).
            protect: paths never to overwrite (e.g. the original model).

        Raises:
            InputError: the destination is protected, a folder, or its folder is missing.
            VerificationError: the written file does not pass the ONNX checker.

        """
        written = ir.save_model(self.model, path, protect=protect)
        try:
            ir.check_model(written)
        except ir.CheckerError as e:
            raise VerificationError(f"{written}: the written model fails the ONNX checker "
                                    f"({e}); report this with the model") from e
        return written


def make_result(model: Model, pruned: ir.ModelProto, plan: Plan, **extra: object) -> PruneResult:
    """Measure the (verified) pruned model's cost and wrap it with its plan and story."""
    shapes = pruned_shapes(pruned, model)
    after = metrics.cost(pruned, shapes)
    blocked = tuple((g.id, g.barriers[0]) for g in model.groups.groups if g.barriers)
    return PruneResult(pruned, plan, model.cost, after, blocked, shapes=shapes,
                       **extra)  # type: ignore[arg-type]


def pruned_shapes(pruned: ir.ModelProto, model: Model) -> dict[str, tuple[int, ...]]:
    """Return the static shapes of a pruned model at the original's input shapes.

    A verified model whose inputs have those shapes already carries every shape in its
    ``value_info`` (``verify`` inferred them): they are read, not inferred again. Otherwise
    (a dynamic dim, or a shape the strict inference left unknown) the model is inferred at
    the concrete shapes.
    """
    if all(tuple(s.shape) == tuple(model.input_shapes.get(s.name, ()))
           for s in ir.io_specs(pruned)):
        known = ir.static_shapes(pruned)
        if all(o in known for n in pruned.graph.node for o in n.output if o):
            return known
    return ir.inferred_shapes(pruned, model.input_shapes)


