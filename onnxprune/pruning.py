"""Pruning entry points: ratio pruning with a weight criterion, and replaying plans."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx

from onnxprune import metrics
from onnxprune.criteria import CRITERIA, top_k
from onnxprune.errors import CannotPruneError, InputError
from onnxprune.model import Model
from onnxprune.plan import Plan, make_plan
from onnxprune.surgery import apply_plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneResult:
    """A verified pruned model with the plan that made it and its cost before and after."""

    model: onnx.ModelProto
    plan: Plan
    before: metrics.Cost
    after: metrics.Cost
    skipped: tuple[tuple[int, str], ...]

    def table(self) -> str:
        """Before/after table of parameters, MACs and file size."""
        rows = [("params", self.before.params, self.after.params),
                ("MACs", self.before.macs, self.after.macs),
                ("size (bytes)", self.before.size_bytes, self.after.size_bytes)]
        lines = [f"{'':<14}{'before':>14}{'after':>14}{'kept':>8}"]
        for name, b, a in rows:
            lines.append(f"{name:<14}{b:>14,}{a:>14,}{a / b if b else 1:>8.3f}")
        return "\n".join(lines)


def _excluded(model: Model, exclude: Iterable[str]) -> set[int]:
    names = set(exclude)
    out = set()
    for g in model.groups.groups:
        if str(g.id) in names or names.intersection(g.root_nodes):
            out.add(g.id)
    return out


def ratio_plan(
    model: Model, *, ratio: float, criterion: str = "l1", exclude: Iterable[str] = (),
    seed: int = 0,
) -> Plan:
    """Remove ``ratio`` of the channels of every prunable group, keeping the best by criterion.

    Raises:
        InputError: ratio outside (0, 1) or an unknown criterion.
        CannotPruneError: no group of the model can be pruned.
    """
    if not 0.0 < ratio < 1.0:
        raise InputError(f"--ratio {ratio}: must be strictly between 0 and 1, e.g. 0.3")
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion '{criterion}'; choose one of {sorted(CRITERIA)}")
    cg = model.groups
    skip = _excluded(model, exclude)
    rng = np.random.default_rng(seed)
    keep = {}
    for g in cg.groups:
        if not g.prunable or g.id in skip:
            continue
        n_keep = max(1, g.size - int(round(ratio * g.size)))
        if n_keep < g.size:
            keep[g.id] = top_k(CRITERIA[criterion](cg, g, rng), n_keep)
    if not keep:
        raise CannotPruneError(
            "no channel group can be pruned at this ratio: every group is a barrier, excluded "
            "or too small; run 'onnxprune inspect' to see why"
        )
    return make_plan(cg, keep, method={"ratio": ratio, "criterion": criterion})


def apply(model: Model, plan: Plan) -> PruneResult:
    """Apply a plan to ``model`` and verify it (nothing is written).

    Raises:
        InputError: the plan does not fit the model.
        VerificationError: the pruned model failed verification.
    """
    pruned = apply_plan(model, plan.keep())
    after = metrics.cost(pruned, _shapes(pruned, model))
    blocked = tuple((g.id, g.barriers[0]) for g in model.groups.groups if g.barriers)
    return PruneResult(pruned, plan, model.cost, after, blocked)


def _shapes(pruned: onnx.ModelProto, model: Model) -> dict[str, tuple[int, ...]]:
    from onnxprune import ir

    return ir.static_shapes(ir.infer_shapes(ir.with_input_shapes(pruned, model.input_shapes)))


def prune(
    model: Model, *, ratio: float, criterion: str = "l1", exclude: Iterable[str] = (),
    seed: int = 0,
) -> PruneResult:
    """Prune ``ratio`` of every prunable group by a weight criterion and verify the result.

    Args:
        model: a loaded model (``onnxprune.load``).
        ratio: share of each group's channels to remove, in (0, 1).
        criterion: a registered weight criterion (``l1``, ``l2``, ``random``).
        exclude: group ids (as text) or root node names to leave alone.
        seed: seed for the ``random`` criterion.

    Returns:
        The verified pruned model, its plan and its cost before/after.
    """
    plan = ratio_plan(model, ratio=ratio, criterion=criterion, exclude=exclude, seed=seed)
    return apply(model, plan)
