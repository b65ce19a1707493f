"""Resize and Upsample, computed the way onnxruntime does (float32 coordinates, gathers).

Each resized axis is processed separately: a float32 source coordinate per output index
(``coordinate_transformation_mode``), then taps gathered along that axis and blended
(nearest: one tap, linear: two, cubic: four).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from onnxprune.errors import UnsupportedOpError
from onnxprune.shim.ops._util import axis_of, ints
from onnxprune.shim.registry import op

Tensor = torch.Tensor
f32 = np.float32


@dataclass(frozen=True)
class _Opts:
    mode: str = "nearest"
    coord: str = "half_pixel"
    nearest: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: int = 0
    extrapolation: float = 0.0


def _coords(
    coord: str, n_out: int, n_in: int, scale: np.float32, roi: tuple[float, float]
) -> np.ndarray:
    x = np.arange(n_out, dtype=f32)
    half, one = f32(0.5), f32(1)
    if coord == "half_pixel":
        return (x + half) / scale - half
    if coord == "half_pixel_symmetric":
        # onnxruntime: the offset in float32, the rest in double, the result back to float32
        adjustment = f32(n_out) / (scale * f32(n_in))
        offset = f32(n_in) / f32(2) * (one - adjustment)
        wide = np.float64(offset) + (x.astype(np.float64) + 0.5) / np.float64(scale) - 0.5
        return wide.astype(f32)
    if coord == "pytorch_half_pixel":
        return (x + half) / scale - half if n_out > 1 else np.zeros(n_out, f32)
    if coord == "align_corners":
        return np.zeros(n_out, f32) if n_out == 1 else x * f32(n_in - 1) / f32(n_out - 1)
    if coord == "asymmetric":
        return x / scale
    if coord == "tf_half_pixel_for_nn":
        return (x + half) / scale
    if coord == "tf_crop_and_resize":
        lo, hi = f32(roi[0]), f32(roi[1])
        if n_out == 1:
            return np.full(n_out, f32(0.5) * (lo + hi) * f32(n_in - 1), f32)
        return lo * f32(n_in - 1) + x * (hi - lo) * f32(n_in - 1) / f32(n_out - 1)
    raise UnsupportedOpError(f"Resize coordinate_transformation_mode '{coord}' is not supported")


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + f32(0.5))


def _nearest_index(x: np.ndarray, mode: str, downsample: bool) -> np.ndarray:
    if mode == "round_prefer_floor":
        tie = x == np.trunc(x) + f32(0.5)
        return np.where(tie, np.floor(x), _round_half_away(x))
    if mode == "round_prefer_ceil":
        return _round_half_away(x)
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    if mode == "simple":  # Upsample and Resize-10
        return np.ceil(x) if downsample else np.trunc(x)
    raise UnsupportedOpError(f"Resize nearest_mode '{mode}' is not supported")


def _cubic_coeffs(s: np.ndarray, coeff_a: float) -> np.ndarray:
    a = f32(coeff_a)
    s1, s2, s3 = s + 1, 1 - s, 2 - s
    c0 = ((a * s1 - 5 * a) * s1 + 8 * a) * s1 - 4 * a
    c1 = ((a + 2) * s - (a + 3)) * s * s + 1
    c2 = ((a + 2) * s2 - (a + 3)) * s2 * s2 + 1
    c3 = ((a * s3 - 5 * a) * s3 + 8 * a) * s3 - 4 * a
    return np.stack([c0, c1, c2, c3], axis=-1).astype(f32)


def _taps(x: np.ndarray, n_in: int, scale: np.float32, o: _Opts) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, weights), each of shape (n_out, taps)."""
    if o.mode == "nearest":
        idx = _nearest_index(x, o.nearest, bool(scale < 1)).astype(np.int64)
        return np.clip(idx, 0, n_in - 1)[:, None], np.ones((len(x), 1), f32)
    if o.mode == "linear":
        xc = np.clip(x, f32(0), f32(n_in - 1))
        x1 = np.minimum(xc.astype(np.int64), n_in - 1)
        x2 = np.minimum(x1 + 1, n_in - 1)
        w2, w1 = np.abs(xc - x1.astype(f32)), np.abs(xc - x2.astype(f32))
        same = x1 == x2
        w1, w2 = np.where(same, f32(0.5), w1), np.where(same, f32(0.5), w2)
        return np.stack([x1, x2], -1), np.stack([w1, w2], -1).astype(f32)
    if o.mode == "cubic":
        base = np.floor(x)
        idx = base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
        w = _cubic_coeffs((x - base).astype(f32), o.cubic_a)
        if o.exclude_outside:
            w = np.where((idx < 0) | (idx >= n_in), f32(0), w)
            w = (w / w.sum(-1, keepdims=True)).astype(f32)
        return np.clip(idx, 0, n_in - 1), w
    raise UnsupportedOpError(f"Resize mode '{o.mode}' is not supported")


def _resize_axis(
    x: Tensor, ax: int, n_out: int, scale: np.float32, roi: tuple[float, float], o: _Opts
) -> Tensor:
    n_in = x.shape[ax]
    coords = _coords(o.coord, n_out, n_in, scale, roi)
    idx, w = _taps(coords, n_in, scale, o)
    moved = x.movedim(ax, -1)
    gathered = moved[..., torch.from_numpy(idx).to(x.device)]
    if idx.shape[1] == 1:
        y = gathered[..., 0]
    else:
        y = (gathered * torch.from_numpy(w).to(device=x.device, dtype=x.dtype)).sum(-1)
    if o.coord == "tf_crop_and_resize":
        outside = torch.from_numpy((coords < 0) | (coords > n_in - 1)).to(x.device)
        y = torch.where(outside, torch.full_like(y, o.extrapolation), y)
    return y.movedim(-1, ax)


