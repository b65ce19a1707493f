"""Channel importance criteria (higher score = keep), registered by name.

Weight criteria (``l1``, ``l2``, ``random``) read only the model. Analysis criteria
(``effective``, ``taylor``) read the group's :class:`~onnxprune.analysis.GroupAnalysis`:

- ``effective``: pivoted Cholesky on the group's Gram matrix K_g = G_gᵀG_g, i.e. column-pivoted
  QR on the gradient matrix G_g. Each step keeps the channel with the most gradient energy not
  already explained by the channels kept before it, so duplicates and linear combinations of
  kept channels come last, and the first w pivots span as much of G_g's column space as any w
  channels the greedy can find. The score is the pivot order (the first pivot scores highest).
- ``taylor``: mean |∂ℓ/∂m_c| over samples of a gate m_c on the channel (first-order Taylor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from onnxprune.channels.graph import ChannelGraph, Group
from onnxprune.errors import InputError

if TYPE_CHECKING:
    from onnxprune.analysis import GroupAnalysis

Criterion = Callable[[ChannelGraph, Group, np.random.Generator, "GroupAnalysis | None"], np.ndarray]
CRITERIA: dict[str, Criterion] = {}
NEEDS_ANALYSIS: set[str] = set()
"""Criteria that need the effective filter analysis (and so calibration data)."""


def criterion(name: str, *, analysis: bool = False) -> Callable[[Criterion], Criterion]:
    """Register a criterion under ``name`` (twice is an error)."""

    def wrap(fn: Criterion) -> Criterion:
        if name in CRITERIA:
            raise RuntimeError(f"criterion {name} registered twice")
        CRITERIA[name] = fn
        if analysis:
            NEEDS_ANALYSIS.add(name)
        return fn

    return wrap


_CHUNK = 1 << 22
"""Weight elements converted to float64 at once by the norm criteria."""


def _norm_scores(cg: ChannelGraph, group: Group, order: int) -> np.ndarray:
    """Sum over the group's roots of each filter's L_order weight norm."""
    scores = np.zeros(group.size, dtype=np.float64)
    for ref in group.roots:
        w = cg.ctx.const(ref.weight.name)
        if w is None:
            continue
        w = np.moveaxis(w, ref.weight.axis, 0)
        per = np.empty(w.shape[0], dtype=np.float64)
        step = max(1, _CHUNK // max(1, w[0].size))  # float64 copies a few filters at a time
        for i in range(0, w.shape[0], step):
            part = np.abs(w[i : i + step].astype(np.float64)).reshape(len(w[i : i + step]), -1)
            per[i : i + step] = part.sum(1) if order == 1 else np.sqrt((part**2).sum(1))
        owner = group.members[ref.space]
        if len(owner) != len(per):
            continue
        ok = owner >= 0
        np.add.at(scores, owner[ok], per[ok])
    return scores


@criterion("l1")
def l1(
    cg: ChannelGraph, group: Group, rng: np.random.Generator, ga: GroupAnalysis | None
) -> np.ndarray:
    """L1 norm of each filter's weights, summed over every producer of the channel."""
    return _norm_scores(cg, group, 1)


@criterion("l2")
def l2(
    cg: ChannelGraph, group: Group, rng: np.random.Generator, ga: GroupAnalysis | None
) -> np.ndarray:
    """L2 norm of each filter's weights, summed over every producer of the channel."""
    return _norm_scores(cg, group, 2)


@criterion("random")
def random(
    cg: ChannelGraph, group: Group, rng: np.random.Generator, ga: GroupAnalysis | None
) -> np.ndarray:
    """Seeded random scores (a control for comparisons)."""
    return rng.random(group.size)


@criterion("effective", analysis=True)
def effective(
    cg: ChannelGraph, group: Group, rng: np.random.Generator, ga: GroupAnalysis | None
) -> np.ndarray:
    """Pivot order of a pivoted Cholesky of K_g (most independent energy first)."""
    order = pivot_order(_needs(ga, "gram", group))
    scores = np.empty(group.size, dtype=np.float64)
    scores[order] = np.arange(group.size, 0, -1)
    return scores


@criterion("taylor", analysis=True)
def taylor(
    cg: ChannelGraph, group: Group, rng: np.random.Generator, ga: GroupAnalysis | None
) -> np.ndarray:
    """Mean |∂ℓ/∂m_c| of a gate on each channel (first-order Taylor)."""
    return np.asarray(_needs(ga, "taylor", group), dtype=np.float64)


def _needs(ga: GroupAnalysis | None, what: str, group: Group) -> np.ndarray:
    value = None if ga is None else getattr(ga, what)
    if value is None:
        raise InputError(
            f"group {group.id} has no analysis ({what}); criteria effective/taylor need "
            "calibration data: pass --data"
        )
    return value


def pivot_order(gram: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Channel order of a greedy pivoted Cholesky of a PSD matrix.

    At each step the channel with the largest residual diagonal (energy not explained by the
    channels already chosen) is taken. Once every residual is at round-off (≤ ``tol``·trace)
    the rest follow by their own energy K_cc, highest first.
    """
    return pivoted_cholesky(gram, tol)[0]


def pivoted_cholesky(gram: np.ndarray, tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Pivot order and each channel's residual energy when it was taken (see pivot_order)."""
    k = np.array(gram, dtype=np.float64)
    n = k.shape[0]
    diag = np.diag(k).copy()
    resid = diag.copy()
    floor = tol * max(float(diag.sum()), np.finfo(float).tiny)
    factors = np.zeros((n, n))
    order: list[int] = []
    taken = np.zeros(n)
    free = np.ones(n, dtype=bool)
    for step in range(n):
        cand = np.where(free, resid, -np.inf)
        i = int(np.argmax(cand))
        if cand[i] <= floor:
            rest = np.flatnonzero(free)
            order.extend(rest[np.argsort(-diag[rest], kind="stable")].tolist())
            taken[rest] = np.clip(cand[rest], 0.0, None)
            break
        order.append(i)
        taken[i] = cand[i]
        free[i] = False
        col = (k[:, i] - factors[:, :step] @ factors[i, :step]) / np.sqrt(cand[i])
        col[~free] = 0.0
        factors[:, step] = col
        resid = resid - col**2
    return np.asarray(order, dtype=np.int64), taken


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the indices of the ``k`` highest scores, sorted (ties keep the lower index)."""
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:k])
