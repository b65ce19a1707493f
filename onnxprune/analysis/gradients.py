"""Per-sample gradients of a consumer's weights, restricted to a group's input channels.

For sample n the gradient of the consumer weight is Σ over output positions of δ(p)·a(p)ᵀ:
δ the gradient at the consumer's output, a the (unfolded) activation it reads. The weight
itself never enters, so only the activation and output gradient are needed. Results come as
chunks ``[samples, outputs, taps, S]`` (S = the group's selected input indices) whose size is
bounded by :data:`CHUNK`, so no layer ever materialises more than that at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from onnxprune.analysis.specs import ConsumerSpec
from onnxprune.errors import InputError
from onnxprune.shim.ops._recurrence import GATES, input_projection_grad
from onnxprune.shim.ops._util import onnx_pads_to_torch
from onnxprune.shim.ops.conv import resolve_pads

CHUNK = 1 << 24
"""Elements (float32) allowed in one temporary: 64 MiB."""

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

    A recurrent consumer's output Y is not linear in W, so its gradient is carried back
    through the recurrence to the input projection (needs the node's ``inputs`` as run):
    ``[B, D·G·H, T]``, one row per direction, gate and hidden unit.
    """
    if spec.kind in CONV_KINDS:
        return d
    if spec.kind == "recurrent":
        g = input_projection_grad(spec.op, inputs, dict(spec.attrs), d)  # [D, T, N, G·H]
        return g.permute(2, 0, 3, 1).reshape(g.shape[2], -1, g.shape[1])
    return d.reshape(batch, -1, d.shape[-1]).transpose(1, 2)


def outputs_of(spec: ConsumerSpec, y: torch.Tensor) -> int:
    """Output units O of a consumer (its output channels or features)."""
    if spec.kind == "recurrent":  # Y [T, D, N, H] or [N, T, D, H]: D·G·H gate rows
        return int(y.shape[-2] * y.shape[-1] * GATES[spec.op])
    return int(y.shape[1] if spec.kind in CONV_KINDS else y.shape[-1])


def chunks(spec: ConsumerSpec, a: torch.Tensor, d: torch.Tensor) -> Iterator[torch.Tensor]:
    """Per-sample weight gradients ``[b, o, T, S]`` over chunks of samples and output units.

    The activation of a chunk of samples is prepared (unfolded) once and reused for all
    its output units.

    Args:
        spec: the consumer.
        a: the activation from :func:`activation`.
        d: the output gradient from :func:`output_grad`.

    Yields:
        Gradient chunks; together they hold every (sample, output unit) once.

    """
    prepare, apply = _KINDS[spec.kind]
    taps = taps_of(spec)
    n, outs = d.shape[0], d.shape[1]
    fixed = a[0].numel() * taps  # the unfolded activation of one sample
    per_out = a.shape[1] * taps + d[0, 0].numel()
    o_step = max(1, min(outs, (CHUNK - min(fixed, CHUNK // 2)) // max(1, per_out)))
    n_step = max(1, CHUNK // max(1, fixed + o_step * per_out))
    for i in range(0, n, n_step):
        u = prepare(spec, a[i : i + n_step])
        for o in range(0, outs, o_step):
            yield apply(spec, u, d[i : i + n_step, o : o + o_step])


def taps_of(spec: ConsumerSpec) -> int:
    """Kernel taps of a conv consumer (1 for Gemm/MatMul)."""
    return math.prod(spec.kernel) if spec.kind in CONV_KINDS else 1


def _ints(value: object, n: int, default: int) -> list[int]:
    return [int(v) for v in value] if value else [default] * n  # type: ignore[attr-defined]


def _unfold(spec: ConsumerSpec, a: torch.Tensor) -> torch.Tensor:
    """Conv (1-D/2-D): the activation unfolded with the conv's geometry, ``[b, T·S, P]``."""
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
    u = F.unfold(a, tuple(kernel), dilation=tuple(dil), stride=tuple(st))  # [b, S·T, P]
    b, s = a.shape[0], a.shape[1]
    return u.view(b, s, -1, u.shape[-1]).transpose(1, 2).reshape(b, -1, u.shape[-1])


def _unfolded_grad(spec: ConsumerSpec, u: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Σ_p δ(p)·u(p)ᵀ per sample: ``[b, o, T, S]``."""
    g = torch.bmm(d.flatten(2), u.transpose(1, 2))  # [b, o, T·S]
    return g.reshape(g.shape[0], g.shape[1], -1, len(spec.sel))


def _same(spec: ConsumerSpec, a: torch.Tensor) -> torch.Tensor:
    return a


def _grouped(spec: ConsumerSpec, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Any conv-like kernel: fold the batch into conv groups and differentiate the weight.

    The shim's own kernel runs with ``group = b`` on ``[1, b·S, ...]``; the gradient of a
    zero weight ``[b·O, S, k...]`` (ConvTranspose: ``[b·S, O, k...]``) is then every
    sample's weight gradient, with the kernel's exact ONNX padding semantics.
    """
    b, s, o = a.shape[0], a.shape[1], d.shape[1]
    transpose = spec.op == "ConvTranspose"
    shape = (b * s, o, *spec.kernel) if transpose else (b * o, s, *spec.kernel)
    w = torch.zeros(shape, dtype=a.dtype, device=a.device, requires_grad=True)
    attrs = {**spec.attrs, "group": b}
    with torch.enable_grad():
        y = spec.step.kernel.fn(a.reshape(1, b * s, *a.shape[2:]), w, None, **attrs)
        (g,) = torch.autograd.grad(y, w, d.reshape(1, b * o, *d.shape[2:]))
    if transpose:
        return g.reshape(b, s, o, -1).permute(0, 2, 3, 1)
    return g.reshape(b, o, s, -1).transpose(2, 3)


def _linear(spec: ConsumerSpec, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Gemm/MatMul: Σ over a sample's rows (tokens) of δ·aᵀ, times Gemm's alpha."""
    g = torch.bmm(d, a.transpose(1, 2)).unsqueeze(2)  # [b, o, 1, S]
    alpha = float(spec.attrs.get("alpha", 1.0)) if spec.kind == "gemm" else 1.0
    return g * alpha if alpha != 1.0 else g


Prepare = Callable[[ConsumerSpec, torch.Tensor], torch.Tensor]
Apply = Callable[[ConsumerSpec, torch.Tensor, torch.Tensor], torch.Tensor]

_KINDS: dict[str, tuple[Prepare, Apply]] = {
    "unfold": (_unfold, _unfolded_grad),
    "grouped": (_same, _grouped),
    "gemm": (_same, _linear),
    "matmul": (_same, _linear),
    "recurrent": (_same, _linear),
}
