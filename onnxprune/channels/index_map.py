"""Index maps: how the indices of one channel space correspond to those of another.

Each map is a small frozen value that lists the (source index, target index) pairs it ties
together. The channel graph unions those pairs element by element, so maps compose by
construction and every map is usable in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Identity:
    """Index i of the source is index i of the target (same length)."""

    def pairs(self, n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the tied (source, target) index arrays."""
        if n_src != n_dst:
            raise ValueError(f"Identity map between lengths {n_src} and {n_dst}")
        idx = np.arange(n_src, dtype=np.int64)
        return idx, idx


@dataclass(frozen=True)
class Offset:
    """The source is a slice of the target starting at ``offset`` (Concat input, Split output)."""

    offset: int

    def pairs(self, n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the tied (source, target) index arrays."""
        if self.offset < 0 or self.offset + n_src > n_dst:
            raise ValueError(f"Offset {self.offset}+{n_src} outside target length {n_dst}")
        src = np.arange(n_src, dtype=np.int64)
        return src, src + self.offset


@dataclass(frozen=True)
class Merge:
    """Source index c owns target indices ``o*n_src*inner + c*inner + j`` (Flatten/Reshape).

    ``inner`` is the product of the dims merged after the channel axis (H*W for a Flatten of
    an NCHW map), ``outer`` the product of those merged before it.
    """

    inner: int = 1
    outer: int = 1

    def pairs(self, n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the tied (source, target) index arrays."""
        if n_src * self.inner * self.outer != n_dst:
            raise ValueError(
                f"Merge(inner={self.inner}, outer={self.outer}) of {n_src} does not give {n_dst}"
            )
        dst = np.arange(n_dst, dtype=np.int64)
        return (dst // self.inner) % n_src, dst


@dataclass(frozen=True)
class Grouped:
    """Grouped convolution: all channels of one conv group, input and output, are tied.

    Input channel c is in group ``c // in_per_group``; output o in ``o // out_per_group``.
    Depthwise conv with multiplier 1 is ``Grouped(1, 1)`` (an identity).
    """

    in_per_group: int
    out_per_group: int

    def pairs(self, n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the tied (source, target) index arrays."""
        groups = n_src // self.in_per_group
        if groups * self.in_per_group != n_src or groups * self.out_per_group != n_dst:
            raise ValueError(f"Grouped map does not fit {n_src} -> {n_dst}")
        src = np.arange(n_src, dtype=np.int64)
        dst = np.arange(n_dst, dtype=np.int64)
        src_to = (src // self.in_per_group) * self.out_per_group
        dst_from = (dst // self.out_per_group) * self.in_per_group
        return np.concatenate([src, dst_from]), np.concatenate([src_to, dst])


IndexMap = Identity | Offset | Merge | Grouped
