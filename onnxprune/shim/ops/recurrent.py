"""Recurrent kernels: LSTM, GRU and RNN (the recurrence itself is in ``_recurrence``)."""

from __future__ import annotations

import torch

from onnxprune.shim.ops._recurrence import run
from onnxprune.shim.registry import op

Tensor = torch.Tensor


@op("LSTM", 7, 14)
def LSTM(
    X: Tensor,
    W: Tensor,
    R: Tensor,
    B: Tensor | None = None,
    sequence_lens: Tensor | None = None,
    initial_h: Tensor | None = None,
    initial_c: Tensor | None = None,
    P: Tensor | None = None,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    input_forget: int = 0,
    layout: int = 0,
) -> tuple[Tensor, ...]:
    """Long short-term memory; gates ordered i, o, f, c; peepholes P ordered i, o, f."""
    attrs = dict(locals())
    return run("LSTM", X, W, R, B, sequence_lens, [initial_h, initial_c], P, attrs)


@op("GRU", 7, 14)
def GRU(
    X: Tensor,
    W: Tensor,
    R: Tensor,
    B: Tensor | None = None,
    sequence_lens: Tensor | None = None,
    initial_h: Tensor | None = None,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    layout: int = 0,
    linear_before_reset: int = 0,
) -> tuple[Tensor, ...]:
    """Gated recurrent unit; gates ordered z, r, h."""
    attrs = dict(locals())
    return run("GRU", X, W, R, B, sequence_lens, [initial_h], None, attrs)


@op("RNN", 7, 14)
def RNN(
    X: Tensor,
    W: Tensor,
    R: Tensor,
    B: Tensor | None = None,
    sequence_lens: Tensor | None = None,
    initial_h: Tensor | None = None,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    layout: int = 0,
) -> tuple[Tensor, ...]:
    """Run a simple recurrent network ``H = f(X·Wᵀ + H·Rᵀ + Wb + Rb)``."""
    attrs = dict(locals())
    return run("RNN", X, W, R, B, sequence_lens, [initial_h], None, attrs)
