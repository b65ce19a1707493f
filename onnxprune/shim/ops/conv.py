"""Convolution and matrix-product kernels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from onnxprune.shim.ops._util import onnx_pads_to_torch, same_pads
from onnxprune.shim.registry import op

Tensor = torch.Tensor

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def resolve_pads(
    auto_pad: str,
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
) -> list[int]:
    """Return explicit ONNX pads ``[begins..., ends...]`` for a conv/pool's ``auto_pad``."""
    nd = len(in_sizes)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return same_pads(in_sizes, kernel, strides, dilations, lower=auto_pad == "SAME_LOWER")
    if auto_pad == "VALID" or not pads:
        return [0] * (2 * nd)
    return [int(p) for p in pads]


@op("Conv", 1)
def Conv(
    X: Tensor,
    W: Tensor,
    B: Tensor | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Tensor:
    """N-d convolution with ONNX padding (asymmetric pads applied explicitly)."""
    nd = X.dim() - 2
    dil = dilations or [1] * nd
    st = strides or [1] * nd
    k = kernel_shape or list(W.shape[2:])
    p = resolve_pads(auto_pad, list(X.shape[2:]), k, st, dil, pads)
    if p[:nd] != p[nd:]:
        X = F.pad(X, onnx_pads_to_torch(p))
        p = [0] * (2 * nd)
    if all(n == 1 for n in k) and not any(p) and any(n > 1 for n in st):
        # a strided 1x1 conv reads every s-th position: subsample first. Same result; torch's
        # strided backward copies its whole input to another layout (ResNet-50's 256->512
        # shortcut at 56x56: 10.5 -> 3.6 ms per backward).
        X = X[(slice(None), slice(None), *(slice(None, None, n) for n in st))]
        st = [1] * nd
    return _CONV[nd](X, W, B, st, p[:nd], dil, group)


def _transpose_pads(
    auto_pad: str, full: int, out: int | None, head_tail: tuple[int, int]
) -> tuple[int, int]:
    # With a target size the total padding is split as the spec says (and onnxruntime does):
    # the odd element goes to the tail for SAME_UPPER and to the head otherwise.
    if out is None:
        return head_tail
    total = max(0, full - out)
    if auto_pad == "SAME_UPPER":
        return total // 2, total - total // 2
    return total - total // 2, total // 2


@op("ConvTranspose", 1)
def ConvTranspose(
    X: Tensor,
    W: Tensor,
    B: Tensor | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    output_padding: list[int] | None = None,
    output_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Tensor:
    """N-d transposed convolution: full result, then cropped/extended to the ONNX size."""
    nd = X.dim() - 2
    dil = dilations or [1] * nd
    st = strides or [1] * nd
    k = kernel_shape or list(W.shape[2:])
    adj = output_padding or [0] * nd
    p = list(pads) if pads and auto_pad == "NOTSET" else [0] * (2 * nd)
    shape = list(output_shape or [])[-nd:] if output_shape else None
    y = _CONV_T[nd](X, W, None, st, 0, 0, group, dil)
    torch_pads: list[int] = []
    for i in reversed(range(nd)):
        n = X.shape[2 + i]
        full = (n - 1) * st[i] + (k[i] - 1) * dil[i] + 1
        target = shape[i] if shape else (n * st[i] if auto_pad.startswith("SAME") else None)
        head, tail = _transpose_pads(auto_pad, full + adj[i], target, (p[i], p[i + nd]))
        size = target if target is not None else full + adj[i] - head - tail
        torch_pads += [-head, size + head - full]
    y = F.pad(y, torch_pads)
    if B is not None:
        y = y + B.reshape(1, -1, *([1] * nd))
    return y


@op("Gemm", 7)
def Gemm(
    A: Tensor,
    B: Tensor,
    C: Tensor | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> Tensor:
    """Alpha * A' @ B' + beta * C."""
    a = A.t() if transA else A
    b = B.t() if transB else B
    y = a @ b
    if alpha != 1.0:
        y = y * alpha
    if C is None:
        return y
    return y + (C if beta == 1.0 else C * beta)


@op("MatMul", 1)
def MatMul(A: Tensor, B: Tensor) -> Tensor:
    """numpy-style matrix product."""
    return torch.matmul(A, B)


@op("Einsum", 12)
def Einsum(*Inputs: Tensor, equation: str) -> Tensor:
    """Einstein summation."""
    return torch.einsum(equation.replace(" ", ""), *Inputs)
