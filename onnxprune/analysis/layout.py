"""Lay out the two factors of a consumer's per-sample weight gradient G_r = D_rᵀX.

X is the activation the consumer reads, restricted to the group's channels and, for a conv,
unfolded with its geometry so that each channel has Q columns (kernel taps × the indices it
owns); D is the gradient at the consumer's output over its P positions (tokens for
Gemm/MatMul). :mod:`onnxprune.analysis.forms` multiplies them into the Gram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from onnxprune.analysis.specs import ConsumerSpec
from onnxprune.errors import InputError
from onnxprune.opspec import GATES
from onnxprune.shim.ops._recurrence import input_projection_grad
from onnxprune.shim.ops._util import onnx_pads_to_torch
from onnxprune.shim.ops.conv import resolve_pads

CONV_KINDS = ("unfold", "grouped")


def activation(spec: ConsumerSpec, a: torch.Tensor, batch: int) -> torch.Tensor:
    """Lay out the activation a consumer reads, restricted to the group's indices, per sample.

    Args:
        spec: the consumer.
        a: the activation it reads (full batch, all channels).
        batch: samples in the batch.

    Returns:
        ``[B, S, *spatial]`` for convs, ``[B, S, L]`` for Gemm/MatMul (L rows, i.e. tokens,
        per sample; a 2-D input with k·B rows is taken as flattened from ``[B, k, K]``).

    Raises:
        InputError: the rows of a Gemm/MatMul input cannot be told apart by sample.

    """
    sel = torch.as_tensor(spec.sel, device=a.device)
    if spec.kind in CONV_KINDS:
        return a if spec.whole else a.index_select(1, sel)
    if spec.kind == "recurrent":  # X [T, N, I] (layout 1: [N, T, I]) -> [N, S, T]
        x = a if int(spec.attrs.get("layout", 0) or 0) else a.transpose(0, 1)
        x = x if spec.whole else x.index_select(2, sel)
        return x.transpose(1, 2)
    feats = a.t() if spec.kind == "gemm" and spec.axis == 0 else a
    if feats.shape[0] != batch and not (feats.dim() == 2 and feats.shape[0] % batch == 0):
        raise InputError(
            f"node '{spec.node}' ({spec.op}) reads {list(feats.shape)}, which is not "
            f"batch-first for a batch of {batch}; rerun with --batch-size 1"
        )
    feats = feats if spec.whole else feats.index_select(-1, sel)
    feats = feats.reshape(batch, -1, len(spec.sel))
    return feats.transpose(1, 2)


def output_grad(
    spec: ConsumerSpec,
    d: torch.Tensor,
    batch: int,
    inputs: Sequence[torch.Tensor | None] = (),
) -> torch.Tensor:
    """Lay out the gradient at a consumer's output: ``[B, O, *spatial]`` or ``[B, O, L]``.

    Gemm's ``alpha`` scales the weight's gradient; it is folded in here. A recurrent
    consumer's output Y is not linear in W, so its gradient is carried back through the
    recurrence to the input projection (needs the node's ``inputs`` as run):
    ``[B, D·G·H, T]``, one row per direction, gate and hidden unit.
    """
    if spec.kind in CONV_KINDS:
        return d
    if spec.kind == "recurrent":
        g = input_projection_grad(spec.op, inputs, dict(spec.attrs), d)  # [D, T, N, G·H]
        return g.permute(2, 0, 3, 1).reshape(g.shape[2], -1, g.shape[1])
    d = d.reshape(batch, -1, d.shape[-1]).transpose(1, 2)
    alpha = float(spec.attrs.get("alpha", 1.0)) if spec.kind == "gemm" else 1.0
    return d * alpha if alpha != 1.0 else d


def outputs_of(spec: ConsumerSpec, y: torch.Tensor) -> int:
    """Output units O of a consumer (its output channels or features)."""
    if spec.kind == "recurrent":  # Y [T, D, N, H] or [N, T, D, H]: D·G·H gate rows
        return int(y.shape[-2] * y.shape[-1] * GATES[spec.op])
    return int(y.shape[1] if spec.kind in CONV_KINDS else y.shape[-1])


def taps_of(spec: ConsumerSpec) -> int:
    """Kernel taps of a conv consumer (1 for Gemm/MatMul)."""
    return math.prod(spec.kernel) if spec.kind in CONV_KINDS else 1


def positions_of(spec: ConsumerSpec, d: torch.Tensor) -> int:
    """P, the output positions of one sample (tokens for Gemm/MatMul)."""
    return int(d[0, 0].numel())


def columns(spec: ConsumerSpec, a: torch.Tensor, size: int, *, unfold: bool = True
            ) -> torch.Tensor:
    """X of a chunk of samples: ``[b, C, Q, P]``, each group channel's Q columns over positions.

    Args:
        spec: the consumer (``unfold``, ``gemm`` or ``matmul`` kind).
        a: the activation from :func:`activation` (a chunk of samples).
        size: C, the group's channel count.
        unfold: lay a conv's input out by kernel taps (False: over the input's positions,
            Q = owned indices only, for the folded ``positions`` form).

    Returns:
        Q = taps × owned indices per channel (a channel owning fewer indices gets zeros).

    """
    b = a.shape[0]
    owned = torch.as_tensor(spec.owned, device=a.device)
    m = owned.shape[1]
    if not spec.contiguous:  # gather each channel's indices (index S is a zero pad)
        if int(owned.max()) >= a.shape[1]:
            a = torch.cat([a, a.new_zeros((b, 1, *a.shape[2:]))], 1)
        a = a.index_select(1, owned.reshape(-1))
    if spec.kind != "unfold" or not unfold:
        return a.reshape(b, size, m, -1)
    u = _unfold(spec, a)  # [b, C·m·T, P], channel-major
    return u.reshape(b, size, -1, u.shape[-1])


def _ints(value: object, n: int, default: int) -> list[int]:
    return [int(v) for v in value] if value else [default] * n  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Geometry:
    """A 1-D/2-D conv's geometry over its input, as two spatial axes (1-D: height 1)."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    begins: tuple[int, int]
    padded: tuple[int, int]  # input size with the pads
    out: tuple[int, int]


