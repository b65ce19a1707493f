"""Closed-form compensation: fold the dropped channels into the kept ones (DESIGN.md §2.5).

For every consumer that reads a pruned group with a weight (dense Conv, ConvTranspose, Gemm,
MatMul), the dropped input channels are re-expressed through the kept ones with the
coefficients of a ridge fit on that consumer's own Gram matrix (the Gram of its per-sample
weight gradients, accumulated by the analysis):

    A = (K_kk + ρ·I)⁻¹ K_kd            (kept × dropped)
    W[:, keep] += W[:, drop] · Aᵀ      (per owned index of the channel)
    b          += Σ_d W[:, d]·(μ_d − Aᵀμ_k)   (summed over kernel taps)

It is exact when a dropped channel is a linear combination of kept ones (copies, linear
dependence), and the intercept from the activation means μ rescues channels that are
constant on the data (a dead ReLU after a folded BN shift). ρ is ``ridge`` times the mean
diagonal of K_kk. With zero padding the intercept is exact away from the borders only.

Consumers that cannot be compensated (grouped convs, weights shared by several nodes, a
MatMul without a constant bias Add) are left as they are and listed in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.graph import ChannelGraph, Group, WeightRef
from onnxprune.metrics import RECURRENT_GATES

log = logging.getLogger(__name__)

RIDGE = 1e-6
"""Default ρ relative to the mean diagonal of K_kk."""


@dataclass
class CompensationReport:
    """Which consumers were compensated (with or without an intercept) and which were not."""

    compensated: list[str] = field(default_factory=list)
    no_intercept: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the prune report."""
        text = f"compensation: {len(self.compensated)} consumer(s) updated"
        if self.no_intercept:
            text += f", {len(self.no_intercept)} without intercept"
        if self.skipped:
            text += f"; not compensated: {'; '.join(self.skipped[:4])}"
            text += " …" if len(self.skipped) > 4 else ""
        return text


def coefficients(gram: np.ndarray, keep: np.ndarray, drop: np.ndarray, ridge: float = RIDGE
                 ) -> np.ndarray:
    """Return A = (K_kk + ρI)⁻¹ K_kd: the kept-channel coefficients of each dropped one."""
    k = np.asarray(gram, dtype=np.float64)
    kkk = k[np.ix_(keep, keep)]
    kkd = k[np.ix_(keep, drop)]
    scale = float(np.mean(np.diag(kkk))) if keep.size else 0.0
    rho = ridge * scale if scale > 0 else 1e-30
    return np.linalg.solve(kkk + rho * np.eye(keep.size), kkd)


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
    report = CompensationReport()
    readers = _weight_readers(cg)
    for gid, kept in sorted(plan.items()):
        group = cg.group(gid)
        keep = np.asarray(sorted(int(i) for i in kept), dtype=np.int64)
        drop = np.setdiff1d(np.arange(group.size), keep)
        ga = analyses.get(gid)
        if not drop.size or ga is None:
            continue
        stats = {(c.node, c.op, c.weight): c for c in getattr(ga, "consumers", ())}
        for ref in group.consumers:
            who = f"{ref.node} ({ref.op})"
            cs = stats.get((ref.node, ref.op, ref.weight.name))
            why = _unusable(cg, ref, cs, readers)
            if why:
                report.skipped.append(f"{who}: {why}")
                continue
            intercept = _compensate_one(cg, group, ref, cs, keep, drop, ridge)
            report.compensated.append(who)
            if not intercept:
                report.no_intercept.append(who)
    for s in report.skipped:
        log.info("compensation skipped %s", s)
    return report


def _weight_readers(cg: ChannelGraph) -> dict[str, int]:
    count: dict[str, int] = {}
    for node in cg.ctx.graph.nodes:
        for t in node.inputs:
            if isinstance(t, gs.Constant):
                count[t.name] = count.get(t.name, 0) + 1
    return count


def _unusable(cg: ChannelGraph, ref: WeightRef, cs: object, readers: Mapping[str, int]) -> str:
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


