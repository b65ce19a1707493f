"""Which channels: per-group selection by a criterion, exclusions and uniform ratio plans."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from onnxprune.channels.graph import Group
from onnxprune.errors import CannotPruneError, InputError
from onnxprune.model import Model
from onnxprune.pruning.criteria import CRITERIA, NEEDS_ANALYSIS, top_k
from onnxprune.pruning.plan import Plan, make_plan

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult, GroupAnalysis



def excluded(model: Model, exclude: Iterable[str]) -> set[int]:
    """Group ids named by ``--exclude`` (group ids or root node names)."""
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
    check_criterion(criterion, analysis)
    cg = model.groups
    skip = excluded(model, exclude)
    rng = np.random.default_rng(seed)
    keep = {}
    for g in cg.groups:
        if not g.prunable or g.id in skip:
            continue
        n_keep = max(1, g.size - int(round(ratio * g.size)))
        if n_keep < g.size:
            ga = analysis.group(g.id) if analysis is not None else None
            keep[g.id] = select(g, CRITERIA[criterion](cg, g, rng, ga), n_keep)
    if not keep:
        raise CannotPruneError(
            "no channel group can be pruned at this ratio: every group is a barrier, excluded "
            "or too small; run 'onnxprune inspect' to see why"
        )
    return make_plan(cg, keep, method={"ratio": ratio, "criterion": criterion})


def select(group: Group, scores: np.ndarray, width: int) -> np.ndarray:
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


def check_criterion(criterion: str, analysis: AnalysisResult | None) -> None:
    """Refuse an unknown criterion, or one that needs an analysis that is missing."""
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion '{criterion}'; choose one of {sorted(CRITERIA)}")
    if criterion in NEEDS_ANALYSIS and analysis is None:
        raise InputError(f"criterion '{criterion}' needs calibration data; pass --data")


def residuals(a: GroupAnalysis | None) -> np.ndarray:
    """Per-channel residual energy at its pivot (a model-wide comparable effective score)."""
    from onnxprune.pruning.criteria import pivoted_cholesky

    assert a is not None and a.gram is not None
    order, taken = pivoted_cholesky(np.asarray(a.gram, dtype=np.float64))
    # Ties (round-off residuals) keep the pivot order.
    rank = np.empty(len(order))
    rank[order] = np.arange(len(order), 0, -1)
    return taken + 1e-300 * rank


def check_something_prunable(model: Model) -> None:
    """Refuse early, naming the commonest barrier, when no group at all can be pruned.

    Raises:
        CannotPruneError: every group of the model is a barrier.

    """
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
