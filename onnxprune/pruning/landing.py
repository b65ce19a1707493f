"""Landing a one-ratio allocation on its target: single groups moved one grid step at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from onnxprune.pruning.cost_model import Pricing

if TYPE_CHECKING:
    from onnxprune.pruning.allocation import Widths


def land(cm: Pricing, w: np.ndarray, allowed: Mapping[int, Widths], goal: float, band: float,
         touched: np.ndarray | None = None) -> np.ndarray:
    """Move single groups one grid step until the cost is within the tolerance of ``goal``.

    One ratio for all groups moves every width at once: on a coarse grid (``round_to auto``)
    no ratio may land within ``band`` (the allocation's tolerance), and a finer grid would
    cost speed. So the group that keeps the largest share steps down (the smallest share
    steps up) until it lands; a step that would cross back stops it. Among groups at the
    same share, ``touched`` (activation elements per group,
    :func:`~onnxprune.pruning.cost_model.touched`) picks the step with the most elements per
    unit of cost: down, the memory-bound layers that cost latency beyond their MACs go first;
    up, they come back last.
    """
    last, prev = 0, w
    for _ in range(10 * len(allowed) + 10):
        gap = cm.cost(w) - goal
        if abs(gap) <= band:
            break
        if gap > 0:
            steps = {i: allowed[i].below(int(w[i])) for i in allowed}
            cand = [i for i, n in steps.items() if n is not None]
            direction = -1
        else:
            steps = {i: min(int(w[i]) + allowed[i].round_to, allowed[i].size) for i in allowed}
            cand = [i for i in allowed if w[i] < allowed[i].size]
            direction = 1
        if not cand:
            break
        pick = _pick(cm, w, cand, steps, allowed, direction, touched)
        if last == -direction:  # crossed the goal: keep the better of the last two
            return min((w, prev), key=lambda x: (cm.cost(x) > goal + band,
                                                 abs(cm.cost(x) - goal)))
        prev, w = w, w.copy()
        w[pick] = steps[pick]
        last = direction
    return w


def _pick(cm: Pricing, w: np.ndarray, cand: Sequence[int], steps: Mapping[int, int | None],
          allowed: Mapping[int, Widths], direction: int, touched: np.ndarray | None) -> int:
    """Return the group :func:`land` moves: extreme share first, then most elements per cost."""
    share = {i: round(float(w[i]) / allowed[i].size, 9) for i in cand}
    density = dict.fromkeys(cand, 0.0)
    if touched is not None:
        new = w.copy()
        for i in cand:
            new[i] = steps[i]
        cost = np.abs(cm.savings(w, new))
        for i in cand:
            moved = abs(int(steps[i] or 0) - int(w[i])) * touched[i] / cm.sizes[i]
            density[i] = moved / cost[i] if cost[i] > 0 else 0.0
    if direction < 0:  # largest share down; the densest of those first
        return min(cand, key=lambda i: (-share[i], -density[i], i))
    return min(cand, key=lambda i: (share[i], density[i], i))
