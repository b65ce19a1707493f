"""LSTM, GRU and RNN: the input features are consumed by W; the hidden size is a barrier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Rule, Shape, WeightOp
from onnxprune.channels.types import Coupling, Space, WeightUse, barrier
from onnxprune.opspec import GATES

FEATURES = 2
"""X's feature axis, in both layouts (``[T, N, I]`` and ``[N, T, I]``)."""



def recurrent_macs(op: str, x: Sequence[int], w: Sequence[int]) -> tuple[int, int]:
    """MACs of a recurrent op: (input projection X·Wᵀ, recurrence H·Rᵀ), gates included.

    Args:
        op: "LSTM", "GRU" or "RNN".
        x: X's shape (``[T, N, I]``, or ``[N, T, I]`` with ``layout=1``).
        w: W's shape ``[num_directions, gates·hidden, input_size]``.

    """
    steps_batch = int(x[0]) * int(x[1])
    rows = int(w[0]) * int(w[1])  # directions x gates x hidden
    hidden = int(w[1]) // GATES[op]
    return steps_batch * rows * int(w[2]), steps_batch * rows * hidden


def _macs(op: str, attrs: Mapping[str, Any], x: Shape, w: Shape, y: Shape | None) -> int:
    return sum(recurrent_macs(op, x, w))


def _projection(op: str, attrs: Mapping[str, Any], x: Shape, w: Shape, y: Shape | None) -> int:
    return recurrent_macs(op, x, w)[0]


def _fold_bias(ctx: Context, node: gs.Node, change: np.ndarray, dtype: np.dtype) -> bool:
    """Add ``change`` ``[directions, gates·hidden]`` to the W half of B (created if absent)."""
    has_b = ctx.input_name(node, 3) is not None
    old = ctx.input_const(node, 3) if has_b else None
    if has_b and old is None:
        return False  # a run-time bias
    rows = change.shape[1]
    base = np.zeros((change.shape[0], 2 * rows), dtype=dtype) if old is None else old.copy()
    base[:, :rows] += change.astype(base.dtype)
    ctx.set_input_const(node, 3, base)
    return True


def _no_refit(attrs: Mapping[str, Any], x: Shape, w: Shape) -> None:
    return None  # refinement does not refit recurrent ops: their one-shot update stands


def _weight_op(op: str) -> WeightOp:
    # Only the input projection shrinks with pruned input features (the hidden size is never
    # pruned), and only W's size: R stays. Y's hidden axis is no pruned channel axis (-1).
    return WeightOp(
        macs=partial(_macs, op), pruned_macs=partial(_projection, op),
        axes=lambda attrs, x, y: (FEATURES, -1), cost_inputs=(1,),
        gradient=lambda rank, group: "recurrent" if rank == 3 else None,
        fold_bias=_fold_bias, layout=_no_refit,
    )


@register("LSTM", "GRU", "RNN")
class RecurrentRule(Rule):
    """X's features index W's last axis like Gemm input features (consumer, absorbed).

    The hidden size stays: each hidden unit feeds back through R into every gate of the next
    step, so Y, Y_h and Y_c (and the time and batch axes of X) block with a reason.
    """

    weight_ops = {op: _weight_op(op) for op in GATES}  # not trained by distillation

    def roots(self, ctx: Context, node: gs.Node) -> list[tuple[Space, Coupling]]:
        """Y's hidden axis as a root that is always blocked, so that inspect names why."""
        y = node.outputs[0].name if node.outputs else ""
        if not y or not ctx.consumers(y) or not ctx.input_is_const(node, 1):
            return []
        space = Space(y, 3)  # Y is [T, D, N, H] (layout 1: [N, T, D, H])
        reason = self.couple(ctx, node, space).barrier
        return [(space, Coupling(barrier=reason, weight=WeightUse(node.inputs[1].name, 1, "root")))]

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Consumer on X's feature axis when W is constant; a barrier anywhere else."""
        x = node.inputs[0].name
        if space.tensor in {t.name for t in node.outputs}:
            return barrier(
                f"{ctx.describe(node)}: its hidden size is not pruned (each hidden unit feeds "
                "back through R into every gate); prune the features feeding X instead"
            )
        if space.tensor != x or ctx.positions(node, x) != [0]:
            return barrier(f"channels reach a state or weight input of {ctx.describe(node)}")
        if space.axis != FEATURES:
            return barrier(f"{ctx.describe(node)} runs along axis {space.axis} (steps or batch)")
        if not ctx.input_is_const(node, 1):
            return barrier(f"{ctx.describe(node)} has input weights W computed at run time")
        return Coupling(absorbs=True, weight=WeightUse(node.inputs[1].name, 2, "consumer"))

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Keep W's columns (last axis) of the kept input features."""
        keep_in = keep.get(Space(node.inputs[0].name, FEATURES))
        if keep_in is not None:
            ctx.take_input(node, 1, 2, keep_in)
