"""Elementwise ops: channels pass through; broadcasting decides what couples.

A trivial elementwise op is one string in ``UNARY`` or ``NARY``. Inputs are aligned from the
right (numpy broadcasting): a run-time input whose aligned dim equals the channel count is tied
to the output; a constant one (per-channel scale, bias, PReLU slope) is sliced; a dim of 1 or a
missing axis broadcasts and needs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.index_map import Identity
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Rule, WeightOp
from onnxprune.channels.types import Coupling, Link, Space, barrier

UNARY = (
    "Relu LeakyRelu Clip Sigmoid HardSigmoid HardSwish Tanh Elu Selu Celu Gelu Erf Softplus "
    "Softsign Mish ThresholdedRelu Identity Dropout Cast Sqrt Exp Log Neg Abs Reciprocal "
    "Floor Ceil Round Sign Not Sin Cos IsNaN IsInf"
).split()
NARY = (
    "Add Sub Mul Div Max Min Pow Sum Mean PRelu Where Equal Less Greater LessOrEqual "
    "GreaterOrEqual And Or Xor Mod"
).split()


@register(*UNARY, *NARY)
class ElementwiseRule(Rule):
    """Channels pass one-to-one; same-sized run-time inputs couple, constants are sliced."""

    weight_ops = {"PRelu": WeightOp(trainable=(1,))}  # the slope trains in distillation

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Tie the space to the output axis it broadcasts to and to every same-sized input."""
        y = node.outputs[0].name
        if any(t.outputs or t.name in ctx.outputs for t in node.outputs[1:]):
            return barrier(f"{ctx.describe(node)} uses a second output")
        ys, ss = ctx.shape(y), ctx.shape(space.tensor)
        if ys is None or ss is None:
            return barrier(f"{ctx.describe(node)} has tensors of unknown shape")
        out_axis = space.axis if space.tensor == y else space.axis + len(ys) - len(ss)
        n = ys[out_axis]
        if ss[space.axis] != n:
            return barrier(
                f"{ctx.describe(node)} broadcasts the {ss[space.axis]} channel(s) of "
                f"'{space.tensor}' over {n}"
            )
        links, absorbs = [], False
        for t in node.inputs:
            shape = ctx.shape(t.name) if t.name else None
            if shape is None:
                continue
            ax = out_axis - (len(ys) - len(shape))
            if ax < 0 or shape[ax] == 1:
                continue
            if shape[ax] != n:
                return barrier(f"{ctx.describe(node)}: input '{t.name}' does not broadcast")
            if ctx.const(t.name) is not None:
                absorbs = True
            else:
                links.append(Link(Space(t.name, ax), Space(y, out_axis), Identity()))
        return Coupling(links=tuple(links), absorbs=absorbs)

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Slice constant inputs along every output axis that shrank."""
        y = node.outputs[0].name
        ys = ctx.shape(y) or ()
        for space, k in keep.items():
            if space.tensor != y:
                continue
            for i in range(len(node.inputs)):
                value = ctx.input_const(node, i)
                if value is None:
                    continue
                ax = space.axis - (len(ys) - value.ndim)
                if ax >= 0 and value.shape[ax] == ys[space.axis] and value.shape[ax] > 1:
                    ctx.take_input(node, i, ax, k)
