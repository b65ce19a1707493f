"""Layer-wise allocation: how many channels each group keeps to reach a MACs or params target.

Cost model. Every Conv/ConvTranspose/Gemm/MatMul node costs ``base · f_in · f_out`` (MACs or
weight parameters), where ``f_in``/``f_out`` are the kept shares of the indices of its input and
output channel spaces. A group that keeps ``w`` of its ``C`` channels keeps ``w/C`` of the
indices it owns in every space it reaches (a Flatten feeding a Gemm: ``w·H·W`` features), so
the shares are affine in the widths and the cost is bilinear — exact for MACs whenever the
spatial sizes do not change (pruning never changes them). A depthwise conv reads one input
channel per output channel: its cost scales with ``f_out`` only. Parameters outside these
weights (biases, norms) are left out of the model; the caller checks the real cost after
surgery.

Allocations (DESIGN.md §2.4):

- ``hierarchical``: greedy on the estimated loss increase per unit of cost saved. Shrinking a
  group from ``w`` to ``w'`` discards the eigenvalues ``λ_{w'+1..w}`` of its Gram matrix. The
  currency is the *share* of the group's spectral energy discarded, ``Σ_{i>w'} λ_i / Σ λ_i``,
  not its absolute value ``½·Σ λ_i / N`` (DESIGN.md §2.4): gradient magnitudes differ by
  orders between layers, and the absolute currency emptied the layers with small gradients.
  Measured on the digits ResNet and a plainly trained digits CNN (test accuracy after
  compensation, no fine-tuning; ``benchmarks/digits_compare.py`` models): at 30 % of the MACs
  0.9611 → 0.9907 and 0.9759 → 0.9852, at 20 % 0.8741 → 0.9926 and 0.9333 → 0.9870; at 50 %
  equal within one test image. (Energy share per row, DESIGN's ``/M``, was worse than both.)
  First pass: no group goes below its effective rank; only when the target is still not met
  does a second pass go past it, and the groups that did are reported with how far.
- ``uniform``: the same ratio in every group (bisected to meet the target).
- ``global``: one ranking of every channel's criterion score (normalised by its group's mean
  score) — the lowest-scoring channels go first, wherever they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from onnxprune.channels.graph import ChannelGraph, Group
from onnxprune.channels.rules import weight_op
from onnxprune.channels.rules.base import WeightOp
from onnxprune.channels.types import Space
from onnxprune.errors import CannotPruneError, InputError

ALLOCATIONS = ("hierarchical", "uniform", "global")
METRICS = ("macs", "params")


@dataclass(frozen=True)
class Widths:
    """Allowed widths of one group: multiples of ``round_to`` between ``floor`` and ``size``."""

    size: int
    floor: int
    round_to: int = 1

    def below(self, w: int) -> int | None:
        """Return the next allowed width below ``w`` (``None`` at the floor)."""
        n = ((w - 1) // self.round_to) * self.round_to
        return n if n >= self.floor else None

    def at_least(self, w: int) -> int:
        """Return the smallest allowed width ≥ ``w`` (the full size when none is)."""
        n = math.ceil(max(w, self.floor) / self.round_to) * self.round_to
        return n if n < self.size else self.size

    def nearest(self, w: float) -> int:
        """Return the allowed width nearest to ``w`` (the full size if ``w`` rounds to it)."""
        n = int(round(w / self.round_to)) * self.round_to
        n = max(n, self.at_least(self.floor))
        return n if n < self.size else self.size


def widths_for(group: Group, round_to: int, min_channels: int) -> Widths:
    """Return the allowed widths of ``group`` (round_to ≥ 1, min_channels ≥ 1)."""
    floor = math.ceil(max(1, min_channels) / round_to) * round_to
    return Widths(group.size, min(floor, group.size), round_to)


class CostModel:
    """Bilinear cost of the model as a function of group widths (see the module doc).

    Args:
        cg: the model's channel graph.
        metric: ``macs`` or ``params``.
        total: the model's total of that metric (parameters outside the modelled weights
            count as a constant).

    """

    def __init__(self, cg: ChannelGraph, metric: str, total: int) -> None:
        self.ids = [g.id for g in cg.groups]
        self.sizes = np.array([g.size for g in cg.groups], dtype=np.float64)
        owned = owned_spaces(cg)
        rows = []
        self.nodes: list[str] = []  # the node of each row (the latency model prices them)
        for node in cg.ctx.graph.nodes:
            wop = weight_op(node.op, node.domain)  # ops whose rule gives cost-model axes
            if wop is None or wop.axes is None or len(node.inputs) < 2 or not node.outputs:
                continue
            base = self._base(cg, node, wop, metric)
            if base <= 0:
                continue
            pin, pout = self._shares(cg, node, wop, owned, len(self.ids))
            depthwise = _depthwise(cg, node, wop)
            rows.append((base, pin, pout, depthwise))
            self.nodes.append(node.name)
        n = len(rows)
        self.base = np.array([r[0] for r in rows], dtype=np.float64)
        self.pin = np.array([r[1] for r in rows]).reshape(n, len(self.ids))
        self.pout = np.array([r[2] for r in rows]).reshape(n, len(self.ids))
        self.dw = np.array([r[3] for r in rows], dtype=bool)
        self.modelled = float(self.base.sum())
        self.total = float(total)
        self.fixed = self.total - self.modelled  # cost the widths do not change

    @staticmethod
    def _base(cg: ChannelGraph, node, wop: WeightOp, metric: str) -> float:  # type: ignore[no-untyped-def]
        if metric == "macs":
            # Only the MACs that scale with the channels (a recurrent op's input projection;
            # its recurrence over the unpruned hidden size stays in the fixed cost).
            shapes = [cg.ctx.shape(t.name) or _const_shape(cg, t.name) for t in node.inputs]
            return float(wop.shrinking_macs(node.attrs, shapes,
                                            cg.ctx.shape(node.outputs[0].name)))
        names = [node.inputs[i].name for i in wop.cost_inputs if i < len(node.inputs)]
        return float(sum(c.size for c in map(cg.ctx.const, names) if c is not None))

    @staticmethod
    def _shares(cg: ChannelGraph, node, wop: WeightOp, owned, n_groups: int):  # type: ignore[no-untyped-def]
        x, y = node.inputs[0].name, node.outputs[0].name
        xs, ys = cg.ctx.shape(x), cg.ctx.shape(y)
        if wop.batched and cg.ctx.const(node.inputs[1].name) is None and ys:
            # Attention (Q·Kᵀ, softmax·V): its MACs shrink with the heads on a batch axis.
            share = np.zeros(n_groups)
            for axis, n in enumerate(ys):
                for col, count in owned.get(Space(y, axis), ()):
                    share[col] = max(share[col], count / n)
            return np.zeros(n_groups), share
        ax_in, ax_out = wop.axes(node.attrs, xs, ys) if wop.axes else (-1, -1)
        out = []
        for tensor, axis, shape in ((x, ax_in, xs), (y, ax_out, ys)):
            share = np.zeros(n_groups)
            if shape and 0 <= axis < len(shape) and shape[axis]:
                for col, count in owned.get(Space(tensor, axis), ()):
                    share[col] = count / shape[axis]
            out.append(share)
        return out[0], out[1]

    def cost(self, widths: np.ndarray) -> float:
        """Cost at ``widths`` (aligned with :attr:`ids`)."""
        removed = 1.0 - widths / self.sizes
        fin = 1.0 - self.pin @ removed
        fout = 1.0 - self.pout @ removed
        per = self.base * np.where(self.dw, fout, fin * fout)
        return self.fixed + float(per.sum())

    def savings(self, widths: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Cost saved by moving each group alone from ``widths`` to ``new`` (vector)."""
        removed = 1.0 - widths / self.sizes
        fin = 1.0 - self.pin @ removed
        fout = 1.0 - self.pout @ removed
        delta = (widths - new) / self.sizes  # per group
        fin2 = fin[:, None] - self.pin * delta[None, :]
        fout2 = fout[:, None] - self.pout * delta[None, :]
        now = np.where(self.dw, fout, fin * fout)
        after = np.where(self.dw[:, None], fout2, fin2 * fout2)
        return (self.base[:, None] * (now[:, None] - after)).sum(0)