def _compensate_one(
    cg: ChannelGraph, group: Group, ref: WeightRef, cs, keep: np.ndarray, drop: np.ndarray,  # type: ignore[no-untyped-def]
    ridge: float,
) -> bool:
    """Fold the dropped channels into the kept ones of one consumer; True if biased too."""
    ctx = cg.ctx
    node = _node(cg, ref)
    assert node is not None  # checked by _unusable
    idx = _owned(group.members[ref.space], group.size)
    w = ctx.const(ref.weight.name)
    if idx is None or w is None:
        return False
    a = coefficients(cs.gram, keep, drop, ridge)  # [nk, nd]
    wm = np.moveaxis(w.astype(np.float64), ref.weight.axis, 0)
    new = wm.copy()
    mean = np.asarray(cs.mean, dtype=np.float64)
    # Output units of the consumer: W's axis 1, or (direction, gate row) of a recurrent W.
    units = tuple(wm.shape[1:3] if node.op in RECURRENT_GATES else wm.shape[1:2]) or (1,)
    contrib = np.zeros(units)
    for j in range(idx.shape[1]):
        dropped = wm[idx[drop, j]]  # [nd, rest...]
        new[idx[keep, j]] += np.tensordot(a, dropped, axes=(1, 0))
        if j < mean.shape[1]:
            b = mean[drop, j] - a.T @ mean[keep, j]  # [nd]
            contrib += np.tensordot(b, dropped.reshape(len(drop), *units, -1).sum(-1),
                                    axes=(0, 0))
    w_index = [i for i, t in enumerate(node.inputs) if t.name == ref.weight.name][0]
    ctx.set_input_const(node, w_index, np.moveaxis(new, 0, ref.weight.axis).astype(w.dtype))
    if not np.any(contrib):
        return True
    return _add_bias(cg, node, contrib, w.dtype)


def _add_bias(cg: ChannelGraph, node: gs.Node, contrib: np.ndarray, dtype: np.dtype) -> bool:
    ctx = cg.ctx
    if node.op in ("Conv", "ConvTranspose"):
        old = ctx.input_const(node, 2) if len(node.inputs) > 2 and node.inputs[2].name else None
        if old is None and len(node.inputs) > 2 and node.inputs[2].name:
            return False  # a run-time bias
        base = np.zeros(contrib.shape, dtype=dtype) if old is None else old
        ctx.set_input_const(node, 2, (base + contrib).astype(base.dtype))
        return True
    if node.op == "Gemm":
        alpha = float(ctx.attr(node, "alpha", 1.0))
        beta = float(ctx.attr(node, "beta", 1.0))
        has_c = len(node.inputs) > 2 and node.inputs[2].name
        old = ctx.input_const(node, 2) if has_c else None
        if has_c and old is None:
            return False
        if beta == 0.0 and has_c:
            return False
        add = alpha * contrib / (beta if has_c else 1.0)
        if old is None:
            if not has_c and beta != 1.0:
                node.attrs["beta"] = 1.0
            ctx.set_input_const(node, 2, add.astype(dtype))
            return True
        if old.size not in (1, add.size) or (old.ndim and old.shape[-1] not in (1, add.size)):
            return False
        shape = (*old.shape[:-1], add.size) if old.ndim else (add.size,)
        ctx.set_input_const(node, 2, (np.broadcast_to(old, shape) + add.reshape(
            (1,) * (len(shape) - 1) + (add.size,))).astype(old.dtype))
        return True
    if node.op == "MatMul":
        return _matmul_bias(cg, node, contrib)
    if node.op in RECURRENT_GATES:
        return _recurrent_bias(cg, node, contrib, dtype)
    return False


def _recurrent_bias(cg: ChannelGraph, node: gs.Node, contrib: np.ndarray, dtype: np.dtype) -> bool:
    """Add ``contrib`` ``[directions, gates·hidden]`` to the W half of B (created if absent)."""
    ctx = cg.ctx
    has_b = ctx.input_name(node, 3) is not None
    old = ctx.input_const(node, 3) if has_b else None
    if has_b and old is None:
        return False  # a run-time bias
    rows = contrib.shape[1]
    base = np.zeros((contrib.shape[0], 2 * rows), dtype=dtype) if old is None else old.copy()
    base[:, :rows] += contrib.astype(base.dtype)
    ctx.set_input_const(node, 3, base)
    return True


def _matmul_bias(cg: ChannelGraph, node: gs.Node, contrib: np.ndarray) -> bool:
    """Add to the constant of an ``Add`` that biases the MatMul's output on its last axis."""
    ctx = cg.ctx
    users = ctx.consumers(node.outputs[0].name)
    if len(users) != 1 or users[0].op != "Add":
        return False
    add = users[0]
    for i, t in enumerate(add.inputs):
        c = ctx.input_const(add, i)
        if c is None or t.name == node.outputs[0].name:
            continue
        if c.ndim >= 1 and c.shape[-1] == contrib.size and c.size == contrib.size:
            ctx.set_input_const(add, i, (c + contrib.reshape(c.shape)).astype(c.dtype))
            return True
    return False
