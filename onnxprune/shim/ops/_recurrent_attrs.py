"""What the attributes of LSTM, GRU and RNN mean: activations, clip, directions, layout.

The activation functions are named as in the ONNX spec, each direction's ``f, g, h`` in order,
with ``activation_alpha``/``activation_beta`` taken in order by the functions that have them
(spec defaults otherwise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from onnxprune.errors import UnsupportedOpError

Tensor = torch.Tensor
Act = Callable[[Tensor], Tensor]

# Activation name -> (function of (x, alpha, beta), default alpha, default beta); the ones
# with a default take their value from activation_alpha / activation_beta in order.
_ACTS: dict[str, tuple[Callable[[Tensor, float, float], Tensor], float | None, float | None]] = {
    "relu": (lambda x, a, b: torch.relu(x), None, None),
    "tanh": (lambda x, a, b: torch.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: torch.sigmoid(x), None, None),
    "affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: torch.where(x >= 0, x, a * x), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: torch.where(x >= a, x, torch.zeros_like(x)), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * torch.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: torch.clamp(a * x + b, 0.0, 1.0), 0.2, 0.5),
    "elu": (lambda x, a, b: torch.where(x >= 0, x, a * torch.expm1(x)), 1.0, None),
    "softsign": (lambda x, a, b: x / (1 + x.abs()), None, None),
    "softplus": (lambda x, a, b: torch.nn.functional.softplus(x), None, None),
}


_DEFAULT_ACTS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}


@dataclass(frozen=True)
class RecurrentAttrs:
    """The ONNX attributes of LSTM/GRU/RNN that shape the computation (spec defaults)."""

    direction: str = "forward"
    activations: tuple[str, ...] | None = None
    activation_alpha: tuple[float, ...] | None = None
    activation_beta: tuple[float, ...] | None = None
    clip: float | None = None
    layout: int = 0
    input_forget: int = 0
    linear_before_reset: int = 0

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> RecurrentAttrs:
        """Pick the known attributes (others, such as hidden_size, are implied by R)."""
        known = {f.name for f in fields(cls)}
        picked = {k: v for k, v in attrs.items() if k in known and v is not None}
        for k in ("activations", "activation_alpha", "activation_beta"):
            if k in picked:
                conv = _name if k == "activations" else float
                picked[k] = tuple(conv(a) for a in picked[k])
        if "direction" in picked:
            picked["direction"] = _name(picked["direction"])
        return cls(**picked)


def _name(a: str | bytes) -> str:
    return (a.decode() if isinstance(a, bytes) else str(a)).lower()


def activations(
    op_type: str,
    directions: int,
    names: Sequence[str | bytes] | None,
    alphas: Sequence[float] | None,
    betas: Sequence[float] | None,
) -> list[list[Act]]:
    """Return the activation functions of each direction (``[direction][f, g, h]``).

    Raises:
        UnsupportedOpError: an activation name the spec does not define.

    """
    per = len(_DEFAULT_ACTS[op_type])
    listed = [_name(n) for n in (names or _DEFAULT_ACTS[op_type])]
    if len(listed) == per and directions == 2:
        listed = listed * 2
    alpha_it, beta_it = iter(alphas or ()), iter(betas or ())
    fns: list[Act] = []
    for n in listed:
        if n not in _ACTS:
            raise UnsupportedOpError(
                f"{op_type} activation '{n}' is not in the ONNX spec; use one of {sorted(_ACTS)}"
            )
        fn, da, db = _ACTS[n]
        a = next(alpha_it, da) if da is not None else 0.0
        b = next(beta_it, db) if db is not None else 0.0
        fns.append(functools.partial(_bound, fn, float(a), float(b)))
    return [fns[d * per : (d + 1) * per] for d in range(directions)]


def _bound(fn: Callable[[Tensor, float, float], Tensor], a: float, b: float, x: Tensor) -> Tensor:
    return fn(x, a, b)


def clipped(act: Act, clip: float | None) -> Act:
    """Return ``act`` applied to its input clipped to [-clip, clip] (``act`` without a clip)."""
    if clip is None:
        return act
    return lambda x: act(torch.clamp(x, -clip, clip))


def reverse_flags(direction: str | bytes) -> list[bool]:
    """``reverse`` flag of each direction."""
    d = _name(direction)
    return {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[d]