def owned_spaces(cg: ChannelGraph) -> dict[Space, list[tuple[int, int]]]:
    """Map every channel space to the (group column, channel count) pairs that own it."""
    owned: dict[Space, list[tuple[int, int]]] = {}
    for col, g in enumerate(cg.groups):
        for space, owner in g.members.items():
            owned.setdefault(space, []).append((col, int((owner >= 0).sum())))
    return owned


class Pricing(Protocol):
    """What an allocation needs of a cost.

    :class:`CostModel` (MACs, params) or the measured latency
    (``pruning/latency_cost.LatencyCost``).
    """

    ids: list[int]
    sizes: np.ndarray
    total: float

    def cost(self, widths: np.ndarray) -> float:
        """Cost at ``widths`` (aligned with ``ids``)."""
        ...

    def savings(self, widths: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Cost saved by moving each group alone from ``widths`` to ``new``."""
        ...


def _const_shape(cg: ChannelGraph, name: str) -> tuple[int, ...] | None:
    c = cg.ctx.const(name)
    return None if c is None else tuple(c.shape)


def _depthwise(cg: ChannelGraph, node, wop: WeightOp) -> bool:  # type: ignore[no-untyped-def]
    w = cg.ctx.const(node.inputs[1].name)
    return wop.depthwise is not None and w is not None and wop.depthwise(node.attrs, w.shape)


@dataclass(frozen=True)
class GroupBudget:
    """What the hierarchical allocation knows of one group.

    ``losses[i]`` is the estimated loss of the (i+1)-th eigen-direction (its share of the
    group's spectral energy);
    ``cap`` is the first-pass floor (the effective rank, allowed width), ``None`` when the
    group may not be pruned at all (no signal).
    """

    gid: int
    widths: Widths
    losses: np.ndarray
    cap: int | None
    rank: int | None = None


@dataclass
class Allocation:
    """Chosen widths, the cost model's estimate, and what went past the analysis."""

    widths: dict[int, int]
    estimate: float
    target: float
    metric: str
    past_rank: dict[int, tuple[int, int]] = field(default_factory=dict)  # gid -> (rank, width)
    notes: list[str] = field(default_factory=list)


def _target_cost(cm: Pricing, target: float) -> float:
    return target * cm.total


def hierarchical(cm: Pricing, budgets: Sequence[GroupBudget], target: float, metric: str
                 ) -> Allocation:
    """Greedy widths by loss per cost saved; first pass never below each group's rank."""
    goal = _target_cost(cm, target)
    col = {gid: i for i, gid in enumerate(cm.ids)}
    w = cm.sizes.copy()
    by_col = {col[b.gid]: b for b in budgets if b.cap is not None}
    slack = 0.002 * cm.total
    done = False
    for phase in ("rank", "floor"):
        while cm.cost(w) > goal:
            best = _best_step(cm, w, by_col, phase, goal - slack)
            if best is None:
                break
            i, new, over = best
            if over > cm.cost(w) - goal:  # stopping here is closer to the target
                done = True
                break
            w[i] = new
        if done or cm.cost(w) <= goal:
            break
    alloc = Allocation({cm.ids[i]: int(w[i]) for i in by_col if w[i] < cm.sizes[i]},
                       cm.cost(w) / cm.total, target, metric)
    for i, b in by_col.items():
        if b.rank is not None and w[i] < min(b.rank, b.widths.size):
            alloc.past_rank[b.gid] = (b.rank, int(w[i]))
    return alloc


def _best_step(cm: Pricing, w: np.ndarray, by_col: Mapping[int, GroupBudget], phase: str,
               floor: float) -> tuple[int, int, float] | None:
    """Pick the step with the least loss per cost saved.

    Steps that would overshoot ``floor`` come last; when all do, the smallest overshoot wins.
    Returns (group column, new width, overshoot below ``floor``).
    """
    new = w.copy()
    cand = []
    for i, b in by_col.items():
        nxt = b.widths.below(int(w[i]))
        if nxt is None:
            continue
        if phase == "rank" and b.cap is not None and nxt < b.cap:
            continue
        new[i] = nxt
        cand.append(i)
    if not cand:
        return None
    saved = cm.savings(w, new)
    now = cm.cost(w)
    best, best_key = None, None
    for i in cand:
        if saved[i] <= 0:
            continue
        b = by_col[i]
        lo, hi = int(new[i]), int(w[i])
        loss = float(b.losses[lo:hi].sum())
        over = max(0.0, floor - (now - saved[i]))
        key = (over, loss / saved[i], -saved[i], b.gid)
        if best_key is None or key < best_key:
            best, best_key = (i, lo, over), key
    return best


def uniform(cm: Pricing, allowed: Mapping[int, Widths], target: float, metric: str
            ) -> Allocation:
    """One ratio for every allowed group, bisected on the cost model to meet the target."""
    col = {gid: i for i, gid in enumerate(cm.ids)}

    def at(ratio: float) -> np.ndarray:
        w = cm.sizes.copy()
        for gid, wd in allowed.items():
            w[col[gid]] = wd.nearest(wd.size * (1.0 - ratio))
        return w

    goal = _target_cost(cm, target)
    # The widths move in steps (rounding, round-to), so scan the ratios and take the one whose
    # cost lands closest to the goal (at or below it on a tie).
    best, best_key = 0.0, None
    for ratio in np.linspace(0.0, 1.0, 1001):
        c = cm.cost(at(float(ratio)))
        key = (abs(c - goal), c > goal)
        if best_key is None or key < best_key:
            best, best_key = float(ratio), key
    hi = best
    w = _land(cm, at(hi), {col[gid]: wd for gid, wd in allowed.items()}, goal)
    alloc = Allocation(_pruned(cm, w, allowed), cm.cost(w) / cm.total, target, metric)
    alloc.notes.append(f"uniform ratio {hi:.3f} of every group's channels removed")
    return alloc


def _land(cm: Pricing, w: np.ndarray, allowed: Mapping[int, Widths], goal: float
          ) -> np.ndarray:
    """Move single groups one grid step until the cost is within the tolerance of ``goal``.

    One ratio for all groups moves every width at once: on a coarse grid (``round_to auto``)
    no ratio may land within :data:`TOLERANCE`, and a finer grid would cost speed. So the
    group that keeps the largest share steps down (the smallest share steps up) until it
    lands; a step that would cross back stops it.
    """
    band = TOLERANCE * cm.total
    last, prev = 0, w
    for _ in range(10 * len(allowed) + 10):
        gap = cm.cost(w) - goal
        if abs(gap) <= band:
            break
        share = {i: w[i] / wd.size for i, wd in allowed.items()}
        if gap > 0:
            steps = {i: allowed[i].below(int(w[i])) for i in allowed}
            cand = [i for i, n in steps.items() if n is not None]
            pick = max(cand, key=lambda i: share[i], default=None)
            direction = -1
        else:
            steps = {i: min(int(w[i]) + allowed[i].round_to, allowed[i].size) for i in allowed}
            cand = [i for i in allowed if w[i] < allowed[i].size]
            pick = min(cand, key=lambda i: share[i], default=None)
            direction = 1
        if pick is None:
            break
        if last == -direction:  # crossed the goal: keep the better of the last two
            return min((w, prev), key=lambda x: (cm.cost(x) > goal + band,
                                                 abs(cm.cost(x) - goal)))
        prev, w = w, w.copy()
        w[pick] = steps[pick]
        last = direction
    return w


def global_ranking(
    cm: Pricing, allowed: Mapping[int, Widths], scores: Mapping[int, np.ndarray],
    target: float, metric: str,
) -> Allocation:
    """Remove the channels with the lowest normalised scores, model-wide, until the target."""
    col = {gid: i for i, gid in enumerate(cm.ids)}
    entries: list[tuple[float, int]] = []
    for gid, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        norm = s / (s.mean() if s.mean() > 0 else 1.0)
        entries.extend((float(v), gid) for v in np.sort(norm))
    entries.sort(key=lambda e: e[0])
    goal = _target_cost(cm, target)
    w = cm.sizes.copy()
    raw = {gid: float(cm.sizes[col[gid]]) for gid in allowed}
    for _, gid in entries:
        if cm.cost(w) <= goal:
            break
        wd = allowed[gid]
        if raw[gid] - 1 < wd.floor:
            continue
        raw[gid] -= 1
        w[col[gid]] = wd.nearest(raw[gid])
    return Allocation(_pruned(cm, w, allowed), cm.cost(w) / cm.total, target, metric)


def _pruned(cm: Pricing, w: np.ndarray, allowed: Mapping[int, Widths]) -> dict[int, int]:
    col = {gid: i for i, gid in enumerate(cm.ids)}
    return {gid: int(w[col[gid]]) for gid in allowed if w[col[gid]] < cm.sizes[col[gid]]}


def check_target(target: float | None, name: str) -> float:
    """Validate a kept fraction (0, 1]."""
    if target is None or not 0.0 < target < 1.0:
        raise InputError(f"--{name} {target}: the kept fraction must be in (0, 1), e.g. 0.5")
    return float(target)


TOLERANCE = 0.02
"""An allocation may end this far (share of the total) above its target: the width steps
(``--round-to``, small groups) cannot always land on it."""


def unreachable(alloc: Allocation, metric: str) -> CannotPruneError:
    """Build the error raised when the allocation cannot reach its target."""
    return CannotPruneError(
        f"target {metric} kept {alloc.target:.3f} cannot be reached: the prunable groups at "
        f"their minimum widths still keep {alloc.estimate:.3f}; raise the target, lower "
        "--min-channels/--round-to, or un-exclude groups"
    )
