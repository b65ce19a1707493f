"""Per-sample gradients of a consumer's weights and the Gram of their rows, in two exact forms.

For sample n and direction r the gradient of the consumer weight, restricted to a group's
channels, is G_r = D_rᵀX: D_r ``[P, O]`` the gradient at the consumer's output over its P
output positions (tokens for Gemm/MatMul), X ``[P, C·Q]`` the activation it reads, unfolded
with the conv's geometry so that each group channel c has Q columns (kernel taps × the indices
the channel owns). Each (output unit, tap) is a row of G_g, so the sample adds

    Σ_r Σ_q G_{r,q}ᵀG_{r,q}  =  Σ_q X_qᵀ M X_q,   M = Σ_r D_r D_rᵀ  (P×P)

to the Gram. Two ways to compute it, equal up to round-off:

- ``rows``: form the R·O·Q rows of C (a batched matmul per direction, float32) and add their
  Gram (float64). Cheap when the consumer has few outputs and many positions (early convs).
- ``positions``: accumulate the P×P matrix M over the directions (float32), then add
  X_qᵀ M X_q once per batch (float64). Cheap when R·O outnumbers P: late convs, a classifier
  Gemm (P = 1: the sample adds |δ|²·a aᵀ), where ``rows`` would form thousands of rows.
  A conv's X_q are shifted copies of its input A (X_q = S_q A), so the taps can be folded
  into M instead: Σ_q X_qᵀ M X_q = Aᵀ M̃ A with M̃ = Σ_q S_qᵀ M S_q over the input's positions
  (:func:`folded`; a 3×3 conv then does one product with C where it did nine).

The Gram is symmetric, so :class:`GramSum` forms only its upper block triangle.

:func:`choose_form` picks the one with fewer flops. Products that decide exact redundancy
(X against anything) are float64 or exact float32 products summed in float64, so a channel that
is a linear combination of others leaves an eigenvalue at float32 round-off squared (≲1e-14·λ_1)
in both forms. Work is split into chunks bounded by :data:`CHUNK` elements.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from onnxprune.analysis.gramsum import GramSum
from onnxprune.analysis.specs import ConsumerSpec
from onnxprune.errors import InputError
from onnxprune.opspec import GATES
from onnxprune.shim.ops._recurrence import input_projection_grad
from onnxprune.shim.ops._util import onnx_pads_to_torch
from onnxprune.shim.ops.conv import resolve_pads

CHUNK = 1 << 24
"""Elements allowed in one temporary: 64 MiB of float32 (the float64 ones get half as many)."""

CONV_KINDS = ("unfold", "grouped")
FORMS = ("rows", "positions")
_F64_COST = 2.0  # a float64 flop costs about two float32 ones (half the SIMD width)


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


def choose_form(
    spec: ConsumerSpec,
    *,
    batch: int,
    outputs: int,
    positions: int,
    size: int,
    directions: int,
    inputs: Sequence[int] | None = None,
) -> str:
    """Pick ``rows`` or ``positions`` for a consumer: the one with fewer flops.

    ``positions`` also needs the batch's P×P matrices to fit in :data:`CHUNK`; the
    ``grouped`` kind (ConvTranspose, 3-D Conv) always uses ``rows``. ``inputs`` (the spatial
    size of a conv's input) lets ``positions`` be costed with the taps folded into M
    (:func:`fold_taps`) where that is cheaper.
    """
    if spec.kind == "grouped" or batch * positions * positions > CHUNK:
        return "rows"
    q, c, p, ro = taps_of(spec) * spec.owned.shape[1], size, positions, directions * outputs
    rows = ro * p * q * c + _F64_COST * ro * q * c * c
    by_positions = ro * p * p + _F64_COST * q * (p * p * c + p * c * c)
    folded = _folded_cost(spec, batch=batch, positions=positions, size=size, inputs=inputs)
    if folded is not None:
        by_positions = min(by_positions, ro * p * p + folded)
    return "positions" if by_positions < rows else "rows"


def fold_taps(
    spec: ConsumerSpec, *, batch: int, positions: int, size: int, inputs: Sequence[int]
) -> bool:
    """Tell whether the ``positions`` form is cheaper with the taps folded into M.

    A conv's columns are shifted (strided) copies of its input A: X_t = S_t A, so
    Σ_t X_tᵀ M X_t = Aᵀ M̃ A with M̃ = Σ_t S_tᵀ M S_t over the input positions
    (:func:`folded`). For a k×k conv that replaces k² products with C by one, at the price of
    M̃ being over the input's positions rather than the output's.
    """
    folded = _folded_cost(spec, batch=batch, positions=positions, size=size, inputs=inputs)
    if folded is None:
        return False
    q, p = taps_of(spec) * spec.owned.shape[1], positions
    return folded < _F64_COST * q * (p * p * size + p * size * size)


def _folded_cost(
    spec: ConsumerSpec, *, batch: int, positions: int, size: int, inputs: Sequence[int] | None
) -> float | None:
    """Flops of the folded ``positions`` Gram (None: not a conv, or M̃ does not fit)."""
    if spec.kind != "unfold" or not inputs:
        return None
    geo = _geometry(spec, inputs)
    padded = math.prod(geo.padded)
    if batch * padded * padded > CHUNK:
        return None
    pin, m, c = math.prod(inputs), spec.owned.shape[1], size
    return taps_of(spec) * positions * positions + _F64_COST * m * (pin * pin * c + pin * c * c)


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
class _Geometry:
    """A 1-D/2-D conv's geometry over its input, as two spatial axes (1-D: height 1)."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    begins: tuple[int, int]
    padded: tuple[int, int]  # input size with the pads
    out: tuple[int, int]


def _geometry(spec: ConsumerSpec, spatial: Sequence[int]) -> _Geometry:
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

    return _Geometry(two(kernel), two(st), two(dil), two(begins), two(sizes), two(out))


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


def folded(spec: ConsumerSpec, m: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
    """M̃ = Σ_t S_tᵀ M S_t: a conv's ``[b, P, P]`` matrices moved onto its input positions.

    S_t picks, for tap t, the input position each output position reads (none in the
    padding), so Σ_t X_tᵀ M X_t = Aᵀ M̃ A for the input A over its own positions. Each tap
    adds M at its (strided) offset in the padded input grid; the pads are cut off at the end.

    Args:
        spec: a conv consumer (``unfold`` kind).
        m: the batch's ``[b, P, P]`` from :func:`add_positions` (P over the conv's output).
        spatial: the input's spatial size.

    Returns:
        ``[b, P_in, P_in]``.

    """
    g = _geometry(spec, spatial)
    b = m.shape[0]
    (hp, wp), (ho, wo) = g.padded, g.out
    acc = m.new_zeros((b, hp, wp, hp, wp))
    m4 = m.reshape(b, ho, wo, ho, wo)
    for ky in range(g.kernel[0]):
        y0 = ky * g.dilations[0]
        ys = slice(y0, y0 + g.strides[0] * (ho - 1) + 1, g.strides[0])
        for kx in range(g.kernel[1]):
            x0 = kx * g.dilations[1]
            xs = slice(x0, x0 + g.strides[1] * (wo - 1) + 1, g.strides[1])
            acc[:, ys, xs, ys, xs] += m4
    h, w = (spatial[0], spatial[1]) if len(spatial) == 2 else (1, spatial[0])
    (y0, x0) = g.begins
    crop = acc[:, y0 : y0 + h, x0 : x0 + w, y0 : y0 + h, x0 : x0 + w]
    return crop.reshape(b, h * w, h * w)


def positions_of(spec: ConsumerSpec, d: torch.Tensor) -> int:
    """P, the output positions of one sample (tokens for Gemm/MatMul)."""
    return int(d[0, 0].numel())


def add_rows(gram: GramSum, spec: ConsumerSpec, a: torch.Tensor,
             ds: torch.Tensor | Sequence[torch.Tensor], size: int,
             x: torch.Tensor | None = None) -> int:
    """``rows`` form: add the per-sample gradient rows of one or more directions to ``gram``.

    Args:
        gram: the C×C float64 Gram.
        spec: the consumer (not ``grouped``).
        a: the activation from :func:`activation`.
        ds: the output gradients from :func:`output_grad`, one per direction (the activation
            is laid out once for all of them).
        size: C.
        x: the batch's :func:`columns` as ``[B, C·Q, P]`` if already laid out.

    Returns:
        The number of rows added (samples × outputs × Q, over the directions).

    """
    ds = [ds] if isinstance(ds, torch.Tensor) else list(ds)
    n, outs = ds[0].shape[0], ds[0].shape[1]
    p = positions_of(spec, ds[0])
    q = taps_of(spec) * spec.owned.shape[1]
    n_step, o_step = _steps(n, outs, fixed=size * q * p, per_out=3 * size * q + p)
    added = 0
    for i in range(0, n, n_step):
        xi = (columns(spec, a[i : i + n_step], size).reshape(-1, size * q, p) if x is None
              else x[i : i + n_step])
        for d in ds:
            for o in range(0, d.shape[1], o_step):
                dd = d[i : i + n_step, o : o + o_step].reshape(xi.shape[0], -1, p)
                g = torch.bmm(dd, xi.transpose(1, 2))  # [b, o, C·Q]
                rows = _channel_last(g.reshape(-1, size, q)).T
                gram.add(rows, rows)
                added += rows.shape[1]
    return added


def keep_layout(layout: int, held: int) -> bool:
    """Tell whether the rows form keeps a batch's laid-out activation across directions.

    The alternative holds the batch's output gradients until it closes: keep whichever is
    smaller (``layout`` or ``held`` elements), the layout only within :data:`CHUNK`.
    """
    return layout <= min(CHUNK, held)


def _channel_last(g: torch.Tensor) -> torch.Tensor:
    """``[rows, C, Q]`` float32 -> ``[rows·Q, C]`` float64 (one copy does both)."""
    if g.shape[2] == 1:
        return g.reshape(-1, g.shape[1]).double()
    out = torch.empty((g.shape[0], g.shape[2], g.shape[1]), dtype=torch.float64, device=g.device)
    out.copy_(g.transpose(1, 2))
    return out.view(-1, g.shape[1])


def add_positions(m: torch.Tensor | None, d: torch.Tensor) -> torch.Tensor:
    """``positions`` form: add one direction's D Dᵀ per sample to ``m`` (``[B, P, P]``)."""
    dd = d.reshape(d.shape[0], d.shape[1], -1)
    mm = torch.bmm(dd.transpose(1, 2), dd)
    return mm if m is None else m.add_(mm)


def add_positions_gram(
    gram: GramSum, spec: ConsumerSpec, a: torch.Tensor, m: torch.Tensor, size: int, *,
    fold: bool = False,
) -> None:
    """``positions`` form: add Σ_n Σ_q X_qᵀ M_n X_q of a batch to ``gram`` (float64).

    Args:
        gram: the C×C float64 Gram.
        spec: the consumer.
        a: the activation from :func:`activation`.
        m: the batch's ``[B, P, P]`` matrices from :func:`add_positions`.
        size: C.
        fold: fold a conv's taps into M first (:func:`folded`): X is then the input over
            its own positions, not unfolded.

    """
    n = m.shape[0]
    p = int(a[0, 0].numel()) if fold else m.shape[1]
    q = spec.owned.shape[1] if fold else taps_of(spec) * spec.owned.shape[1]
    n_step, _ = _steps(n, 1, fixed=9 * size * q * p + 3 * p * p, per_out=0)
    for i in range(0, n, n_step):
        mi = m[i : i + n_step]
        if fold:
            mi = folded(spec, mi, a.shape[2:])
        x = columns(spec, a[i : i + n_step], size, unfold=not fold).double().reshape(
            -1, size * q, p)
        w = torch.bmm(x, mi.double())  # [b, C·Q, P]
        b = x.shape[0]
        xs = x.reshape(b, size, q * p).transpose(0, 1).reshape(size, -1)
        ws = w.reshape(b, size, q * p).transpose(0, 1).reshape(size, -1)
        gram.add(xs, ws)


def _steps(n: int, outs: int, *, fixed: int, per_out: int) -> tuple[int, int]:
    """Return samples and output units per chunk so that one chunk fits :data:`CHUNK`."""
    o_step = max(1, min(outs, (CHUNK - min(fixed, CHUNK // 2)) // max(1, per_out)))
    n_step = max(1, CHUNK // max(1, fixed + o_step * per_out))
    return n_step, o_step


def grouped_chunks(spec: ConsumerSpec, a: torch.Tensor, d: torch.Tensor) -> Iterator[torch.Tensor]:
    """Yield the ``grouped`` kind's per-sample weight gradients ``[b, o, T, S]`` by chunks.

    Args:
        spec: the consumer.
        a: the activation from :func:`activation`.
        d: the output gradient from :func:`output_grad`.

    Yields:
        Gradient chunks; together they hold every (sample, output unit) once.

    """
    taps = taps_of(spec)
    n_step, o_step = _steps(
        d.shape[0], d.shape[1], fixed=a[0].numel() * taps,
        per_out=a.shape[1] * taps + d[0, 0].numel(),
    )
    for i in range(0, d.shape[0], n_step):
        for o in range(0, d.shape[1], o_step):
            yield _grouped(spec, a[i : i + n_step], d[i : i + n_step, o : o + o_step])


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

