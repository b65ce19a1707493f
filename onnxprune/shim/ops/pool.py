"""Pooling kernels (ONNX output-size rules, asymmetric pads and ceil_mode made explicit)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from onnxprune.shim.ops._util import onnx_pads_to_torch
from onnxprune.shim.ops.conv import resolve_pads
from onnxprune.shim.registry import op

Tensor = torch.Tensor

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _geometry(
    x: Tensor,
    k: Sequence[int],
    st: Sequence[int],
    dil: Sequence[int],
    pads: Sequence[int],
    ceil_mode: int,
) -> list[int]:
    """Return ONNX pads ``[heads..., tails...]`` such that an unpadded pool gives ONNX's size."""
    nd = len(k)
    heads, tails = [], []
    for i in range(nd):
        n, head, span = x.shape[2 + i], pads[i], (k[i] - 1) * dil[i] + 1
        num = n + head + pads[i + nd] - span
        out = num // st[i] + 1
        if ceil_mode:
            out = math.ceil(num / st[i]) + 1
            if (out - 1) * st[i] >= n + head:  # the last window must start inside the input
                out -= 1
        heads.append(head)
        tails.append((out - 1) * st[i] + span - n - head)
    return heads + tails


def _setup(
    X: Tensor,
    kernel_shape: list[int],
    strides: list[int] | None,
    dilations: list[int] | None,
    auto_pad: str,
    pads: list[int] | None,
    ceil_mode: int,
) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    nd = X.dim() - 2
    st = strides or [1] * nd
    dil = dilations or [1] * nd
    declared = resolve_pads(auto_pad, list(X.shape[2:]), kernel_shape, st, dil, pads)
    return kernel_shape, st, dil, declared, _geometry(X, kernel_shape, st, dil, declared, ceil_mode)


@op("MaxPool", 1, n_out=True)
def MaxPool(
    X: Tensor,
    *,
    kernel_shape: list[int],
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: list[int] | None = None,
    pads: list[int] | None = None,
    storage_order: int = 0,
    strides: list[int] | None = None,
    n_out: int = 1,
) -> Tensor | tuple[Tensor, Tensor]:
    """Max pooling; the optional Indices output is flattened over N, C and the unpadded input."""
    k, st, dil, _, geo = _setup(X, kernel_shape, strides, dilations, auto_pad, pads, ceil_mode)
    xp = F.pad(X, onnx_pads_to_torch(geo), value=-math.inf)
    nd = len(k)
    if n_out < 2:
        return _MAX[nd](xp, k, st, 0, dil)
    y, idx = _MAX[nd](xp, k, st, 0, dil, return_indices=True)
    return y, _onnx_indices(idx, X.shape, xp.shape, geo[:nd], storage_order)


def _onnx_indices(
    idx: Tensor, shape: torch.Size, padded: torch.Size, heads: list[int], storage_order: int
) -> Tensor:
    spatial, pspatial = list(shape[2:]), list(padded[2:])
    coords, rest = [], idx
    for size in reversed(pspatial):
        coords.append(rest % size)
        rest = torch.div(rest, size, rounding_mode="floor")
    coords = [c - h for c, h in zip(reversed(coords), heads, strict=True)]
    order = range(len(spatial)) if not storage_order else reversed(range(len(spatial)))
    flat = torch.zeros_like(idx)
    for i in order:
        flat = flat * spatial[i] + coords[i]
    n, c = shape[0], shape[1]
    base = torch.arange(n * c, device=idx.device).reshape(n, c, *([1] * len(spatial)))
    return flat + base * math.prod(spatial)


def _window_sum(x: Tensor, k: list[int], st: list[int], dil: list[int]) -> Tensor:
    nd = len(k)
    if all(d == 1 for d in dil):
        return _AVG[nd](x, k, st, 0) * math.prod(k)
    n, c = x.shape[:2]
    ones = torch.ones(1, 1, *k, dtype=x.dtype, device=x.device)
    y = _CONV[nd](x.reshape(n * c, 1, *x.shape[2:]), ones, None, st, 0, dil)
    return y.reshape(n, c, *y.shape[2:])


@op("AveragePool", 7)
def AveragePool(
    X: Tensor,
    *,
    kernel_shape: list[int],
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    dilations: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Tensor:
    """Average pooling; the divisor counts input cells (and declared pads if asked)."""
    k, st, dil, declared, geo = _setup(
        X, kernel_shape, strides, dilations, auto_pad, pads, ceil_mode
    )
    total = _window_sum(F.pad(X, onnx_pads_to_torch(geo)), k, st, dil)
    mask = torch.ones(1, 1, *X.shape[2:], dtype=X.dtype, device=X.device)
    if count_include_pad:
        nd = len(k)
        mask = F.pad(mask, onnx_pads_to_torch(declared), value=1.0)
        extra = [0] * nd + [t - d for t, d in zip(geo[nd:], declared[nd:], strict=True)]
        mask = F.pad(mask, onnx_pads_to_torch(extra))
    else:
        mask = F.pad(mask, onnx_pads_to_torch(geo))
    return total / _window_sum(mask, k, st, dil)


@op("GlobalAveragePool", 1)
def GlobalAveragePool(X: Tensor) -> Tensor:
    """Mean over all spatial dims, kept as size-1 dims."""
    return X.mean(dim=tuple(range(2, X.dim())), keepdim=True)


@op("GlobalMaxPool", 1)
def GlobalMaxPool(X: Tensor) -> Tensor:
    """Max over all spatial dims, kept as size-1 dims."""
    return X.amax(dim=tuple(range(2, X.dim())), keepdim=True)
