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
  (:func:`~onnxprune.analysis.forms.folded`; a 3×3 conv then does one product with C where it
  did nine).

The Gram is symmetric, so :class:`~onnxprune.analysis.gramsum.GramSum` forms only its upper
block triangle.

This module chooses between the forms: :func:`choose_form` picks the one with fewer flops,
:func:`fold_taps` whether ``positions`` folds the taps, :func:`keep_layout` what ``rows`` keeps
through a batch. :mod:`~onnxprune.analysis.layout` lays out X and D,
:mod:`~onnxprune.analysis.forms` computes each form (their names are re-exported here, their
old home). :mod:`~onnxprune.analysis.gram` calls the three choices through this module, where
tests patch them to force a form.

Products that decide exact redundancy (X against anything) are float64 or exact float32
products summed in float64, so a channel that is a linear combination of others leaves an
eigenvalue at float32 round-off squared (≲1e-14·λ_1) in both forms. Work is split into chunks
bounded by :data:`CHUNK` elements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from onnxprune.analysis.forms import (
    CHUNK,
    add_positions,
    add_positions_gram,
    add_rows,
    folded,
    grouped_chunks,
)
from onnxprune.analysis.layout import (
    CONV_KINDS,
    activation,
    columns,
    geometry,
    output_grad,
    outputs_of,
    positions_of,
    taps_of,
)
from onnxprune.analysis.specs import ConsumerSpec

__all__ = [  # the form choice here; the layout and the forms re-exported under their old home
    "CHUNK", "CONV_KINDS", "FORMS", "activation", "add_positions", "add_positions_gram",
    "add_rows", "choose_form", "columns", "fold_taps", "folded", "grouped_chunks",
    "keep_layout", "output_grad", "outputs_of", "positions_of", "taps_of",
]

FORMS = ("rows", "positions")
_F64_COST = 2.0  # a float64 flop costs about two float32 ones (half the SIMD width)


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
    (:func:`~onnxprune.analysis.forms.folded`). For a k×k conv that replaces k² products with C
    by one, at the price of M̃ being over the input's positions rather than the output's.
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
    geo = geometry(spec, inputs)
    padded = math.prod(geo.padded)
    if batch * padded * padded > CHUNK:
        return None
    pin, m, c = math.prod(inputs), spec.owned.shape[1], size
    return taps_of(spec) * positions * positions + _F64_COST * m * (pin * pin * c + pin * c * c)


def keep_layout(layout: int, held: int) -> bool:
    """Tell whether the rows form keeps a batch's laid-out activation across directions.

    The alternative holds the batch's output gradients until it closes: keep whichever is
    smaller (``layout`` or ``held`` elements), the layout only within :data:`CHUNK`.
    """
    return layout <= min(CHUNK, held)
