"""A float64 Gram matrix summed from products, with thin updates batched into one matmul."""

from __future__ import annotations

import torch


class GramSum:
    """A float64 C×C sum of products L·Rᵀ, with thin updates batched into one matmul.

    Adding a rank-k update with small k (a classifier Gemm adds one row per sample, a gate
    gradient one per direction) reads and writes the whole C×C matrix for little work; such
    updates wait until :data:`FLUSH_ROWS` columns are pending and go in as one. (More would
    save little time and pin many small blocks in the heap: 32 rather than 256 took the peak
    RSS of a 24-sample ResNet-50 analysis from 1084 to 1004 MiB, at the same CPU time.)
    """

    FLUSH_ROWS = 32

    def __init__(self, size: int, device: torch.device) -> None:
        self._sum = torch.zeros(size, size, dtype=torch.float64, device=device)
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._k = 0

    def add(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Add ``left @ right.T`` (both ``[C, k]`` float64)."""
        if left.shape[1] >= self.FLUSH_ROWS:
            self._sum.addmm_(left, right.T)
            return
        self._pending.append((left, right))
        self._k += left.shape[1]
        if self._k >= self.FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            left = torch.cat([p[0] for p in self._pending], 1)
            right = torch.cat([p[1] for p in self._pending], 1)
            self._sum.addmm_(left, right.T)
        self._pending, self._k = [], 0

    def value(self) -> torch.Tensor:
        """Return the sum so far (pending updates included)."""
        self._flush()
        return self._sum
