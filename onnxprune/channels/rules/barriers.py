"""Ops that block pruning on purpose, each with the reason reported to the user."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Rule, WeightOp
from onnxprune.channels.rules.conv import conv_macs
from onnxprune.channels.rules.matmul import matmul_macs
from onnxprune.channels.types import Coupling, Space, WeightUse, barrier

_INTEGER_OPS = (
    "integer-op quantised layers are not pruned; to fix this, prune the float model and "
    "quantise it again, or quantise in QDQ format (quantize_static with QuantFormat.QDQ), "
    "which onnxprune prunes"
)

REASONS = {
    "Loop": "control flow is not pruned",
    "If": "control flow is not pruned",
    "Scan": "control flow is not pruned",
    "LRN": "normalises across neighbouring channels",
    "GroupNormalization": "normalises across groups of channels",
    "MeanVarianceNormalization": "may normalise across channels",
    "QLinearConv": _INTEGER_OPS,
    "QLinearMatMul": _INTEGER_OPS,
    "ConvInteger": _INTEGER_OPS,
    "MatMulInteger": _INTEGER_OPS,
    "DepthToSpace": "moves channels into spatial positions",
    "SpaceToDepth": "moves spatial positions into channels",
    "Size": "uses the element count, which pruning changes",
    "Einsum": "contracts axes in ways the tool does not model",
    "NonMaxSuppression": "selects boxes by value",
    "TopK": "selects elements by value",
    "ScatterND": "writes to computed positions",
    "ScatterElements": "writes to computed positions",
    "GatherND": "reads computed positions",
    "GatherElements": "reads computed positions",
    "CumSum": "accumulates along an axis",
}


# Quantised producers are listed as (blocked) roots, so that inspect names them and why.
_QUANTISED_PRODUCERS = ("QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger")


@register(*REASONS)
class BarrierRule(Rule):
    """Blocks every channel space that reaches the op, naming why."""

    # Quantised convs/matmuls are not pruned, but their MACs count (W after X's scale and zero
    # point in QLinear ops); GroupNormalization's scale and bias train in distillation.
    weight_ops = {
        "ConvInteger": WeightOp(macs=conv_macs),
        "QLinearConv": WeightOp(weight=3, macs=conv_macs),
        "MatMulInteger": WeightOp(macs=matmul_macs),
        "QLinearMatMul": WeightOp(weight=3, macs=matmul_macs),
        "GroupNormalization": WeightOp(trainable=(1, 2)),
    }

    def roots(self, ctx: Context, node: gs.Node) -> list[tuple[Space, Coupling]]:
        """Return a quantised conv/matmul's output channels as a root that is always blocked."""
        if node.op not in _QUANTISED_PRODUCERS:
            return []
        shape = ctx.shape(node.outputs[0].name)
        axis = 1 if node.op in ("QLinearConv", "ConvInteger") else len(shape or (0,)) - 1
        space = Space(node.outputs[0].name, axis)
        w = node.inputs[3 if node.op.startswith("QLinear") else 1].name
        reason = self.couple(ctx, node, space).barrier
        return [(space, Coupling(barrier=reason, weight=WeightUse(w, 0, "root")))]

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Always a barrier."""
        return barrier(f"{ctx.describe(node)}: {REASONS[node.op]}")
