"""Indexing kernels: gather, scatter, cumulative sums and triangles."""

from __future__ import annotations

import torch

from onnxprune.errors import UnsupportedOpError
from onnxprune.shim.ops._util import axis_of, scalar
from onnxprune.shim.registry import op

Tensor = torch.Tensor


def _wrap(indices: Tensor, size: int | Tensor) -> Tensor:
    """Make negative indices count from the end."""
    idx = indices.to(torch.int64)
    return torch.where(idx < 0, idx + size, idx)


@op("Gather", 1)
def Gather(data: Tensor, indices: Tensor, *, axis: int = 0) -> Tensor:
    """Take entries of ``data`` along ``axis`` (output dims: before + indices + after)."""
    ax = axis_of(axis, data.dim())
    idx = _wrap(indices, data.shape[ax])
    taken = data.index_select(ax, idx.reshape(-1))
    return taken.reshape((*data.shape[:ax], *idx.shape, *data.shape[ax + 1 :]))


@op("GatherElements", 11)
def GatherElements(data: Tensor, indices: Tensor, *, axis: int = 0) -> Tensor:
    """out[i][j] = data[indices[i][j]][j] (for axis 0), torch.gather semantics."""
    ax = axis_of(axis, data.dim())
    return torch.gather(data, ax, _wrap(indices, data.shape[ax]))


def _nd_index(data: Tensor, indices: Tensor, batch_dims: int) -> tuple[Tensor, ...]:
    lead = indices.dim() - 1
    parts: list[Tensor] = []
    for i in range(batch_dims):
        shape = [1] * lead
        shape[i] = data.shape[i]
        parts.append(torch.arange(data.shape[i], device=data.device).reshape(shape))
    for j in range(indices.shape[-1]):
        parts.append(_wrap(indices[..., j], data.shape[batch_dims + j]))
    return tuple(parts)


@op("GatherND", 11)
def GatherND(data: Tensor, indices: Tensor, *, batch_dims: int = 0) -> Tensor:
    """Gather slices of ``data`` addressed by the last dim of ``indices``."""
    return data[_nd_index(data, indices, batch_dims)]


@op("ScatterND", 11)
def ScatterND(data: Tensor, indices: Tensor, updates: Tensor, *, reduction: str = "none") -> Tensor:
    """Copy of ``data`` with the slices addressed by ``indices`` set (or added) to ``updates``."""
    if reduction not in ("none", "add"):
        raise UnsupportedOpError(f"ScatterND reduction '{reduction}' is not supported")
    return data.index_put(_nd_index(data, indices, 0), updates, accumulate=reduction == "add")


_SCATTER_REDUCE = {"mul": "prod", "max": "amax", "min": "amin", "add": "sum"}


@op("ScatterElements", 11)
def ScatterElements(
    data: Tensor, indices: Tensor, updates: Tensor, *, axis: int = 0, reduction: str = "none"
) -> Tensor:
    """Copy of ``data`` with ``updates`` written (or reduced) at ``indices`` along ``axis``."""
    ax = axis_of(axis, data.dim())
    idx = _wrap(indices, data.shape[ax])
    if reduction == "none":
        return data.scatter(ax, idx, updates)
    return data.scatter_reduce(ax, idx, updates, _SCATTER_REDUCE[reduction], include_self=True)


@op("CumSum", 11)
def CumSum(x: Tensor, axis: Tensor, *, exclusive: int = 0, reverse: int = 0) -> Tensor:
    """Cumulative sum along ``axis``, optionally exclusive and/or reversed."""
    ax = axis_of(int(scalar(axis)), x.dim())
    y = x.flip(ax) if reverse else x
    out = torch.cumsum(y, dim=ax)
    if exclusive:
        head = torch.zeros_like(out.narrow(ax, 0, 1))
        out = torch.cat([head, out.narrow(ax, 0, out.shape[ax] - 1)], dim=ax)
    return out.flip(ax) if reverse else out


@op("Trilu", 14)
def Trilu(input: Tensor, k: Tensor | None = None, *, upper: int = 1) -> Tensor:  # noqa: A002
    """Upper (or lower) triangle of the last two dims, from diagonal ``k``."""
    diag = int(scalar(k)) if k is not None else 0
    return torch.triu(input, diag) if upper else torch.tril(input, diag)
