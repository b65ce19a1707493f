"""Shape arithmetic, constants and reshaping kernels (shape data as int64 tensors)."""

from __future__ import annotations

import math

import numpy as np
import torch

from onnxprune.errors import UnsupportedOpError
from onnxprune.shim.dtypes import to_torch
from onnxprune.shim.ops._util import axis_of, ints, scalar
from onnxprune.shim.registry import op

Tensor = torch.Tensor


@op("Constant", 1)
def Constant(
    *,
    value: np.ndarray | None = None,
    value_float: float | None = None,
    value_floats: list[float] | None = None,
    value_int: int | None = None,
    value_ints: list[int] | None = None,
    sparse_value: object = None,
    value_string: str | None = None,
    value_strings: list[str] | None = None,
) -> Tensor:
    """Return the constant held by whichever ``value*`` attribute is set."""
    if value is not None:
        return to_torch(value)
    if value_float is not None:
        return torch.tensor(value_float, dtype=torch.float32)
    if value_floats is not None:
        return torch.tensor(value_floats, dtype=torch.float32)
    if value_int is not None:
        return torch.tensor(value_int, dtype=torch.int64)
    if value_ints is not None:
        return torch.tensor(value_ints, dtype=torch.int64)
    raise UnsupportedOpError("Constant holding a sparse tensor or strings is not supported")


@op("Shape", 1)
def Shape(data: Tensor, *, start: int = 0, end: int | None = None) -> Tensor:
    """Return dims ``start:end`` of data's shape as an int64 vector."""
    return torch.tensor(list(data.shape)[start:end], dtype=torch.int64, device=data.device)


@op("Size", 1)
def Size(data: Tensor) -> Tensor:
    """Return the number of elements as an int64 scalar."""
    return torch.tensor(data.numel(), dtype=torch.int64, device=data.device)


@op("Range", 11, frozen=(0, 1, 2))
def Range(start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
    """start, start + delta, ... up to (excluding) limit."""
    s, lim, d = scalar(start), scalar(limit), scalar(delta)
    n = max(math.ceil((lim - s) / d), 0)
    steps = torch.arange(n, dtype=start.dtype, device=start.device)
    return start.reshape(()) + steps * delta.reshape(())


@op("ConstantOfShape", 9)
def ConstantOfShape(input: Tensor, *, value: np.ndarray | None = None) -> Tensor:  # noqa: A002
    """Fill a tensor of shape ``input`` with ``value`` (float32 zero by default)."""
    fill = to_torch(value if value is not None else np.zeros(1, np.float32))
    return torch.full(
        ints(input), fill.reshape(-1)[0].item(), dtype=fill.dtype, device=input.device
    )


@op("Reshape", 5)
def Reshape(data: Tensor, shape: Tensor, *, allowzero: int = 0) -> Tensor:
    """Reshape; a 0 copies the input dim (unless allowzero) and -1 is inferred."""
    dims = ints(shape)
    if not allowzero:
        dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return data.reshape(dims)


@op("Flatten", 1)
def Flatten(input: Tensor, *, axis: int = 1) -> Tensor:  # noqa: A002
    """2-D view: dims before ``axis`` times dims from ``axis`` on."""
    ax = axis_of(axis, input.dim())
    return input.reshape(math.prod(input.shape[:ax]), math.prod(input.shape[ax:]))


def _squeeze(data: Tensor, axes: list[int]) -> Tensor:
    if not axes:
        return data.squeeze() if data.dim() else data
    dims = sorted(axis_of(a, data.dim()) for a in axes)
    return data.squeeze(tuple(dims))


@op("Squeeze", 1)
def Squeeze_v1(data: Tensor, *, axes: list[int] | None = None) -> Tensor:
    """Drop size-1 dims given by the ``axes`` attribute (all if absent; opset < 13)."""
    return _squeeze(data, list(axes or []))


@op("Squeeze", 13)
def Squeeze(data: Tensor, axes: Tensor | None = None) -> Tensor:
    """Drop size-1 dims given by the ``axes`` input (all if absent)."""
    return _squeeze(data, ints(axes))


def _unsqueeze(data: Tensor, axes: list[int]) -> Tensor:
    rank = data.dim() + len(axes)
    shape = list(data.shape)
    for a in sorted(axis_of(a, rank) for a in axes):
        shape.insert(a, 1)
    return data.reshape(shape)


@op("Unsqueeze", 1)
def Unsqueeze_v1(data: Tensor, *, axes: list[int]) -> Tensor:
    """Insert size-1 dims at the ``axes`` attribute (output positions; opset < 13)."""
    return _unsqueeze(data, list(axes))


@op("Unsqueeze", 13)
def Unsqueeze(data: Tensor, axes: Tensor) -> Tensor:
    """Insert size-1 dims at the ``axes`` input (output positions)."""
    return _unsqueeze(data, ints(axes))


@op("Expand", 8)
def Expand(input: Tensor, shape: Tensor) -> Tensor:  # noqa: A002
    """Broadcast ``input`` against ``shape`` (bidirectionally)."""
    out = torch.broadcast_shapes(tuple(input.shape), tuple(ints(shape)))
    return input.expand(out)


@op("Identity", 1)
def Identity(input: Tensor) -> Tensor:  # noqa: A002
    """Return the input unchanged."""
    return input


@op("Dropout", 7)
def Dropout_v7(data: Tensor, *, ratio: float = 0.5, is_test: int = 0) -> tuple[Tensor, Tensor]:
    """Inference dropout: the input unchanged and an all-true mask (opset < 12)."""
    return data, torch.ones_like(data, dtype=torch.bool)


@op("Dropout", 12, frozen=(1,))  # the ratio
def Dropout(
    data: Tensor,
    ratio: Tensor | None = None,
    training_mode: Tensor | None = None,
    *,
    seed: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Inference dropout: the input unchanged and an all-true mask."""
    if training_mode is not None and bool(scalar(training_mode)):
        raise UnsupportedOpError("Dropout with training_mode=true is not supported by the shim")
    return data, torch.ones_like(data, dtype=torch.bool)


@op("NonZero", 9)
def NonZero(X: Tensor) -> Tensor:
    """Return the indices of the non-zero elements, one row per dim."""
    return torch.nonzero(X).t().contiguous()
