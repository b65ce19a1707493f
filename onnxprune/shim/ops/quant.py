"""Quantisation kernels: QDQ, dynamic quantisation and the integer conv/matmul ops, in float.

The forward reproduces onnxruntime's integer results: integer values are carried in float64
(exact far beyond int32 accumulators), rounded half to even, saturated and cast to the ONNX
type. The shim is for analysis, so gradients pass straight through the rounding: while
autograd records (a float input that requires grad), quantised values stay float tensors
holding integers, and the gradient of ``round`` is taken as 1.
"""

from __future__ import annotations

import torch

from onnxprune.errors import UnsupportedOpError
from onnxprune.shim.ops._recurrence import run
from onnxprune.shim.ops._util import axis_of
from onnxprune.shim.ops.conv import Conv
from onnxprune.shim.registry import op

Tensor = torch.Tensor

_RANGES = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int32: (-(2**31), 2**31 - 1),
           torch.uint16: (0, 65535), torch.int16: (-32768, 32767)}
_ONNX_INT = {2: torch.uint8, 3: torch.int8, 4: torch.uint16, 5: torch.int16}


def _recording(*ts: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def _ste_round(v: Tensor) -> Tensor:
    """Round half to even; the gradient passes straight through."""
    r = torch.round(v)
    return v + (r - v).detach() if v.requires_grad else r


def _saturate(v: Tensor, dtype: torch.dtype, keep_float: bool) -> Tensor:
    lo, hi = _RANGES[dtype]
    v = torch.clamp(v, lo, hi)
    return v if keep_float else v.to(dtype)


def _along(t: Tensor, axis: int, rank: int) -> Tensor:
    """Shape a per-axis (1-D) scale or zero point to broadcast along ``axis``."""
    if t.dim() == 0 or t.numel() == 1:
        return t.reshape(())
    shape = [1] * rank
    shape[axis_of(axis, rank)] = -1
    return t.reshape(shape)


def _int_dtype(zp: Tensor | None, output_dtype: int) -> torch.dtype:
    if zp is not None:
        return zp.dtype if zp.dtype in _RANGES else torch.uint8
    if output_dtype:
        if output_dtype not in _ONNX_INT:
            raise UnsupportedOpError(
                f"QuantizeLinear to ONNX type {output_dtype} is not supported by the shim; "
                "quantise to int8/uint8/int16/uint16"
            )
        return _ONNX_INT[output_dtype]
    return torch.uint8


def _int_values(t: Tensor) -> Tensor:
    """Integer (or integer-valued float) tensor as float64, keeping an autograd path."""
    return t.double() if t.is_floating_point() else t.to(torch.float64)


@op("QuantizeLinear", 10, 13, 19, 21, frozen=(1, 2))
def QuantizeLinear(
    x: Tensor,
    y_scale: Tensor,
    y_zero_point: Tensor | None = None,
    *,
    axis: int = 1,
    block_size: int = 0,
    output_dtype: int = 0,
    saturate: int = 1,
) -> Tensor:
    """``saturate(round(x / y_scale) + y_zero_point)`` per tensor or along ``axis``."""
    if block_size:
        raise UnsupportedOpError("blocked QuantizeLinear (block_size) is not supported by the shim")
    dtype = _int_dtype(y_zero_point, output_dtype)
    scale = _along(y_scale, axis, x.dim())
    v = _ste_round(x / scale).double()
    if y_zero_point is not None:
        v = v + _along(_int_values(y_zero_point), axis, x.dim())
    keep = _recording(x)
    y = _saturate(v, dtype, keep)
    return y.to(x.dtype) if keep else y


@op("DequantizeLinear", 10, 13, 19, 21, frozen=(1, 2))
def DequantizeLinear(
    x: Tensor,
    x_scale: Tensor,
    x_zero_point: Tensor | None = None,
    *,
    axis: int = 1,
    block_size: int = 0,
) -> Tensor:
    """``(x - x_zero_point) * x_scale`` in the scale's float type."""
    if block_size:
        raise UnsupportedOpError(
            "blocked DequantizeLinear (block_size) is not supported by the shim"
        )
    v = _int_values(x)
    if x_zero_point is not None:
        v = v - _along(_int_values(x_zero_point), axis, x.dim())
    return v.to(x_scale.dtype) * _along(x_scale, axis, x.dim())


@op("DynamicQuantizeLinear", 11, n_out=True)
def DynamicQuantizeLinear(x: Tensor, *, n_out: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """uint8 quantisation with a scale and zero point taken from x's range (incl. 0)."""
    lo = torch.clamp(x.detach().min(), max=0.0)
    hi = torch.clamp(x.detach().max(), min=0.0)
    scale = ((hi - lo) / 255.0).to(x.dtype)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zp = torch.clamp(torch.round(-lo / scale), 0, 255)
    keep = _recording(x)
    v = _ste_round(x / scale).double() + zp.double()
    y = _saturate(v, torch.uint8, keep)
    return (y.to(x.dtype) if keep else y), scale.reshape(()), zp.to(torch.uint8).reshape(())


def _centred(t: Tensor, zp: Tensor | None, axis: int) -> Tensor:
    v = _int_values(t)
    return v if zp is None else v - _along(_int_values(zp), axis, t.dim())


def _int32(v: Tensor, keep: bool) -> Tensor:
    return v.float() if keep else torch.round(v).to(torch.int32)


@op("ConvInteger", 10)
def ConvInteger(
    x: Tensor,
    w: Tensor,
    x_zero_point: Tensor | None = None,
    w_zero_point: Tensor | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Tensor:
    """Conv of ``x - x_zero_point`` and ``w - w_zero_point`` (per output channel), int32."""
    keep = _recording(x, w)
    xv, wv = _centred(x, x_zero_point, 1), _centred(w, w_zero_point, 0)
    y = Conv(xv, wv, None, auto_pad=auto_pad, dilations=dilations, group=group,
             kernel_shape=kernel_shape, pads=pads, strides=strides)
    return _int32(y, keep)


@op("MatMulInteger", 10)
def MatMulInteger(
    A: Tensor, B: Tensor, a_zero_point: Tensor | None = None, b_zero_point: Tensor | None = None
) -> Tensor:
    """Multiply ``(A - a_zero_point) @ (B - b_zero_point)`` (a per row, b per column), int32."""
    keep = _recording(A, B)
    a = _int_values(A)
    if a_zero_point is not None:  # a scalar, or one per row of A
        zp = _int_values(a_zero_point)
        a = a - (zp.reshape(-1, 1) if zp.numel() > 1 else zp.reshape(()))
    b = _centred(B, b_zero_point, -1)
    return _int32(torch.matmul(a, b), keep)


def _requantize(acc: Tensor, scale: Tensor, zp: Tensor, keep: bool) -> Tensor:
    """Requantise as onnxruntime does: float32 ``acc * scale``, rounded, plus the zero point."""
    v = _ste_round(acc.to(torch.float32) * scale.to(torch.float32)).double() + _int_values(zp)
    out = _saturate(v, zp.dtype, keep)
    return out.float() if keep else out


@op("QLinearConv", 10, frozen=(1, 2, 4, 5, 6, 7))
def QLinearConv(
    x: Tensor,
    x_scale: Tensor,
    x_zero_point: Tensor,
    w: Tensor,
    w_scale: Tensor,
    w_zero_point: Tensor,
    y_scale: Tensor,
    y_zero_point: Tensor,
    B: Tensor | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Tensor:
    """Integer conv (+ int32 bias), requantised by ``x_scale·w_scale / y_scale``."""
    keep = _recording(x, w)
    xv, wv = _centred(x, x_zero_point, 1), _centred(w, w_zero_point, 0)
    acc = Conv(xv, wv, None if B is None else _int_values(B), auto_pad=auto_pad,
               dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
               strides=strides)
    scale = (x_scale.float() * w_scale.float()) / y_scale.float()
    return _requantize(acc, _along(scale, 1, acc.dim()), y_zero_point, keep)


@op("QLinearMatMul", 10, 21, frozen=(1, 2, 4, 5, 6, 7))
def QLinearMatMul(
    a: Tensor,
    a_scale: Tensor,
    a_zero_point: Tensor,
    b: Tensor,
    b_scale: Tensor,
    b_zero_point: Tensor,
    y_scale: Tensor,
    y_zero_point: Tensor,
) -> Tensor:
    """Integer matmul requantised by ``a_scale·b_scale / y_scale`` (b per column)."""
    keep = _recording(a, b)
    acc = torch.matmul(_centred(a, a_zero_point, -1), _centred(b, b_zero_point, -1))
    scale = (a_scale.float() * b_scale.float()) / y_scale.float()
    return _requantize(acc, _along(scale, -1, acc.dim()), y_zero_point, keep)


def _dequantized_weight(q: Tensor, scale: Tensor, zero_point: Tensor | None) -> Tensor:
    """``[D, K, G·H]`` int8/uint8 weights (scale per direction or per column) as ``[D, G·H, K]``."""
    v = q.to(torch.float64)
    shape = (-1, 1, 1) if scale.dim() == 1 else (scale.shape[0], 1, -1)
    if zero_point is not None:
        v = v - zero_point.to(torch.float64).reshape(shape)
    return (v.to(scale.dtype) * scale.reshape(shape)).transpose(1, 2)


@op("DynamicQuantizeLSTM", 1, domain="com.microsoft")
def DynamicQuantizeLSTM(
    X: Tensor,
    W: Tensor,
    R: Tensor,
    B: Tensor | None = None,
    sequence_lens: Tensor | None = None,
    initial_h: Tensor | None = None,
    initial_c: Tensor | None = None,
    P: Tensor | None = None,
    W_scale: Tensor | None = None,
    W_zero_point: Tensor | None = None,
    R_scale: Tensor | None = None,
    R_zero_point: Tensor | None = None,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    input_forget: int = 0,
) -> tuple[Tensor, ...]:
    """Run onnxruntime's dynamically quantised LSTM in float on the dequantised weights.

    onnxruntime also quantises X and H at run time; the float run differs from it by that
    quantisation error only (the analysis wants the float function anyway).
    """
    if W_scale is None or R_scale is None:
        raise UnsupportedOpError("DynamicQuantizeLSTM without W_scale/R_scale is not valid")
    w = _dequantized_weight(W, W_scale, W_zero_point)
    r = _dequantized_weight(R, R_scale, R_zero_point)
    attrs = {"activation_alpha": activation_alpha, "activation_beta": activation_beta,
             "activations": activations, "clip": clip, "direction": direction,
             "input_forget": input_forget}
    return run("LSTM", X, w, r, B, sequence_lens, [initial_h, initial_c], P, attrs)
