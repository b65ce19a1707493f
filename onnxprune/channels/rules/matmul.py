"""MatMul: constant 2-D W (root on Y's last axis, consumer on X's) or attention.

Between two run-time tensors (attention) heads and rows pass, the contracted axis blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.index_map import Identity
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Layout, Rule, Shape, WeightOp, prod
from onnxprune.channels.types import Coupling, Link, Space, WeightUse, barrier


def matmul_macs(attrs: Mapping[str, Any], x: Shape, w: Shape, y: Shape | None) -> int:
    """Each output value is a dot product over X's last axis: ``|Y| · K``."""
    return prod(y or ()) * int(x[-1])


def _matmul_axes(attrs: Mapping[str, Any], x: Shape | None, y: Shape | None) -> tuple[int, int]:
    return (len(x) - 1 if x else -1), (len(y) - 1 if y else -1)


def _matmul_layout(attrs: Mapping[str, Any], x: Shape, w: Shape) -> Layout | None:
    return (len(x) - 1, 0, False) if len(w) == 2 else None  # X's last axis, W's rows


def _fold_bias(ctx: Context, node: gs.Node, change: np.ndarray, dtype: np.dtype) -> bool:
    """Add to the constant of an ``Add`` that biases the MatMul's output on its last axis."""
    users = ctx.consumers(node.outputs[0].name)
    if len(users) != 1 or users[0].op != "Add":
        return False
    add = users[0]
    for i, t in enumerate(add.inputs):
        c = ctx.input_const(add, i)
        if c is None or t.name == node.outputs[0].name:
            continue
        if c.ndim >= 1 and c.shape[-1] == change.size and c.size == change.size:
            ctx.set_input_const(add, i, (c + change.reshape(c.shape)).astype(c.dtype))
            return True
    return False


def batched_coupling(ctx: Context, node: gs.Node, space: Space) -> Coupling:
    """Couple ``Y = A·B`` of two run-time tensors (attention).

    Batch axes (heads) tie A, B and Y; A's rows and B's columns tie to Y's; the contracted
    axis mixes channels and blocks.
    """
    names = [node.inputs[0].name, node.inputs[1].name, node.outputs[0].name]
    found = [ctx.shape(n) for n in names]
    shapes = [s for s in found if s is not None and len(s) >= 2]
    if len(shapes) != 3 or names[0] == names[1]:
        return barrier(f"{ctx.describe(node)} multiplies run-time tensors of unknown shapes")
    rank = len(shapes[2])
    role = names.index(space.tensor)
    out_axis = space.axis + rank - len(shapes[role])
    if out_axis == {0: rank - 1, 1: rank - 2}.get(role):
        return barrier(f"{ctx.describe(node)} contracts the channels of '{space.tensor}'")
    links = []
    for i in (0, 1):
        ax = out_axis - (rank - len(shapes[i]))
        if ax < 0 or (out_axis >= rank - 2 and out_axis != rank - 2 + i):
            continue  # a batch axis the input lacks, or the other input's row/column axis
        if shapes[i][ax] == shapes[2][out_axis]:
            links.append(Link(Space(names[i], ax), Space(names[2], out_axis), Identity()))
        elif shapes[i][ax] != 1:
            return barrier(f"{ctx.describe(node)}: input '{names[i]}' does not broadcast")
    return Coupling(links=tuple(links))


@register("MatMul")
class MatMulRule(Rule):
    """``Y = X·W`` with constant 2-D W: Y's last axis is a root, X's last axis is consumed."""

    # Either operand may be the stored weight (W·X too): both train when they are constants.
    weight_ops = {"MatMul": WeightOp(
        trainable=(0, 1), macs=matmul_macs, axes=_matmul_axes, batched=True,
        gradient=lambda rank, group: "matmul" if rank == 2 else None,
        fold_bias=_fold_bias, layout=_matmul_layout,
    )}

    def roots(self, ctx: Context, node: gs.Node) -> list[tuple[Space, Coupling]]:
        """The output's last axis, when W is a constant matrix."""
        w = ctx.input_const(node, 1)
        shape = ctx.shape(node.outputs[0].name)
        if w is None or w.ndim != 2 or not shape:
            return []
        space = Space(node.outputs[0].name, len(shape) - 1)
        return [(space, self.couple(ctx, node, space))]

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Root/consumer on the last axes; leading axes of X tie to Y's."""
        x, y = node.inputs[0].name, node.outputs[0].name
        w = ctx.input_const(node, 1)
        xs, ys = ctx.shape(x), ctx.shape(y)
        if w is None and not ctx.is_const(x):
            return batched_coupling(ctx, node, space)
        if w is None or w.ndim != 2 or ctx.positions(node, space.tensor) not in ([0], []):
            return barrier(f"{ctx.describe(node)} multiplies two run-time tensors")
        if xs is None or ys is None or len(xs) < 2:
            return barrier(f"{ctx.describe(node)} has inputs of unknown or vector shape")
        if space.tensor == y and space.axis == len(ys) - 1:
            return Coupling(absorbs=True, weight=WeightUse(node.inputs[1].name, 1, "root"))
        if space.tensor == x and space.axis == len(xs) - 1:
            return Coupling(absorbs=True, weight=WeightUse(node.inputs[1].name, 0, "consumer"))
        other = space.axis + (len(ys) - len(xs)) * (1 if space.tensor == x else -1)
        if other < 0:
            return barrier(f"{ctx.describe(node)} broadcasts a channel axis")
        pair = (space, Space(y, other)) if space.tensor == x else (Space(x, other), space)
        return Coupling(links=(Link(pair[0], pair[1], Identity()),))

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Slice W's columns (kept outputs) and rows (kept inputs)."""
        x, y = node.inputs[0].name, node.outputs[0].name
        xs, ys = ctx.shape(x), ctx.shape(y)
        if not ctx.input_is_const(node, 1) and not ctx.is_const(x):
            return  # two run-time tensors: nothing of its own to shrink
        if not ctx.input_is_const(node, 1) or xs is None or ys is None:
            raise RuntimeError(f"{ctx.describe(node)}: weights vanished during surgery")
        keep_out, keep_in = keep.get(Space(y, len(ys) - 1)), keep.get(Space(x, len(xs) - 1))
        if keep_out is not None:
            ctx.take_input(node, 1, 1, keep_out)
        if keep_in is not None:
            ctx.take_input(node, 1, 0, keep_in)
