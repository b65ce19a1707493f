"""The recurrence of LSTM, GRU and RNN, as the ONNX spec and onnxruntime compute it.

Each op first projects the whole input sequence through ``W`` (``X·Wᵀ + Wb``, one matrix
product for all time steps), then runs the recurrence step by step. The analysis reuses that
split: :func:`input_projection_grad` re-runs the recurrence from the projection to get the
gradient at the projection, i.e. what the input weight ``W`` sees of each sample. What the
attributes mean (activations, clip, directions) is ``_recurrent_attrs.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from onnxprune.opspec import GATES
from onnxprune.shim.ops._recurrent_attrs import (
    Act,
    RecurrentAttrs,
    activations,
    clipped,
    reverse_flags,
)

Tensor = torch.Tensor


def _initial(state: Tensor | None, d: int, batch: int, hidden: int, like: Tensor) -> Tensor:
    if state is None:
        return like.new_zeros(batch, hidden)
    return state[d]


def project(X: Tensor, W: Tensor, B: Tensor | None, *, layout: int = 0) -> Tensor:
    """Return the input projection ``X·Wᵀ + Wb`` of every direction: ``[D, T, N, G·H]``."""
    x = X.transpose(0, 1) if layout else X  # [T, N, I]
    xw = torch.einsum("tni,dgi->dtng", x, W)
    if B is not None:
        xw = xw + B[:, : W.shape[1]].reshape(W.shape[0], 1, 1, -1)
    return xw


def _mask(seq: Tensor | None, t: int, like: Tensor) -> Tensor | None:
    if seq is None:
        return None
    return (seq.to(like.device) > t).to(like.dtype).unsqueeze(1)


Cell = Callable[[Tensor, tuple[Tensor, ...], int], tuple[Tensor, ...]]


def _scan(
    xw: Tensor, state: tuple[Tensor, ...], cell: Cell, reverse: bool, seq: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one direction over time; steps past a sequence's length keep the state, output 0."""
    steps = range(xw.shape[0] - 1, -1, -1) if reverse else range(xw.shape[0])
    ys: list[Tensor] = [xw.new_empty(0)] * xw.shape[0]
    for t in steps:
        new = cell(xw[t], state, t)
        m = _mask(seq, t, xw)
        if m is not None:
            new = tuple(m * n + (1 - m) * s for n, s in zip(new, state, strict=True))
            ys[t] = m * new[0]
        else:
            ys[t] = new[0]
        state = new
    return torch.stack(ys), state


def _finish(
    ys: list[Tensor], finals: list[tuple[Tensor, ...]], layout: int
) -> tuple[Tensor, ...]:
    """Stack directions: Y ``[T, D, N, H]``, states ``[D, N, H]`` (layout 1: batch first)."""
    y = torch.stack(ys, 1)
    states = [torch.stack([f[i] for f in finals]) for i in range(len(finals[0]))]
    if layout:
        return (y.permute(2, 0, 1, 3), *(s.transpose(0, 1) for s in states))
    return (y, *states)


def _state(s: Tensor | None, layout: int) -> Tensor | None:
    return s.transpose(0, 1) if s is not None and layout else s


def _lstm_cell(
    R: Tensor, rb: Tensor, P: Tensor | None, acts: list[Act], clip: float | None,
    input_forget: int,
) -> Cell:
    f, g = (clipped(a, clip) for a in acts[:2])
    h = acts[2]  # onnxruntime clips gate inputs only, not the cell state read by h
    hidden = R.shape[1]
    pi, po, pf = (None, None, None) if P is None else P.split(hidden)

    def cell(xw: Tensor, state: tuple[Tensor, ...], t: int) -> tuple[Tensor, ...]:
        hp, cp = state
        zi, zo, zf, zc = (xw + hp @ R.t() + rb).split(hidden, -1)
        i = f(zi + pi * cp if pi is not None else zi)
        fg = 1 - i if input_forget else f(zf + pf * cp if pf is not None else zf)
        c = fg * cp + i * g(zc)
        o = f(zo + po * c if po is not None else zo)
        return o * h(c), c

    return cell


def _gru_cell(
    R: Tensor, rb: Tensor, acts: list[Act], clip: float | None, linear_before_reset: int
) -> Cell:
    f, g = (clipped(a, clip) for a in acts)
    hidden = R.shape[1]
    rz, rr, rh = R.split(hidden)
    bz, br, bh = rb.split(hidden)

    def cell(xw: Tensor, state: tuple[Tensor, ...], t: int) -> tuple[Tensor, ...]:
        (hp,) = state
        xz, xr, xh = xw.split(hidden, -1)
        z = f(xz + hp @ rz.t() + bz)
        r = f(xr + hp @ rr.t() + br)
        if linear_before_reset:
            n = g(xh + r * (hp @ rh.t() + bh))
        else:
            n = g(xh + (r * hp) @ rh.t() + bh)
        return ((1 - z) * n + z * hp,)

    return cell


