"""Accumulate a group's first-order Taylor statistics: gate gradients t[n, c] = ∂ℓ_n/∂m_c.

One gate m is shared by a group's roots, so t sums each root's share Σ_positions x·∂ℓ/∂x per
sample and direction; the group keeps mean |t| (the Taylor score) and tᵀt (the Gram the
analysis falls back to when no consumer weight reads the channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from onnxprune.analysis.gramsum import GramSum
from onnxprune.analysis.specs import RootSpec


@dataclass(frozen=True)
class TaylorStats:
    """Gate gradients t[n, c] = ∂ℓ_n/∂m_c summed over a group's roots: mean |t| and tᵀt."""

    rows: int
    abs_mean: np.ndarray
    gram: np.ndarray


def _per_sample_dot(x: torch.Tensor, g: torch.Tensor, axis: int, batch: int) -> torch.Tensor:
    """Σ over every axis but the batch and ``axis`` of x·g: ``[B, L]`` (no x·g temporary)."""
    if x.dim() >= 2 and x.shape[0] == batch and axis == x.dim() - 1:
        return torch.einsum("bpc,bpc->bc", x.reshape(batch, -1, x.shape[-1]),
                            g.reshape(batch, -1, g.shape[-1]))
    if x.dim() >= 3 and x.shape[0] == batch and axis == 1:
        if batch == 1:  # the fastest here; with more samples einsum copies both operands
            return torch.einsum("bcp,bcp->bc", x.flatten(2), g.flatten(2))
        return torch.linalg.vecdot(x.flatten(2), g.flatten(2))
    prod = (x * g).movedim(axis, -1)
    return prod.reshape(batch, -1, prod.shape[-1]).sum(1)


class _Owner:
    """Where a root's indices go in the group: all in order, or a subset by index."""

    def __init__(self, root: RootSpec, size: int, device: torch.device):
        owner = np.asarray(root.owner)
        keep = np.flatnonzero(owner >= 0)
        self.identity = len(owner) == size and np.array_equal(owner, np.arange(size))
        self.keep = torch.as_tensor(keep, device=device)
        self.to = torch.as_tensor(owner[keep], device=device)


class TaylorAccumulator:
    """Running gate-gradient sums of one group over all its roots (one shared gate)."""

    def __init__(self, roots: tuple[RootSpec, ...], size: int, device: torch.device):
        self.roots = roots
        self.size = size
        self.device = device
        self.gram = GramSum(size, device)
        self.abs_sum = torch.zeros(size, dtype=torch.float64, device=device)
        self.rows = 0
        self._t: torch.Tensor | None = None
        self._owners = {id(r): _Owner(r, size, device) for r in roots}

    def add_root(self, root: RootSpec, x: torch.Tensor, g: torch.Tensor, batch: int) -> None:
        """Add one root's share Σ_positions x·∂ℓ/∂x to the current direction."""
        per = _per_sample_dot(x.detach(), g, root.axis % x.dim(), batch).double()  # [B, L]
        own = self._owners[id(root)]
        if self._t is None:
            self._t = torch.zeros(batch, self.size, dtype=torch.float64, device=x.device)
        if own.identity:
            self._t += per
        else:
            self._t.index_add_(1, own.to, per.index_select(1, own.keep))

    def end_direction(self, batch: int) -> None:
        """Close a direction: t[n, c] summed over the roots goes into tᵀt and mean |t|."""
        t = self._t
        if t is None:
            t = torch.zeros(batch, self.size, dtype=torch.float64, device=self.device)
        self.gram.add(t.T, t.T)
        self.abs_sum += t.abs().sum(0)
        self.rows += batch
        self._t = None

    def result(self) -> TaylorStats:
        """Return the totals as numpy."""
        mean = (self.abs_sum / max(1, self.rows)).cpu().numpy()
        return TaylorStats(self.rows, mean, self.gram.value().cpu().numpy())
