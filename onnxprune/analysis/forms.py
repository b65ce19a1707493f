"""Add a batch's per-sample consumer-weight gradients to a Gram: the ``rows``/``positions`` forms.

``rows`` forms the gradient rows D_rᵀX and adds their Gram; ``positions`` accumulates
M = Σ_r D_r D_rᵀ over the directions and adds X_qᵀ M X_q (with a conv's taps optionally folded
into M, :func:`folded`). The ``grouped`` kind's gradients come from differentiating the shim's
own kernel (:func:`grouped_chunks`). :mod:`onnxprune.analysis.gradients` says when each form is
used; every temporary is chunked to :data:`CHUNK` elements.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from onnxprune.analysis.gramsum import GramSum
from onnxprune.analysis.layout import columns, geometry, positions_of, taps_of
from onnxprune.analysis.specs import ConsumerSpec

CHUNK = 1 << 24
"""Elements allowed in one temporary: 64 MiB of float32 (the float64 ones get half as many)."""


def add_rows(gram: GramSum, spec: ConsumerSpec, a: torch.Tensor,
             ds: torch.Tensor | Sequence[torch.Tensor], size: int,
             x: torch.Tensor | None = None) -> int:
    """``rows`` form: add the per-sample gradient rows of one or more directions to ``gram``.

    Args:
        gram: the C×C float64 Gram.
        spec: the consumer (not ``grouped``).
        a: the activation from :func:`~onnxprune.analysis.layout.activation`.
        ds: the output gradients from :func:`~onnxprune.analysis.layout.output_grad`, one per
            direction (the activation is laid out once for all of them).
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
        a: the activation from :func:`~onnxprune.analysis.layout.activation`.
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
    g = geometry(spec, spatial)
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


def _steps(n: int, outs: int, *, fixed: int, per_out: int) -> tuple[int, int]:
    """Return samples and output units per chunk so that one chunk fits :data:`CHUNK`."""
    o_step = max(1, min(outs, (CHUNK - min(fixed, CHUNK // 2)) // max(1, per_out)))
    n_step = max(1, CHUNK // max(1, fixed + o_step * per_out))
    return n_step, o_step


def grouped_chunks(spec: ConsumerSpec, a: torch.Tensor, d: torch.Tensor) -> Iterator[torch.Tensor]:
    """Yield the ``grouped`` kind's per-sample weight gradients ``[b, o, T, S]`` by chunks.

    Args:
        spec: the consumer.
        a: the activation from :func:`~onnxprune.analysis.layout.activation`.
        d: the output gradient from :func:`~onnxprune.analysis.layout.output_grad`.

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
