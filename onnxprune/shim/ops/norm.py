"""Normalization kernels (inference semantics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from onnxprune.errors import UnsupportedOpError
from onnxprune.shim.ops._util import axis_of
from onnxprune.shim.registry import op

Tensor = torch.Tensor


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """Shape a per-channel (or per-channel-and-position) vector to broadcast against NC... x."""
    return v.reshape(1, *v.shape, *([1] * (x.dim() - 1 - v.dim())))


@op("BatchNormalization", 7, frozen=(3, 4))  # running mean and variance: statistics
def BatchNormalization(
    X: Tensor,
    scale: Tensor,
    B: Tensor,
    input_mean: Tensor,
    input_var: Tensor,
    *,
    epsilon: float = 1e-5,
    momentum: float = 0.9,
    spatial: int = 1,
    training_mode: int = 0,
) -> Tensor:
    """(X - mean) / sqrt(var + epsilon) * scale + B with the stored statistics."""
    if training_mode:
        raise UnsupportedOpError(
            "BatchNormalization with training_mode=1 is not supported by the shim; "
            "export the model in eval mode"
        )
    if scale.dim() == 1 and X.dim() >= 2:
        return F.batch_norm(X, input_mean, input_var, scale, B, False, 0.0, epsilon)
    inv = torch.rsqrt(_per_channel(input_var, X) + epsilon)
    return (X - _per_channel(input_mean, X)) * inv * _per_channel(scale, X) + _per_channel(B, X)


@op("InstanceNormalization", 6)
def InstanceNormalization(X: Tensor, scale: Tensor, B: Tensor, *, epsilon: float = 1e-5) -> Tensor:
    """Per-sample, per-channel normalization over the spatial dims, then a channel affine."""
    return F.instance_norm(X, weight=scale, bias=B, eps=epsilon)


@op("LayerNormalization", 17, n_out=True)
def LayerNormalization(
    X: Tensor,
    Scale: Tensor,
    B: Tensor | None = None,
    *,
    axis: int = -1,
    epsilon: float = 1e-5,
    stash_type: int = 1,
    n_out: int = 1,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Normalize over dims ``axis..`` then scale (and shift); also Mean and InvStdDev."""
    ax = axis_of(axis, X.dim())
    shape = tuple(X.shape[ax:])
    if n_out == 1 and tuple(Scale.shape) == shape and (B is None or tuple(B.shape) == shape):
        return F.layer_norm(X, shape, Scale, B, epsilon)
    dims = tuple(range(ax, X.dim()))
    xs = X.float() if stash_type == 1 else X
    mean = xs.mean(dim=dims, keepdim=True)
    centered = xs - mean
    inv = torch.rsqrt((centered * centered).mean(dim=dims, keepdim=True) + epsilon)
    y = (centered * inv).to(X.dtype) * Scale
    if B is not None:
        y = y + B
    return y, mean, inv


def _group_norm(X: Tensor, num_groups: int, epsilon: float) -> Tensor:
    xg = X.reshape(X.shape[0], num_groups, -1)
    mean = xg.mean(dim=-1, keepdim=True)
    centered = xg - mean
    var = (centered * centered).mean(dim=-1, keepdim=True)
    return (centered * torch.rsqrt(var + epsilon)).reshape(X.shape)


@op("GroupNormalization", 18)
def GroupNormalization_v18(
    X: Tensor, scale: Tensor, bias: Tensor, *, num_groups: int, epsilon: float = 1e-5
) -> Tensor:
    """Group normalization with per-group scale and bias (opset 18 semantics)."""
    per = X.shape[1] // num_groups
    s = scale.repeat_interleave(per)
    b = bias.repeat_interleave(per)
    return _group_norm(X, num_groups, epsilon) * _per_channel(s, X) + _per_channel(b, X)


@op("GroupNormalization", 21)
def GroupNormalization(
    X: Tensor,
    scale: Tensor,
    bias: Tensor,
    *,
    num_groups: int,
    epsilon: float = 1e-5,
    stash_type: int = 1,
) -> Tensor:
    """Group normalization with per-channel scale and bias."""
    if scale.numel() == X.shape[1] and X.dim() >= 2:
        return F.group_norm(X, num_groups, scale, bias, epsilon)
    return _group_norm(X, num_groups, epsilon) * _per_channel(scale, X) + _per_channel(bias, X)


@op("LRN", 1)
def LRN(
    X: Tensor, *, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0
) -> Tensor:
    """Local response normalization across channels (window floor/ceil of (size-1)/2)."""
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = (X * X).movedim(1, -1)
    window = F.pad(sq, (before, after)).unfold(-1, size, 1).sum(-1).movedim(-1, 1)
    return X / (bias + alpha / size * window) ** beta


@op("LpNormalization", 1)
def LpNormalization(input: Tensor, *, axis: int = -1, p: int = 2) -> Tensor:  # noqa: A002
    """Input divided by its Lp norm along ``axis``."""
    return input / torch.linalg.vector_norm(input, ord=p, dim=axis, keepdim=True)
