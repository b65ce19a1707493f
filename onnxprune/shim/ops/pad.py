"""Pad kernels: constant, reflect, edge and wrap modes, with optional axes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from onnxprune.errors import UnsupportedOpError
from onnxprune.shim.ops._util import axis_of, ints, onnx_pads_to_torch, scalar
from onnxprune.shim.registry import op

Tensor = torch.Tensor


def _source_index(n: int, begin: int, end: int, mode: str, device: torch.device) -> Tensor:
    """Index into an axis of length ``n`` for every position of its padded (or cropped) copy."""
    i = torch.arange(-begin, n + end, device=device)
    if mode == "edge":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return torch.remainder(i, n)
    if mode == "reflect":
        if n == 1:
            return torch.zeros_like(i)
        period = 2 * (n - 1)
        i = torch.remainder(i, period)
        return torch.where(i >= n, period - i, i)
    raise UnsupportedOpError(f"Pad mode '{mode}' is not supported; use constant/reflect/edge/wrap")


def _pad(x: Tensor, pads: list[int], mode: str, value: float, axes: list[int]) -> Tensor:
    rank = x.dim()
    axes = [axis_of(a, rank) for a in axes] or list(range(rank))
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[a + rank] = pads[i], pads[i + len(axes)]
    if mode == "constant":
        return F.pad(x, onnx_pads_to_torch(full), value=value)
    for a in range(rank):
        if full[a] or full[a + rank]:
            x = x.index_select(
                a, _source_index(x.shape[a], full[a], full[a + rank], mode, x.device)
            )
    return x


@op("Pad", 2)
def Pad_v2(data: Tensor, *, pads: list[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad with attribute pads and value (opset < 11)."""
    return _pad(data, list(pads), mode, value, [])


@op("Pad", 11)
def Pad(
    data: Tensor,
    pads: Tensor,
    constant_value: Tensor | None = None,
    axes: Tensor | None = None,
    *,
    mode: str = "constant",
) -> Tensor:
    """Pad (negative pads crop) with input pads, constant value and axes."""
    value = scalar(constant_value) if constant_value is not None else 0
    return _pad(data, ints(pads), mode, value, ints(axes))