def _rnn_cell(R: Tensor, rb: Tensor, acts: list[Act], clip: float | None) -> Cell:
    f = clipped(acts[0], clip)

    def cell(xw: Tensor, state: tuple[Tensor, ...], t: int) -> tuple[Tensor, ...]:
        return (f(xw + state[0] @ R.t() + rb),)

    return cell


def recurrence(
    op_type: str,
    xw: Tensor,
    R: Tensor,
    B: Tensor | None,
    sequence_lens: Tensor | None,
    initial: Sequence[Tensor | None],
    P: Tensor | None,
    attrs: RecurrentAttrs,
) -> tuple[Tensor, ...]:
    """Run ``op_type`` from its input projection ``xw`` (see :func:`project`).

    Args:
        op_type: "LSTM", "GRU" or "RNN".
        xw: ``[D, T, N, G·H]`` input projection with the W bias.
        R: recurrence weights.
        B: the biases (only their R half is used here; the W half is in ``xw``).
        sequence_lens: ``[N]`` lengths, or None for full length.
        initial: initial_h (and initial_c for LSTM), in the op's layout, or None.
        P: LSTM peepholes.
        attrs: the node's attributes.

    Returns:
        Y, Y_h (and Y_c for LSTM) in the op's layout.

    """
    layout = attrs.layout
    hidden = R.shape[-1]
    reverses = reverse_flags(attrs.direction)
    acts = activations(op_type, len(reverses), attrs.activations, attrs.activation_alpha,
                       attrs.activation_beta)
    clip_f = attrs.clip
    gates = GATES[op_type]
    ys, finals = [], []
    for d, reverse in enumerate(reverses):
        rb = B[d, gates * hidden :] if B is not None else xw.new_zeros(gates * hidden)
        if op_type == "LSTM":
            pd = None if P is None else P[d]
            cell = _lstm_cell(R[d], rb, pd, acts[d], clip_f, attrs.input_forget)
        elif op_type == "GRU":
            cell = _gru_cell(R[d], rb, acts[d], clip_f, attrs.linear_before_reset)
        else:
            cell = _rnn_cell(R[d], rb, acts[d], clip_f)
        n = xw.shape[2]
        state = tuple(_initial(_state(s, layout), d, n, hidden, xw) for s in initial)
        y, final = _scan(xw[d], state, cell, reverse, sequence_lens)
        ys.append(y)
        finals.append(final)
    return _finish(ys, finals, layout)


def run(op_type: str, X: Tensor, W: Tensor, R: Tensor, B: Tensor | None,
         sequence_lens: Tensor | None, initial: Sequence[Tensor | None], P: Tensor | None,
         attrs: Mapping[str, Any]) -> tuple[Tensor, ...]:
    typed = RecurrentAttrs.of(attrs)
    xw = project(X, W, B, layout=typed.layout)
    return recurrence(op_type, xw, R, B, sequence_lens, initial, P, typed)


def input_projection_grad(
    op_type: str, inputs: Sequence[Tensor | None], attrs: Mapping[str, Any], dY: Tensor
) -> Tensor:
    """Gradient at the input projection ``X·Wᵀ`` given the gradient at Y: ``[D, T, N, G·H]``.

    Args:
        op_type: "LSTM", "GRU" or "RNN".
        inputs: the node's inputs as run (X, W, R, B, sequence_lens, initial_h, ...).
        attrs: its ONNX attributes.
        dY: gradient at output Y (the node's other outputs must not be read).

    Returns:
        The gradient at every direction's, step's and sample's gate pre-activations.

    """
    ins = list(inputs) + [None] * (8 - len(inputs))
    X, W, R, B, seq = (t.detach() if t is not None else None for t in ins[:5])
    typed = RecurrentAttrs.of(attrs)
    states = ins[5 : 7 if op_type == "LSTM" else 6]
    initial = [t.detach() if t is not None else None for t in states]
    P = ins[7].detach() if op_type == "LSTM" and ins[7] is not None else None
    with torch.enable_grad():
        assert X is not None and W is not None and R is not None  # a node always has them
        xw = project(X, W, B, layout=typed.layout).detach().requires_grad_(True)
        y = recurrence(op_type, xw, R, B, seq, initial, P, typed)[0]
        (g,) = torch.autograd.grad(y, xw, dY)
    return g
