"""Tensor manipulation kernels: concat, split, slice, transpose, tile."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from onnxprune.shim.ops._util import axis_of, ints
from onnxprune.shim.registry import op

Tensor = torch.Tensor
_BIG = 2**62


@op("Concat", 4)
def Concat(*inputs: Tensor, axis: int) -> Tensor:
    """Join the inputs along ``axis``."""
    return torch.cat(inputs, dim=axis)


def _split(x: Tensor, axis: int, sizes: Sequence[int], parts: int) -> tuple[Tensor, ...]:
    if sizes:
        return tuple(torch.split(x, list(sizes), dim=axis))
    # Equal parts; with num_outputs (opset 18) the last part may be smaller.
    chunk = math.ceil(x.shape[axis] / parts)
    return tuple(torch.split(x, chunk, dim=axis))


@op("Split", 2, n_out=True)
def Split_v2(
    input: Tensor,
    *,
    axis: int = 0,
    split: list[int] | None = None,
    n_out: int = 1,  # noqa: A002
) -> tuple[Tensor, ...]:
    """Split along ``axis`` by the ``split`` attribute, or equally (opset < 13)."""
    return _split(input, axis, split or [], n_out)


@op("Split", 13, n_out=True)
def Split_v13(
    input: Tensor,
    split: Tensor | None = None,
    *,
    axis: int = 0,
    n_out: int = 1,  # noqa: A002
) -> tuple[Tensor, ...]:
    """Split along ``axis`` by the ``split`` input, or equally (opset 13-17)."""
    return _split(input, axis, ints(split), n_out)


@op("Split", 18, n_out=True)
def Split(
    input: Tensor,  # noqa: A002
    split: Tensor | None = None,
    *,
    axis: int = 0,
    num_outputs: int | None = None,
    n_out: int = 1,
) -> tuple[Tensor, ...]:
    """Split along ``axis`` by the ``split`` input, or into ``num_outputs`` parts."""
    return _split(input, axis, ints(split), num_outputs or n_out)


def _slice_axis(x: Tensor, ax: int, start: int, end: int, step: int) -> Tensor:
    n = x.shape[ax]
    start = start + n if start < 0 else start
    end = end + n if end < 0 else end
    if step > 0:
        s, e = min(max(start, 0), n), min(max(end, 0), n)
        index: list[slice] = [slice(None)] * ax + [slice(s, e, step)]
        return x[tuple(index)]
    s, e = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
    idx = torch.arange(s, e, step, device=x.device)
    return x.index_select(ax, idx)


def _slice(
    x: Tensor, starts: list[int], ends: list[int], axes: list[int], steps: list[int]
) -> Tensor:
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        end = max(min(end, _BIG), -_BIG)
        x = _slice_axis(x, axis_of(axis, x.dim()), start, end, step)
    return x


@op("Slice", 1)
def Slice_v1(
    data: Tensor, *, starts: list[int], ends: list[int], axes: list[int] | None = None
) -> Tensor:
    """Slice with attribute bounds (opset < 10)."""
    return _slice(data, list(starts), list(ends), list(axes or []), [])


@op("Slice", 10)
def Slice(
    data: Tensor,
    starts: Tensor,
    ends: Tensor,
    axes: Tensor | None = None,
    steps: Tensor | None = None,
) -> Tensor:
    """Slice with input bounds, negative steps walking backwards."""
    return _slice(data, ints(starts), ints(ends), ints(axes), ints(steps))


@op("Transpose", 1)
def Transpose(data: Tensor, *, perm: list[int] | None = None) -> Tensor:
    """Permute dims (reverse them if ``perm`` is absent)."""
    return data.permute(list(perm) if perm else list(reversed(range(data.dim()))))


@op("Tile", 6)
def Tile(input: Tensor, repeats: Tensor) -> Tensor:  # noqa: A002
    """Repeat the tensor ``repeats[i]`` times along each dim."""
    return input.repeat(ints(repeats))


@op("DepthToSpace", 1)
def DepthToSpace(input: Tensor, *, blocksize: int, mode: str = "DCR") -> Tensor:  # noqa: A002
    """Move channel blocks into spatial blocks (DCR or CRD order)."""
    n, c, h, w = input.shape
    b = blocksize
    if mode == "CRD":
        y = input.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        y = input.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@op("SpaceToDepth", 1)
def SpaceToDepth(input: Tensor, *, blocksize: int) -> Tensor:  # noqa: A002
    """Move spatial blocks into channels."""
    n, c, h, w = input.shape
    b = blocksize
    y = input.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)
