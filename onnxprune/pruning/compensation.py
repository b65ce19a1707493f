"""Closed-form compensation: fold the dropped channels into the kept ones (DESIGN.md §2.5).

For every consumer that reads a pruned group with a weight (dense Conv, ConvTranspose, Gemm,
MatMul), each dropped input channel is re-expressed through the kept ones *and a constant*:
a ridge fit on that consumer's own Gram matrix (the Gram of its per-sample weight gradients)
augmented with the column of a virtual constant-1 input channel, i.e. the consumer's
bias-gradient column (the joint intercept):

    [A; β] = ([[K_kk, K_k1], [K_1k, K_11]] + ρ·I)⁻¹ [K_kd; K_1d]
    W[:, keep] += W[:, drop] · Aᵀ      (per owned index of the channel)
    b          += Σ_d β_d · Σ_taps W[:, d]

Constant (a dead ReLU after a folded BN shift), duplicate, affine and linear dropped channels
are then exact (away from zero-padded borders); how β enters each op's bias, and why a strided
ConvTranspose's is *approximate*, is ``pruning/intercept.py``. ρ is ``ridge`` times the mean
diagonal of K_kk.

Each consumer's change is kept as plain data (:class:`ConsumerUpdate`: weight delta and bias
delta) before it is written, so refinement can refit it and a plan can carry it. Consumers
that cannot be compensated (grouped convs, weights shared by several nodes, a consumer reading
a channel unevenly, no Gram) are left as they are and listed, with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.graph import ChannelGraph, Group, WeightRef
from onnxprune.pruning.intercept import fold_into_bias, intercept_bias

log = logging.getLogger(__name__)

RIDGE = 1e-6
"""Default ρ relative to the mean diagonal of K_kk."""


@dataclass(frozen=True)
class ConsumerUpdate:
    """What compensation (or refinement) changes in one consumer, as plain data.

    Attributes:
        node: the consumer node; ``op`` its op type.
        weight: the weight initializer's name.
        delta: added to the weight (its original shape and index space).
        bias: added to the consumer's bias (one value per output unit), or None.
        intercept: ``exact``, ``approximate`` (strided ConvTranspose phases) or ``none``.
        how: ``one-shot`` (from the analysis Gram) or ``refined`` (sequential refit).
        group: the channel group whose channels the update folds (-1: unknown).

    """

    node: str
    op: str
    weight: str
    delta: np.ndarray = field(repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    intercept: str = "exact"
    how: str = "one-shot"
    group: int = -1

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (lists of floats)."""
        return {"node": self.node, "op": self.op, "weight": self.weight,
                "shape": list(self.delta.shape), "delta": self.delta.ravel().tolist(),
                "bias": None if self.bias is None else self.bias.ravel().tolist(),
                "intercept": self.intercept, "how": self.how, "group": self.group}


@dataclass
class CompensationReport:
    """Which consumers were updated (and how) and which were not (and why)."""

    compensated: list[str] = field(default_factory=list)
    no_intercept: list[str] = field(default_factory=list)
    approximate: list[str] = field(default_factory=list)
    refined: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    updates: list[ConsumerUpdate] = field(default_factory=list)

    def line(self) -> str:
        """One line for the prune report."""
        text = f"compensation: {len(self.compensated)} consumer(s) updated"
        if self.refined:
            text += f" ({len(self.refined)} refitted on the pruned upstream)"
        if self.approximate:
            text += (f", {len(self.approximate)} with a phase-averaged intercept (strided "
                     "ConvTranspose)")
        if self.no_intercept:
            text += f", {len(self.no_intercept)} without intercept (no bias to add to)"
        if self.skipped:
            text += f"; {len(self.skipped)} not compensated: {'; '.join(self.skipped[:4])}"
            text += " …" if len(self.skipped) > 4 else ""
        return text


def coefficients(gram: np.ndarray, keep: np.ndarray, drop: np.ndarray, ridge: float = RIDGE
                 ) -> np.ndarray:
    """Return A = (K_kk + ρI)⁻¹ K_kd: the kept-channel coefficients of each dropped one."""
    return joint_coefficients(gram, None, keep, drop, ridge)[0]


