"""Small helpers shared by the shim's kernels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["axis_of", "ints", "onnx_pads_to_torch", "same_pads", "scalar"]


def ints(t: torch.Tensor | Sequence[int] | None) -> list[int]:
    """Return an int64 tensor (shape data) or sequence as a Python list of ints."""
    if t is None:
        return []
    if isinstance(t, torch.Tensor):
        return [int(v) for v in t.detach().reshape(-1).tolist()]
    return [int(v) for v in t]


def scalar(t: torch.Tensor | float | int) -> float | int:
    """Return a one-element tensor (or number) as a Python number."""
    if isinstance(t, torch.Tensor):
        return t.detach().reshape(-1)[0].item()
    return t


def axis_of(axis: int, rank: int) -> int:
    """Return ``axis`` made non-negative for a tensor of ``rank`` dims."""
    return axis + rank if axis < 0 else axis


def onnx_pads_to_torch(pads: Sequence[int]) -> list[int]:
    """Turn ONNX pads ``[b1, b2, ..., e1, e2, ...]`` into ``F.pad``'s last-dim-first pairs."""
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [int(pads[i]), int(pads[i + n])]
    return out


def same_pads(
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    *,
    lower: bool,
) -> list[int]:
    """Return ONNX pads for ``auto_pad`` SAME_UPPER (``lower=False``) or SAME_LOWER."""
    begins, ends = [], []
    for n, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
        out = -(-n // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
        small, big = total // 2, total - total // 2
        begins.append(big if lower else small)
        ends.append(small if lower else big)
    return begins + ends
