"""The interface every channel rule implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.types import Coupling, Space, barrier

if TYPE_CHECKING:
    from onnxprune.channels.context import Context


Shape = tuple[int, ...]
MacsFn = Callable[[Mapping[str, Any], Shape, Shape, Shape | None], int]
"""MACs of one node from (attributes, X's shape, W's shape, Y's shape)."""
AxesFn = Callable[[Mapping[str, Any], Shape | None, Shape | None], tuple[int, int]]
"""(X's channel axis, Y's channel axis) from (attributes, X's shape, Y's shape); -1: none."""
Layout = tuple[int, int, bool]
"""(X's channel axis, W's input axis, depthwise: one W slice per channel)."""
LayoutFn = Callable[[Mapping[str, Any], Shape, Shape], Layout | None]
"""Where refinement refits a node's input channels, from (attributes, X's shape, W's shape);
None where it cannot (the one-shot compensation stands)."""
FoldFn = Callable[["Context", gs.Node, np.ndarray, np.dtype], bool]
"""Add a bias change to a node's bias, from (context, node, change, W's dtype), creating the
bias where the op allows it; False where there is none to add to (a run-time bias)."""


def prod(xs: Sequence[int]) -> int:
    """Product of a shape's dims as a Python int (1 for a scalar's empty shape)."""
    return int(np.prod(xs, dtype=np.int64)) if len(xs) else 1


@dataclass(frozen=True)
class WeightOp:
    """What an op with weights means besides its channels: cost, gradients, training.

    Attributes:
        trainable: input positions distillation trains (weights, biases, norm scales).
        weight: input position of W (QLinear ops: after X's scale and zero point).
        macs: MACs of a node; ``None`` when the op's MACs are not counted.
        pruned_macs: the part of ``macs`` that shrinks with pruned channels when not all of it
            (recurrent ops: the input projection; Y's shape may then be ``None``).
        axes: the channel axes the allocation cost model reads; ``None`` keeps the op out of it.
        cost_inputs: inputs whose sizes make the op's parameter cost (W, bias).
        depthwise: whether (attributes, W's shape) reads one input channel per output channel,
            so that its cost scales with the output share alone.
        batched: with a run-time W (attention), the cost shrinks with the heads on batch axes.
        gradient: how the analysis forms per-sample W gradients, from (W's rank, ``group``):
            ``unfold``, ``grouped``, ``gemm``, ``matmul``, ``recurrent``; ``None``: unsupported.
        fold_bias: how compensation folds an intercept into the node's bias (one value per
            output unit; recurrent ops: ``[directions, gates·hidden]``, the W half of B).
            Every op with a ``gradient`` has one (the analysis' Gram makes it compensated).
        layout: where refinement refits the node's input channels (see :data:`LayoutFn`);
            every op with a ``gradient`` has one.

    """

    trainable: tuple[int, ...] = ()
    weight: int = 1
    macs: MacsFn | None = None
    pruned_macs: MacsFn | None = None
    axes: AxesFn | None = None
    cost_inputs: tuple[int, ...] = (1, 2)
    depthwise: Callable[[Mapping[str, Any], Shape], bool] | None = None
    batched: bool = False
    gradient: Callable[[int, int], str | None] | None = None
    fold_bias: FoldFn | None = None
    layout: LayoutFn | None = None

    def node_macs(
        self, attrs: Mapping[str, Any], ins: Sequence[Shape | None], out: Shape | None
    ) -> int:
        """MACs of a node from its input and output shapes (0 when X, W or Y is unknown)."""
        x, w = _at(ins, 0), _at(ins, self.weight)
        if self.macs is None or out is None or x is None or w is None:
            return 0
        return self.macs(attrs, x, w, out)

    def shrinking_macs(
        self, attrs: Mapping[str, Any], ins: Sequence[Shape | None], out: Shape | None
    ) -> int:
        """The MACs that scale with the kept channels (all of them unless ``pruned_macs``)."""
        if self.pruned_macs is None:
            return self.node_macs(attrs, ins, out)
        x, w = _at(ins, 0), _at(ins, self.weight)
        return self.pruned_macs(attrs, x, w, out) if x and w else 0

    def add_bias(self, ctx: Context, node: gs.Node, change: np.ndarray, dtype: np.dtype
                 ) -> bool:
        """Add ``change`` to the node's bias (see ``fold_bias``); False where it cannot."""
        return self.fold_bias is not None and self.fold_bias(ctx, node, change, dtype)

    def refit_layout(self, ctx: Context, node: gs.Node) -> Layout | None:
        """Where refinement refits the node's input channels (see ``layout``), or None.

        None also when W is no constant or X's shape is unknown or has fewer than two axes.
        """
        if self.layout is None or len(node.inputs) < 2:
            return None
        w = ctx.const(node.inputs[1].name)
        shape = ctx.shape(node.inputs[0].name)
        if w is None or shape is None or len(shape) < 2:
            return None
        return self.layout(node.attrs, shape, tuple(w.shape))


def _at(shapes: Sequence[Shape | None], i: int) -> Shape | None:
    return shapes[i] if len(shapes) > i else None


class Rule:
    """What one op family does to channels.

    ``couple`` answers, for a channel space on one of the node's inputs or outputs, which other
    spaces it is tied to (``Coupling.links``), whether the node absorbs the shrinkage in its own
    data, or why it cannot be pruned. ``roots`` lists the output spaces whose channels the node
    can drop (producers with weights). ``shrink`` edits the node's data for the kept indices.
    ``weight_ops`` describes each op type with weights (:class:`WeightOp`): its MACs, cost-model
    axes, gradient kind and trainable inputs, which metrics, allocation, analysis and
    distillation read instead of lists of their own.
    """

    op_types: tuple[str, ...] = ()
    weight_ops: ClassVar[Mapping[str, WeightOp]] = {}

    def weight_op(self, op_type: str) -> WeightOp | None:
        """What ``op_type`` means besides its channels, or None for an op without weights."""
        return self.weight_ops.get(op_type)

    def roots(self, ctx: Context, node: gs.Node) -> list[tuple[Space, Coupling]]:
        """Return the node's output spaces that can start a prunable group."""
        return []

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Answer for ``space`` (a space of one of the node's inputs or outputs)."""
        return barrier(f"{ctx.describe(node)} has no channel handling")

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Shrink the node's own data; ``keep`` holds the kept indices of its changed spaces."""


class AxisRule(Rule):
    """An op that moves each axis of its first input to one axis of its first output.

    Subclasses give ``axis_map`` (input axis -> output axis for the axes whose channels pass
    through unchanged) and ``blocked`` (why an axis does not pass); ``shrink_axis`` edits
    constants that hard-code the axis length (Resize sizes, Expand shapes).
    """

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Map input-0 axes to output-0 axes, or return a reason the node cannot be handled."""
        rank = len(ctx.shape(node.inputs[0].name) or ())
        return {a: a for a in range(rank)}

    def blocked(self, ctx: Context, node: gs.Node, axis: int) -> str:
        """Why channels on input axis ``axis`` cannot pass through the node."""
        return f"{ctx.describe(node)} mixes or drops input axis {axis}"

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Tie a space of input 0 to its axis of output 0 (or the other way round)."""
        from onnxprune.channels.index_map import Identity
        from onnxprune.channels.types import Link

        x, y = node.inputs[0].name, node.outputs[0].name
        amap = self.axis_map(ctx, node)
        if isinstance(amap, str):
            return barrier(amap)
        if space.tensor == x and ctx.positions(node, x) == [0]:
            if space.axis not in amap:
                return barrier(self.blocked(ctx, node, space.axis))
            return Coupling(links=(Link(space, Space(y, amap[space.axis]), Identity()),))
        inverse = {b: a for a, b in amap.items()}
        if space.tensor == y and ctx.positions(node, y, outputs=True) == [0]:
            if space.axis not in inverse:
                return barrier(self.blocked(ctx, node, space.axis))
            return Coupling(links=(Link(Space(x, inverse[space.axis]), space, Identity()),))
        return barrier(f"channels reach a secondary input or output of {ctx.describe(node)}")
