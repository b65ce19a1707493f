"""A float64 Gram matrix summed from products, with thin updates batched into one matmul."""

from __future__ import annotations

import torch


class GramSum:
    """A symmetric float64 C×C sum of products L·Rᵀ, with thin updates batched into one matmul.

    Every update is one whose total is symmetric (a Gram GᵀG, or XᵀMX with M symmetric), so
    only the upper block triangle is formed: C is split into blocks of about :data:`BLOCK`
    rows, each block row takes the products with its own and the later columns, and
    :meth:`value` copies the upper blocks onto the lower ones (the diagonal blocks are formed
    whole). With 4 blocks that is 5/8 of the flops of the full product, with 8 blocks 9/16.

    Adding a rank-k update with small k (a classifier Gemm adds one row per sample, a gate
    gradient one per direction) reads and writes the whole C×C matrix for little work; such
    updates wait until :data:`FLUSH_ROWS` columns are pending and go in as one. (More would
    save little time and pin many small blocks in the heap: 32 rather than 256 took the peak
    RSS of a 24-sample ResNet-50 analysis from 1084 to 1004 MiB, at the same CPU time.)
    """

    FLUSH_ROWS = 32
    BLOCK = 256

    def __init__(self, size: int, device: torch.device) -> None:
        self._sum = torch.zeros(size, size, dtype=torch.float64, device=device)
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._k = 0
        n = max(1, round(size / self.BLOCK))
        self._starts = [size * i // n for i in range(n)] + [size]

    def add(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Add ``left @ right.T`` (both ``[C, k]`` float64; the total must be symmetric)."""
        if left.shape[1] >= self.FLUSH_ROWS:
            self._addmm(left, right)
            return
        self._pending.append((left, right))
        self._k += left.shape[1]
        if self._k >= self.FLUSH_ROWS:
            self._flush()

    def _addmm(self, left: torch.Tensor, right: torch.Tensor) -> None:
        s = self._starts
        if len(s) == 2:
            self._sum.addmm_(left, right.T)
            return
        for a, b in zip(s[:-1], s[1:], strict=True):
            self._sum[a:b, a:].addmm_(left[a:b], right[a:].T)

    def _flush(self) -> None:
        if self._pending:
            left = torch.cat([p[0] for p in self._pending], 1)
            right = torch.cat([p[1] for p in self._pending], 1)
            self._addmm(left, right)
        self._pending, self._k = [], 0

    def value(self) -> torch.Tensor:
        """Return the sum so far (pending updates included), both triangles filled."""
        self._flush()
        s = self._starts
        for a, b in zip(s[1:-1], s[2:], strict=True):  # block column [a, b): rows above a
            self._sum[a:b, :a] = self._sum[:a, a:b].T
        return self._sum