def geometry(spec: ConsumerSpec, spatial: Sequence[int]) -> Geometry:
    """Return a 1-D/2-D conv consumer's geometry over an input of ``spatial`` size."""
    nd = len(spatial)
    kernel = list(spec.kernel)
    st = _ints(spec.attrs.get("strides"), nd, 1)
    dil = _ints(spec.attrs.get("dilations"), nd, 1)
    auto_pad = str(spec.attrs.get("auto_pad", "NOTSET"))
    pads = resolve_pads(auto_pad, list(spatial), kernel, st, dil, spec.attrs.get("pads"))
    begins, sizes = pads[:nd], [n + pads[i] + pads[i + nd] for i, n in enumerate(spatial)]
    if nd == 1:
        kernel, st, dil, begins, sizes = ([1, *v] for v in (kernel, st, dil, begins, sizes))
        begins[0], sizes[0] = 0, 1
    out = [(n - d * (k - 1) - 1) // s + 1
           for n, k, s, d in zip(sizes, kernel, st, dil, strict=True)]

    def two(v: list[int]) -> tuple[int, int]:
        return int(v[0]), int(v[1])

    return Geometry(two(kernel), two(st), two(dil), two(begins), two(sizes), two(out))


def _unfold(spec: ConsumerSpec, a: torch.Tensor) -> torch.Tensor:
    """Conv (1-D/2-D): the activation unfolded with the conv's geometry, ``[b, S·T, P]``."""
    nd = a.dim() - 2
    kernel = list(spec.kernel)
    st = _ints(spec.attrs.get("strides"), nd, 1)
    dil = _ints(spec.attrs.get("dilations"), nd, 1)
    auto_pad = str(spec.attrs.get("auto_pad", "NOTSET"))
    pads = resolve_pads(auto_pad, list(a.shape[2:]), kernel, st, dil, spec.attrs.get("pads"))
    if any(pads):
        a = F.pad(a, onnx_pads_to_torch(pads))
    if nd == 1:
        a, kernel, st, dil = a.unsqueeze(2), [1, *kernel], [1, *st], [1, *dil]
    if all(k == 1 for k in kernel) and all(s == 1 for s in st):
        return a.flatten(2)
    return F.unfold(a, tuple(kernel), dilation=tuple(dil), stride=tuple(st))

