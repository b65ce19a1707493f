"""Reduction, arg-reduction and top-k kernels."""

from __future__ import annotations

import torch

from onnxprune.shim.ops._util import axis_of, ints, scalar
from onnxprune.shim.registry import op

Tensor = torch.Tensor


def _dims(x: Tensor, axes: list[int], noop_with_empty_axes: int) -> tuple[int, ...] | None:
    """Axes to reduce; ``None`` means leave the tensor unchanged."""
    if not axes:
        return None if noop_with_empty_axes else tuple(range(x.dim()))
    return tuple(sorted({axis_of(a, x.dim()) for a in axes}))


def _reduce(name: str, x: Tensor, axes: list[int], keepdims: int, noop: int) -> Tensor:
    dims = _dims(x, axes, noop)
    if dims is None:  # like onnxruntime, a no-op reduction still applies its elementwise part
        return _NOOP.get(name, lambda t: t)(x)
    keep = bool(keepdims)
    if not dims:
        return x
    if name == "prod":
        out = x
        for d in reversed(dims):
            out = out.prod(dim=d, keepdim=keep)
        return out
    if name == "l2":
        return torch.sqrt((x * x).sum(dim=dims, keepdim=keep))
    if name == "l1":
        return x.abs().sum(dim=dims, keepdim=keep)
    if name == "sumsquare":
        return (x * x).sum(dim=dims, keepdim=keep)
    if name == "logsumexp":
        return torch.logsumexp(x, dim=dims, keepdim=keep)
    if name == "logsum":
        return torch.log(x.sum(dim=dims, keepdim=keep))
    return getattr(x, name)(dim=dims, keepdim=keep)


_NOOP = {"l1": torch.abs, "l2": torch.abs, "sumsquare": torch.square, "logsum": torch.log}

_REDUCERS = {
    "ReduceMean": ("mean", 18),
    "ReduceMax": ("amax", 18),
    "ReduceMin": ("amin", 18),
    "ReduceSum": ("sum", 13),
    "ReduceProd": ("prod", 18),
    "ReduceL1": ("l1", 18),
    "ReduceL2": ("l2", 18),
    "ReduceSumSquare": ("sumsquare", 18),
    "ReduceLogSumExp": ("logsumexp", 18),
    "ReduceLogSum": ("logsum", 18),
}


def _attr_axes_kernel(op_type: str, name: str):  # noqa: ANN202
    def kernel(data: Tensor, *, axes: list[int] | None = None, keepdims: int = 1) -> Tensor:
        return _reduce(name, data, list(axes or []), keepdims, 0)

    kernel.__name__ = kernel.__qualname__ = f"{op_type}_v1"
    kernel.__doc__ = f"{op_type} over the ``axes`` attribute (all if absent)."
    return kernel


def _input_axes_kernel(op_type: str, name: str):  # noqa: ANN202
    def kernel(
        data: Tensor,
        axes: Tensor | None = None,
        *,
        keepdims: int = 1,
        noop_with_empty_axes: int = 0,
    ) -> Tensor:
        return _reduce(name, data, ints(axes), keepdims, noop_with_empty_axes)

    kernel.__name__ = kernel.__qualname__ = op_type
    kernel.__doc__ = f"{op_type} over the ``axes`` input (all, or none if asked, when empty)."
    return kernel


for _op_type, (_name, _since) in _REDUCERS.items():
    op(_op_type, 1)(_attr_axes_kernel(_op_type, _name))
    op(_op_type, _since)(_input_axes_kernel(_op_type, _name))


def _arg(x: Tensor, axis: int, keepdims: int, last: int, largest: bool) -> Tensor:
    ax = axis_of(axis, x.dim())
    src = x.flip(ax) if last else x
    idx = (
        torch.argmax(src, dim=ax, keepdim=True)
        if largest
        else torch.argmin(src, dim=ax, keepdim=True)
    )
    if last:
        idx = x.shape[ax] - 1 - idx
    return idx if keepdims else idx.squeeze(ax)


@op("ArgMax", 1)
def ArgMax(data: Tensor, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Tensor:
    """Index of the largest element along ``axis`` (first or last on ties)."""
    return _arg(data, axis, keepdims, select_last_index, True)


@op("ArgMin", 1)
def ArgMin(data: Tensor, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Tensor:
    """Index of the smallest element along ``axis`` (first or last on ties)."""
    return _arg(data, axis, keepdims, select_last_index, False)


@op("TopK", 1)
def TopK_v1(X: Tensor, *, k: int, axis: int = -1) -> tuple[Tensor, Tensor]:
    """Take the ``k`` largest values along ``axis`` and their indices (attribute k)."""
    values, indices = torch.topk(X, k, dim=axis, largest=True, sorted=True)
    return values, indices


@op("TopK", 10)
def TopK(
    X: Tensor,
    K: Tensor,
    *,
    axis: int = -1,
    largest: int = 1,
    sorted: int = 1,  # noqa: A002
) -> tuple[Tensor, Tensor]:
    """Take the ``K`` largest (or smallest) values along ``axis`` and their indices."""
    values, indices = torch.topk(X, int(scalar(K)), dim=axis, largest=bool(largest), sorted=True)
    return values, indices
