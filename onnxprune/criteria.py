"""Channel importance criteria (higher score = keep), registered by name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxprune.channels.graph import ChannelGraph, Group

Criterion = Callable[[ChannelGraph, Group, np.random.Generator], np.ndarray]
CRITERIA: dict[str, Criterion] = {}


def criterion(name: str) -> Callable[[Criterion], Criterion]:
    """Register a weight-only criterion under ``name`` (twice is an error)."""

    def wrap(fn: Criterion) -> Criterion:
        if name in CRITERIA:
            raise RuntimeError(f"criterion {name} registered twice")
        CRITERIA[name] = fn
        return fn

    return wrap


def _norm_scores(cg: ChannelGraph, group: Group, order: int) -> np.ndarray:
    """Sum over the group's roots of each filter's L_order weight norm."""
    scores = np.zeros(group.size, dtype=np.float64)
    for ref in group.roots:
        w = cg.ctx.const(ref.weight.name)
        if w is None:
            continue
        w = np.moveaxis(np.abs(w.astype(np.float64)), ref.weight.axis, 0).reshape(w.shape[ref.weight.axis], -1)
        per = w.sum(1) if order == 1 else np.sqrt((w**2).sum(1))
        owner = group.members[ref.space]
        if len(owner) != len(per):
            continue
        ok = owner >= 0
        np.add.at(scores, owner[ok], per[ok])
    return scores


@criterion("l1")
def l1(cg: ChannelGraph, group: Group, rng: np.random.Generator) -> np.ndarray:
    """L1 norm of each filter's weights, summed over every producer of the channel."""
    return _norm_scores(cg, group, 1)


@criterion("l2")
def l2(cg: ChannelGraph, group: Group, rng: np.random.Generator) -> np.ndarray:
    """L2 norm of each filter's weights, summed over every producer of the channel."""
    return _norm_scores(cg, group, 2)


@criterion("random")
def random(cg: ChannelGraph, group: Group, rng: np.random.Generator) -> np.ndarray:
    """Seeded random scores (a control for comparisons)."""
    return rng.random(group.size)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, sorted by index (ties keep the lower index)."""
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:k])
