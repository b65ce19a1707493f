"""Layer-wise allocation: how many channels each group keeps to reach a MACs or params target.

The cost of a choice of widths comes from a :class:`Pricing`: the bilinear cost model of MACs
or parameters (``pruning/cost_model.py``) or the measured latency (``pruning/latency_cost.py``).

Allocations (DESIGN.md §2.4):

- ``hierarchical``: greedy on the estimated loss increase per unit of cost saved. Shrinking a
  group from ``w`` to ``w'`` discards the eigenvalues ``λ_{w'+1..w}`` of its Gram matrix. The
  currency is the *share* of the group's spectral energy discarded, ``Σ_{i>w'} λ_i / Σ λ_i``,
  times the group's total estimated loss ``E = ½·Σ λ_i / N`` to the power
  ``energy_power`` (``ENERGY_POWER``). At power 0 every group counts alike; at power 1 it is
  the absolute estimate (DESIGN.md §2.4).
  With the old raw-output objective the absolute currency emptied the layers with small
  gradients (gradient magnitudes differ by orders between layers): measured on the digits
  ResNet and a plainly trained digits CNN (test accuracy after compensation, no fine-tuning;
  ``benchmarks/digits_compare.py`` models), the share gave at 30 % of the MACs
  0.9611 → 0.9907 and 0.9759 → 0.9852, at 20 % 0.8741 → 0.9926 and 0.9333 → 0.9870; at 50 %
  equal within one test image. (Energy share per row, DESIGN's ``/M``, was worse than both.)
  With the output-aware objective (every output standardised) the totals are in the task's
  units, and the pure share over-prunes groups the outputs depend on. Measured on the trained
  real models (``benchmarks/real_quality.py --set energy_power=P``, task metric vs the
  original at 0.7 / 0.5 of the MACs, power 0 / 0.5 / 1): PP-OCRv4 det 0.923 / 0.910,
  0.963 / 0.921, 0.954 / 0.878; PP-OCR cls (1000 lines) 0.894 / 0.828, 0.919 / 0.823,
  0.915 / 0.842; PP-OCRv4 rec (200 lines) 0.875 / 0.755, 0.865 / 0.765, 0.875 / 0.785;
  PicoDet 0.953 / 0.892 at 0, 0.948 / 0.894 at 0.5; MTCNN R/O-Net equal at 0 and 0.5; the
  digits ResNet (``benchmarks/digits_default.py``) 0.9944 / 0.9907 at 0, 0.9963 / 0.9944 at
  0.5, and 0.9944 / 0.9759 at 1 (power 1 empties small-energy groups at 0.3 of the MACs).
  Power 0.5 is the default: it gains most where the share was wrong (det and cls at 0.7)
  and costs nothing measurable elsewhere
  (``benchmarks/results/energy_power_2026-11-29.md``).
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

import numpy as np

from onnxprune.channels.graph import Group
from onnxprune.errors import CannotPruneError, InputError
from onnxprune.pruning.cost_model import CostModel, Pricing
from onnxprune.pruning.landing import land

__all__ = [  # CostModel and Pricing live in cost_model.py; callers reach them here too
    "ALLOCATIONS", "ENERGY_POWER", "METRICS", "TOLERANCE", "Allocation", "CostModel",
    "GroupBudget", "Pricing",
    "Widths", "check_target", "global_ranking", "hierarchical", "uniform", "unreachable",
    "widths_for",
]

ALLOCATIONS = ("hierarchical", "uniform", "global")
ENERGY_POWER = 0.5
"""Default power of a group's total estimated loss in the hierarchical currency (see above)."""
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


@dataclass(frozen=True)
class GroupBudget:
    """What the hierarchical allocation knows of one group.

    ``losses[i]`` is the estimated loss of the (i+1)-th eigen-direction (its share of the
    group's spectral energy, times the group's total to the power ``ENERGY_POWER``);
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


def uniform(cm: Pricing, allowed: Mapping[int, Widths], target: float, metric: str,
            touched: np.ndarray | None = None) -> Allocation:
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
    w = land(cm, at(hi), {col[gid]: wd for gid, wd in allowed.items()}, goal,
             TOLERANCE * cm.total, touched)
    alloc = Allocation(_pruned(cm, w, allowed), cm.cost(w) / cm.total, target, metric)
    alloc.notes.append(f"uniform ratio {hi:.3f} of every group's channels removed")
    return alloc


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