def _run(
    x: Tensor, sizes: list[int], scales: list[np.float32], roi: list[float], o: _Opts
) -> Tensor:
    rank = x.dim()
    roi = roi or [0.0] * rank + [1.0] * rank
    for ax in range(rank):
        # onnxruntime maps a scale-1 axis one-to-one in nearest mode, whatever the transform
        same = sizes[ax] == x.shape[ax] and scales[ax] == 1
        if same and (o.mode == "nearest" or o.coord != "tf_crop_and_resize"):
            continue
        x = _resize_axis(x, ax, sizes[ax], scales[ax], (roi[ax], roi[ax + rank]), o)
    return x


def _from_scales(shape: list[int], scales: list[np.float32]) -> list[int]:
    # onnxruntime: trunc(float(scale) * dim), ignoring the roi extent of tf_crop_and_resize
    return [int(math.floor(f32(s) * f32(n))) for n, s in zip(shape, scales, strict=True)]


def _from_sizes(
    shape: list[int], sizes: list[int], axes: list[int], policy: str
) -> tuple[list[int], list[np.float32]]:
    ratios = [f32(sizes[a]) / f32(shape[a]) for a in axes]
    if policy == "stretch":
        return sizes, [f32(s) / f32(n) for s, n in zip(sizes, shape, strict=True)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    out, scales = list(shape), [f32(1)] * len(shape)
    for a in axes:
        out[a] = int(math.floor(float(f32(scale) * f32(shape[a])) + 0.5))  # std::round
        scales[a] = f32(scale)
    return out, scales


def _full(values: list, axes: list[int], fill: list) -> list:
    full = list(fill)
    for v, a in zip(values, axes, strict=True):
        full[a] = v
    return full


@op("Resize", 11, frozen=(1, 2))  # roi and scales
def Resize(
    X: Tensor,
    roi: Tensor | None = None,
    scales: Tensor | None = None,
    sizes: Tensor | None = None,
    *,
    antialias: int = 0,
    axes: list[int] | None = None,
    coordinate_transformation_mode: str = "half_pixel",
    cubic_coeff_a: float = -0.75,
    exclude_outside: int = 0,
    extrapolation_value: float = 0.0,
    keep_aspect_ratio_policy: str = "stretch",
    mode: str = "nearest",
    nearest_mode: str = "round_prefer_floor",
) -> Tensor:
    """Resize by ``scales`` or to ``sizes`` (nearest, linear or cubic), as onnxruntime does."""
    shape, rank = list(X.shape), X.dim()
    ax = [axis_of(a, rank) for a in axes] if axes else list(range(rank))
    o = _Opts(
        mode,
        coordinate_transformation_mode,
        nearest_mode,
        cubic_coeff_a,
        exclude_outside,
        extrapolation_value,
    )
    roi_v = [float(v) for v in roi.detach().reshape(-1).tolist()] if roi is not None else []
    if roi_v and len(roi_v) != 2 * rank:
        roi_v = _full(roi_v[: len(ax)], ax, [0.0] * rank) + _full(
            roi_v[len(ax) :], ax, [1.0] * rank
        )
    size_v = ints(sizes)
    if size_v:
        out, sc = _from_sizes(shape, _full(size_v, ax, shape), ax, keep_aspect_ratio_policy)
    else:
        scale_v = (
            [float(s) for s in scales.detach().reshape(-1).tolist()] if scales is not None else []
        )
        sc = [f32(s) for s in _full(scale_v, ax, [1.0] * rank)]
        out = _from_scales(shape, sc)
    if antialias and mode != "nearest" and any(s < 1 for s in sc):
        raise UnsupportedOpError("Resize with antialias=1 when downscaling is not supported")
    return _run(X, out, sc, roi_v, o)


def _legacy(X: Tensor, scale_v: list[float], mode: str) -> Tensor:
    sc = [f32(s) for s in scale_v]
    out = _from_scales(list(X.shape), sc)
    o = _Opts("linear" if mode in ("linear", "bilinear") else mode, "asymmetric", "simple")
    return _run(X, out, sc, [], o)


@op("Resize", 10, frozen=(1,))
def Resize_v10(X: Tensor, scales: Tensor, *, mode: str = "nearest") -> Tensor:
    """Resize by ``scales`` with asymmetric coordinates (opset 10)."""
    return _legacy(X, [float(s) for s in scales.reshape(-1).tolist()], mode)


@op("Upsample", 7)
def Upsample_v7(X: Tensor, *, scales: list[float], mode: str = "nearest") -> Tensor:
    """Upsample by the ``scales`` attribute with asymmetric coordinates (opset 7-8)."""
    return _legacy(X, list(scales), mode)


@op("Upsample", 9, frozen=(1,))
def Upsample(X: Tensor, scales: Tensor, *, mode: str = "nearest") -> Tensor:
    """Upsample by the ``scales`` input with asymmetric coordinates (opset 9)."""
    return _legacy(X, [float(s) for s in scales.reshape(-1).tolist()], mode)