def joint_coefficients(gram: np.ndarray, bias: np.ndarray | None, keep: np.ndarray,
                       drop: np.ndarray, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Fit each dropped channel by the kept ones and a constant, jointly.

    Args:
        gram: the consumer's Gram K (C × C).
        bias: K's column of the constant channel (``[C + 1]``, last its square), or None to
            fit without intercept.
        keep: kept channel indices.
        drop: dropped channel indices.
        ridge: ρ relative to the mean diagonal of K_kk (also applied to the constant).

    Returns:
        ``A`` (kept × dropped) and ``β`` (dropped; zeros without ``bias``).

    """
    k = np.asarray(gram, dtype=np.float64)
    idx = keep if bias is None else np.append(keep, k.shape[0])
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        k = np.block([[k, b[:-1, None]], [b[None, :-1], b[-1:, None]]])
    kkk, kkd = k[np.ix_(idx, idx)], k[np.ix_(idx, drop)]
    diag = np.diag(kkk)[: keep.size]
    scale = float(np.mean(diag)) if keep.size else float(np.mean(np.diag(kkk)) or 0.0)
    rho = ridge * scale if scale > 0 else 1e-30
    sol = np.linalg.solve(kkk + rho * np.eye(idx.size), kkd)
    if bias is None:
        return sol, np.zeros(drop.size)
    return sol[:-1], sol[-1]


def compensate(
    cg: ChannelGraph,
    plan: Mapping[int, Sequence[int]],
    analyses: Mapping[int, object],
    *,
    ridge: float = RIDGE,
) -> CompensationReport:
    """Edit the consumers' weights and biases in ``cg``'s graph (before the surgery).

    Args:
        cg: a fresh channel graph of the model (its graph is edited in place).
        plan: group id -> kept channel indices.
        analyses: group id -> :class:`~onnxprune.analysis.GroupAnalysis` of the same model.
        ridge: ρ relative to the mean diagonal of K_kk.

    Returns:
        What was compensated and what was not (with reasons).

    """
    report = plan_updates(cg, plan, analyses, ridge=ridge)
    write_updates(cg, report)
    return report


def plan_updates(
    cg: ChannelGraph,
    plan: Mapping[int, Sequence[int]],
    analyses: Mapping[int, object],
    *,
    ridge: float = RIDGE,
) -> CompensationReport:
    """Compute every consumer's one-shot update (nothing is written yet).

    Returns:
        The report with :attr:`CompensationReport.updates` filled and the skipped consumers.

    """
    report = CompensationReport()
    readers = weight_readers(cg)
    for gid, kept in sorted(plan.items()):
        group = cg.group(gid)
        keep = np.asarray(sorted(int(i) for i in kept), dtype=np.int64)
        drop = np.setdiff1d(np.arange(group.size), keep)
        ga = analyses.get(gid)
        if not drop.size or ga is None:
            continue
        stats = {(c.node, c.op, c.weight): c for c in getattr(ga, "consumers", ())}
        for ref in group.consumers:
            cs = stats.get((ref.node, ref.op, ref.weight.name))
            why = unusable(cg, group, ref, cs, readers)
            if why:
                report.skipped.append(f"{ref.node} ({ref.op}): {why}")
                continue
            report.updates.append(_update_one(cg, group, ref, cs, keep, drop, ridge))
    for s in report.skipped:
        log.info("compensation skipped %s", s)
    return report


def write_updates(cg: ChannelGraph, report: CompensationReport) -> None:
    """Write the report's updates into ``cg``'s graph and fill its counts."""
    ctx = cg.ctx
    for up in report.updates:
        who = f"{up.node} ({up.op})"
        node = next((n for n in ctx.graph.nodes if n.name == up.node and n.op == up.op), None)
        w = ctx.const(up.weight)
        if node is None or w is None:
            report.skipped.append(f"{who}: consumer not found for writing")
            continue
        w_index = [i for i, t in enumerate(node.inputs) if t.name == up.weight][0]
        ctx.set_input_const(node, w_index, (w.astype(np.float64) + up.delta).astype(w.dtype))
        report.compensated.append(who)
        if up.how == "refined":
            report.refined.append(who)
        intercept = up.intercept
        if up.bias is not None and np.any(up.bias) and not fold_into_bias(cg, node, up.bias,
                                                                          w.dtype):
            intercept = "none"
        if intercept == "none":
            report.no_intercept.append(who)
        elif intercept == "approximate":
            report.approximate.append(who)
    for name in ("compensated", "refined", "no_intercept", "approximate"):
        setattr(report, name, list(dict.fromkeys(getattr(report, name))))


def weight_readers(cg: ChannelGraph) -> dict[str, int]:
    """Constant tensor name -> how many node inputs read it."""
    count: dict[str, int] = {}
    for node in cg.ctx.graph.nodes:
        for t in node.inputs:
            if isinstance(t, gs.Constant):
                count[t.name] = count.get(t.name, 0) + 1
    return count


def unusable(cg: ChannelGraph, group: Group, ref: WeightRef, cs: object,
             readers: Mapping[str, int]) -> str:
    """Why a consumer cannot be compensated ("" when it can)."""
    if cs is None:
        return "no Gram from the analysis (grouped or unsupported consumer)"
    if readers.get(ref.weight.name, 0) > 1:
        return "weight shared by several nodes"
    node = _node(cg, ref)
    if node is None or cg.ctx.const(ref.weight.name) is None:
        return "weight is not a constant"
    if cg.ctx.quantised(ref.weight.name):
        return "weight is stored quantised (DequantizeLinear): folding would re-quantise it"
    if node.op in ("Conv", "ConvTranspose") and int(cg.ctx.attr(node, "group", 1)) != 1:
        return "grouped conv cannot mix channels"
    if _owned(group.members[ref.space], group.size) is None:
        return "reads the group's channels unevenly (some channels more often than others)"
    return ""


def _node(cg: ChannelGraph, ref: WeightRef) -> gs.Node | None:
    return next(
        (n for n in cg.ctx.consumers(ref.space.tensor) if n.name == ref.node and n.op == ref.op),
        None,
    )


def _owned(owner: np.ndarray, size: int) -> np.ndarray | None:
    """[C, m] indices of the consumer's input axis owned by each channel (None if ragged)."""
    per = [np.flatnonzero(owner == c) for c in range(size)]
    m = len(per[0])
    if m == 0 or any(len(p) != m for p in per):
        return None
    return np.stack(per)


def owned_indices(group: Group, ref: WeightRef) -> np.ndarray | None:
    """[C, m] indices of ``ref``'s input axis owned by each channel of ``group``."""
    return _owned(group.members[ref.space], group.size)


def _update_one(
    cg: ChannelGraph, group: Group, ref: WeightRef, cs, keep: np.ndarray, drop: np.ndarray,  # type: ignore[no-untyped-def]
    ridge: float,
) -> ConsumerUpdate:
    """Return one consumer's one-shot update: dropped channels folded into kept ones."""
    node = _node(cg, ref)
    idx = owned_indices(group, ref)
    w = cg.ctx.const(ref.weight.name)
    assert node is not None and idx is not None and w is not None  # checked by unusable()
    bias_col = getattr(cs, "bias", None)
    a, beta = joint_coefficients(cs.gram, bias_col, keep, drop, ridge)
    if bias_col is None:  # stats without the constant column: intercept from the means
        mean = np.asarray(cs.mean, dtype=np.float64)
        beta = mean[drop, 0] - a.T @ mean[keep, 0]
    wm = np.moveaxis(w.astype(np.float64), ref.weight.axis, 0)
    delta = np.zeros_like(wm)
    for j in range(idx.shape[1]):
        dropped = wm[idx[drop, j]]  # [nd, rest...]
        delta[idx[keep, j]] += np.tensordot(a, dropped, axes=(1, 0))
    bias, exact = intercept_bias(cg, node, ref.weight.axis, w, idx, drop, beta)
    return ConsumerUpdate(ref.node, ref.op, ref.weight.name,
                          np.moveaxis(delta, 0, ref.weight.axis), bias, exact, "one-shot",
                          group.id)


