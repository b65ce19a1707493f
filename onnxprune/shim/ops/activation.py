"""Activation, clipping and softmax kernels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from onnxprune.shim.ops._util import axis_of
from onnxprune.shim.registry import op

Tensor = torch.Tensor
_FLT_MAX = 3.4028234663852886e38


@op("Relu", 6)
def Relu(X: Tensor) -> Tensor:
    """max(X, 0)."""
    return torch.relu(X)


@op("LeakyRelu", 6)
def LeakyRelu(X: Tensor, *, alpha: float = 0.01) -> Tensor:
    """X if X >= 0 else alpha * X."""
    return F.leaky_relu(X, alpha)


@op("PRelu", 7)
def PRelu(X: Tensor, slope: Tensor) -> Tensor:
    """X if X >= 0 else slope * X (slope broadcast to X)."""
    return torch.where(X < 0, X * slope, X)


@op("ThresholdedRelu", 10)
def ThresholdedRelu(X: Tensor, *, alpha: float = 1.0) -> Tensor:
    """X if X > alpha else 0."""
    return torch.where(X > alpha, X, torch.zeros_like(X))


@op("Sigmoid", 6)
def Sigmoid(X: Tensor) -> Tensor:
    """1 / (1 + exp(-X))."""
    return torch.sigmoid(X)


@op("HardSigmoid", 6)
def HardSigmoid(X: Tensor, *, alpha: float = 0.2, beta: float = 0.5) -> Tensor:
    """clip(alpha * X + beta, 0, 1)."""
    return torch.clamp(X * alpha + beta, 0.0, 1.0)


@op("HardSwish", 14)
def HardSwish(X: Tensor) -> Tensor:
    """X * clip(X / 6 + 1/2, 0, 1)."""
    return X * torch.clamp(X * (1.0 / 6.0) + 0.5, 0.0, 1.0)


@op("Tanh", 6)
def Tanh(X: Tensor) -> Tensor:
    """tanh(X)."""
    return torch.tanh(X)


@op("Elu", 6)
def Elu(X: Tensor, *, alpha: float = 1.0) -> Tensor:
    """X if X >= 0 else alpha * (exp(X) - 1)."""
    return F.elu(X, alpha)


@op("Selu", 6)
def Selu(
    X: Tensor,
    *,
    alpha: float = 1.67326319217681884765625,
    gamma: float = 1.05070102214813232421875,
) -> Tensor:
    """Gamma * (X if X > 0 else alpha * (exp(X) - 1))."""
    return gamma * torch.where(X > 0, X, alpha * torch.expm1(torch.clamp(X, max=0.0)))


@op("Celu", 12)
def Celu(X: Tensor, *, alpha: float = 1.0) -> Tensor:
    """max(0, X) + min(0, alpha * (exp(X / alpha) - 1))."""
    return F.celu(X, alpha)


@op("Gelu", 20)
def Gelu(X: Tensor, *, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, exact or tanh approximation."""
    return F.gelu(X, approximate=approximate)


@op("Softplus", 1)
def Softplus(X: Tensor) -> Tensor:
    """log(1 + exp(X))."""
    return F.softplus(X)


@op("Softsign", 1)
def Softsign(X: Tensor) -> Tensor:
    """X / (1 + |X|)."""
    return F.softsign(X)


@op("Mish", 18)
def Mish(X: Tensor) -> Tensor:
    """X * tanh(softplus(X))."""
    return X * torch.tanh(F.softplus(X))


@op("Clip", 6)
def Clip_v6(input: Tensor, *, min: float = -_FLT_MAX, max: float = _FLT_MAX) -> Tensor:  # noqa: A002
    """clip(input, min, max) with attribute bounds (opset < 11)."""
    return torch.clamp(input, min, max)


@op("Clip", 11)
def Clip(input: Tensor, min: Tensor | None = None, max: Tensor | None = None) -> Tensor:  # noqa: A002
    """clip(input, min, max) with optional input bounds (opset >= 11)."""
    if min is None and max is None:
        return input
    lo = None if min is None else min.to(input.dtype)
    hi = None if max is None else max.to(input.dtype)
    return torch.clamp(input, lo, hi)


def _coerced(x: Tensor, axis: int, fn: str) -> Tensor:
    # Before opset 13 the op works on X flattened to 2-D at `axis`.
    ax = axis_of(axis, x.dim())
    flat = x.reshape(math.prod(x.shape[:ax]), math.prod(x.shape[ax:]))
    return getattr(torch, fn)(flat, dim=1).reshape(x.shape)


@op("Softmax", 1)
def Softmax_v1(input: Tensor, *, axis: int = 1) -> Tensor:
    """Softmax over X flattened to 2-D at ``axis`` (opset < 13)."""
    return _coerced(input, axis, "softmax")


@op("Softmax", 13)
def Softmax(input: Tensor, *, axis: int = -1) -> Tensor:
    """Softmax along ``axis``."""
    return torch.softmax(input, dim=axis)


@op("LogSoftmax", 1)
def LogSoftmax_v1(input: Tensor, *, axis: int = 1) -> Tensor:
    """Log-softmax over X flattened to 2-D at ``axis`` (opset < 13)."""
    return _coerced(input, axis, "log_softmax")


@op("LogSoftmax", 13)
def LogSoftmax(input: Tensor, *, axis: int = -1) -> Tensor:
    """Log-softmax along ``axis``."""
    return torch.log_softmax(input, dim=axis)
