"""Normalisations: per-channel ones follow the channels and slice their vectors."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import AxisRule, WeightOp
from onnxprune.channels.types import Coupling, Space


def _extra_outputs_used(ctx: Context, node: gs.Node) -> bool:
    # A secondary output that is a graph output counts as used: its shape must not change.
    return any(t.outputs or t.name in ctx.outputs for t in node.outputs[1:])


@register("BatchNormalization", "InstanceNormalization")
class PerChannelNormRule(AxisRule):
    """Channels on axis 1 pass through; scale, bias (and BN mean/var) are sliced."""

    # Scale and bias train in distillation; BN's running mean/var are frozen by the shim.
    weight_ops = {op: WeightOp(trainable=(1, 2))
                  for op in ("BatchNormalization", "InstanceNormalization")}

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Batch and channel axes pass; InstanceNorm mixes spatial positions."""
        if _extra_outputs_used(ctx, node):
            return f"{ctx.describe(node)} uses training-mode outputs"
        rank = len(ctx.shape(node.inputs[0].name) or ())
        if node.op == "InstanceNormalization":
            return {0: 0, 1: 1}
        return {a: a for a in range(rank)}

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Like every axis rule, and absorbs on the channel axis (vectors get sliced)."""
        c = super().couple(ctx, node, space)
        if c.barrier is None and space.axis == 1:
            return Coupling(links=c.links, absorbs=True)
        return c

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Slice every per-channel vector input."""
        k = keep.get(Space(node.inputs[0].name, 1))
        if k is None:
            return
        for i in range(1, len(node.inputs)):
            if ctx.input_name(node, i) is not None:
                ctx.take_input(node, i, 0, k)


@register("LayerNormalization")
class LayerNormRule(AxisRule):
    """Axes before ``axis`` pass; channels on a normalised axis block (mean over channels)."""

    weight_ops = {"LayerNormalization": WeightOp(trainable=(1, 2))}  # scale, bias

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Identity on the axes that are not normalised."""
        if _extra_outputs_used(ctx, node):
            return f"{ctx.describe(node)} uses its mean/inv-std outputs"
        rank = len(ctx.shape(node.inputs[0].name) or ())
        axis = int(ctx.attr(node, "axis", -1)) % max(rank, 1)
        return {a: a for a in range(axis)}

    def blocked(self, ctx: Context, node: gs.Node, axis: int) -> str:
        """Normalising across channels changes every channel when one is removed."""
        return f"{ctx.describe(node)} normalises across the channels of axis {axis}"


