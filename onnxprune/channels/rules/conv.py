"""Conv and ConvTranspose: roots that drop filters, consumers that drop input channels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.index_map import Grouped
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Layout, Rule, Shape, WeightOp, prod
from onnxprune.channels.types import Coupling, Link, Space, WeightUse, barrier


def conv_macs(attrs: Mapping[str, Any], x: Shape, w: Shape, y: Shape | None) -> int:
    """Each output value sums one filter: ``|Y| · C_in/group · kernel``."""
    return prod(y or ()) * prod(w[1:])


def _transpose_macs(attrs: Mapping[str, Any], x: Shape, w: Shape, y: Shape | None) -> int:
    # Each input value scatters through one filter slice: |X| · C_out/group · kernel.
    return prod(x) * prod(w[1:])


def _axes(attrs: Mapping[str, Any], x: Shape | None, y: Shape | None) -> tuple[int, int]:
    return 1, 1


def _depthwise(attrs: Mapping[str, Any], w: Shape) -> bool:
    return int(attrs.get("group", 1)) > 1 and w[1] == 1


def _conv_gradient(rank: int, group: int) -> str | None:
    # 1-D/2-D convs unfold their patches; 3-D ones fold the batch into conv groups.
    if group == 1 and rank in (3, 4):
        return "unfold"
    return "grouped" if group == 1 and rank >= 3 else None


def _transpose_gradient(rank: int, group: int) -> str | None:
    return "grouped" if group == 1 and rank >= 3 else None


def _conv_layout(attrs: Mapping[str, Any], x: Shape, w: Shape) -> Layout | None:
    # Dense: W is [out, in, k...]. Depthwise (one channel per group): refit per channel.
    group = int(attrs.get("group", 1))
    if group == 1:
        return 1, 1, False
    return (1, 0, True) if group == x[1] and w[1] == 1 else None


def _transpose_layout(attrs: Mapping[str, Any], x: Shape, w: Shape) -> Layout | None:
    return (1, 0, False) if int(attrs.get("group", 1)) == 1 else None  # W is [in, out, k...]


def _fold_bias(ctx: Context, node: gs.Node, change: np.ndarray, dtype: np.dtype) -> bool:
    """Add to B (input 2), created when absent; not to a bias computed at run time."""
    old = ctx.input_const(node, 2) if len(node.inputs) > 2 and node.inputs[2].name else None
    if old is None and len(node.inputs) > 2 and node.inputs[2].name:
        return False  # a run-time bias
    base = np.zeros(change.shape, dtype=dtype) if old is None else old
    ctx.set_input_const(node, 2, (base + change).astype(base.dtype))
    return True


@register("Conv", "ConvTranspose")
class ConvRule(Rule):
    """Output channels are filters (root); input channels index the weights (consumer).

    Grouped and depthwise convs tie each conv group's input and output channels together, so
    whole groups are removed and the ``group`` attribute shrinks with them.
    """

    weight_ops = {
        "Conv": WeightOp(trainable=(1, 2), macs=conv_macs, axes=_axes, depthwise=_depthwise,
                         gradient=_conv_gradient, fold_bias=_fold_bias, layout=_conv_layout),
        # No depthwise flag: the cost model has always costed ConvTranspose as dense.
        "ConvTranspose": WeightOp(trainable=(1, 2), macs=_transpose_macs, axes=_axes,
                                  gradient=_transpose_gradient, fold_bias=_fold_bias,
                                  layout=_transpose_layout),
    }

    @staticmethod
    def _axes(node: gs.Node) -> tuple[int, int]:
        # (weight axis of output channels, weight axis of input channels)
        return (1, 0) if node.op == "ConvTranspose" else (0, 1)

    def roots(self, ctx: Context, node: gs.Node) -> list[tuple[Space, Coupling]]:
        """Return the output channel space (a barrier when the weights are not constant)."""
        space = Space(node.outputs[0].name, 1)
        if not ctx.input_is_const(node, 1):
            # Reported rather than left out, so inspect says why (QDQ weights, typically).
            out_ax, _ = self._axes(node)
            maker = ctx.producer(node.inputs[1].name)
            by = f" by {ctx.describe(maker)}" if maker is not None else ""
            reason = f"{ctx.describe(node)} has weights computed at run time{by}"
            return [(space, Coupling(barrier=reason,
                                     weight=WeightUse(node.inputs[1].name, out_ax, "root")))]
        return [(space, self.couple(ctx, node, space))]

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Root on output axis 1, consumer on input axis 1, grouped link when group > 1."""
        x, y = node.inputs[0].name, node.outputs[0].name
        if not ctx.input_is_const(node, 1):
            return barrier(f"{ctx.describe(node)} has weights computed at run time")
        if ctx.positions(node, space.tensor) not in ([0], []) or space.axis != 1:
            return barrier(f"channels reach axis {space.axis} of {ctx.describe(node)}")
        out_ax, in_ax = self._axes(node)
        group = int(ctx.attr(node, "group", 1))
        if group == 1:
            if space.tensor == y:
                return Coupling(absorbs=True, weight=WeightUse(node.inputs[1].name, out_ax, "root"))
            return Coupling(absorbs=True, weight=WeightUse(node.inputs[1].name, in_ax, "consumer"))
        n_in, n_out = ctx.dim(Space(x, 1)), ctx.dim(Space(y, 1))
        if n_in is None or n_out is None:
            return barrier(f"{ctx.describe(node)} has unknown channel counts")
        link = Link(Space(x, 1), Space(y, 1), Grouped(n_in // group, n_out // group))
        weight = WeightUse(node.inputs[1].name, out_ax, "root") if space.tensor == y else None
        return Coupling(links=(link,), absorbs=True, weight=weight)

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Slice weights and bias; for grouped convs also the ``group`` attribute."""
        x, y = node.inputs[0].name, node.outputs[0].name
        out_ax, in_ax = self._axes(node)
        group = int(ctx.attr(node, "group", 1))
        if not ctx.input_is_const(node, 1):
            raise RuntimeError(f"{ctx.describe(node)}: weights vanished during surgery")
        keep_out, keep_in = keep.get(Space(y, 1)), keep.get(Space(x, 1))
        # take_input also slices weights stored quantised (with their per-axis scales).
        if group > 1:
            n_in, n_out = ctx.dim(Space(x, 1)), ctx.dim(Space(y, 1))
            if keep_in is not None and n_in:
                node.attrs["group"] = len(keep_in) * group // n_in
            elif keep_out is not None and n_out:
                node.attrs["group"] = len(keep_out) * group // n_out
            # Conv keeps each group's filters on axis 0, ConvTranspose its inputs on axis 0.
            if node.op == "Conv" and keep_out is not None:
                ctx.take_input(node, 1, 0, keep_out)
            if node.op == "ConvTranspose" and keep_in is not None:
                ctx.take_input(node, 1, 0, keep_in)
        else:
            if keep_out is not None:
                ctx.take_input(node, 1, out_ax, keep_out)
            if keep_in is not None:
                ctx.take_input(node, 1, in_ax, keep_in)
        if keep_out is not None and ctx.input_name(node, 2) is not None:
            ctx.take_input(node, 2, 0, keep_out)
