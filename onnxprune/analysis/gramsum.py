"""A float64 Gram matrix summed from products, with thin updates batched into one matmul."""

from __future__ import annotations

import torch


class GramSum:
    """A symmetric float64 C×C sum of products L·Rᵀ, with thin updates batched into one matmul.

    Every update is one whose total is symmetric (a Gram GᵀG, or XᵀMX with M symmetric), so
    only the upper block triangle is formed and kept: C is split into blocks of about
    :data:`BLOCK` rows, each block row holds (and takes the products with) its own and the
    later columns, and :meth:`value` assembles the full matrix, copying the upper blocks onto
    the lower ones (the diagonal blocks are formed whole). With 4 blocks that is 5/8 of the
    flops and memory of the full matrix, with 8 blocks 9/16.

    Adding a rank-k update with small k (a classifier Gemm adds one row per sample, a gate
    gradient one per direction) reads and writes the whole C×C matrix for little work; such
    updates wait until :data:`FLUSH_ROWS` columns are pending and go in as one. (More would
    save little time and pin many small blocks in the heap: 32 rather than 256 took the peak
    RSS of a 24-sample ResNet-50 analysis from 1084 to 1004 MiB, at the same CPU time.)
    """

    FLUSH_ROWS = 32
    BLOCK = 128

    def __init__(self, size: int, device: torch.device) -> None:
        n = max(1, round(size / self.BLOCK))
        self._starts = [size * i // n for i in range(n)] + [size]
        self._rows = [  # block row [a, b): columns a..C
            torch.zeros(b - a, size - a, dtype=torch.float64, device=device)
            for a, b in zip(self._starts[:-1], self._starts[1:], strict=True)
        ]
        self.size = size
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._k = 0

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
        for a, b, row in zip(self._starts[:-1], self._starts[1:], self._rows, strict=True):
            row.addmm_(left[a:b], right[a:].T)

    def _flush(self) -> None:
        if self._pending:
            left = torch.cat([p[0] for p in self._pending], 1)
            right = torch.cat([p[1] for p in self._pending], 1)
            self._addmm(left, right)
        self._pending, self._k = [], 0

    def value(self) -> torch.Tensor:
        """Return the sum so far (pending updates included) as a full C×C matrix.

        With one block that is the running sum itself (do not edit it).
        """
        self._flush()
        if len(self._rows) == 1:
            return self._rows[0]
        full = torch.empty(self.size, self.size, dtype=self._rows[0].dtype,
                           device=self._rows[0].device)
        for a, b, row in zip(self._starts[:-1], self._starts[1:], self._rows, strict=True):
            full[a:b, a:] = row
            full[b:, a:b] = row[:, b - a :].T
        return full
