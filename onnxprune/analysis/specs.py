"""What the analysis watches for each group: its consumers and roots, resolved to shim tensors.

A consumer is read through the activation ``x`` it takes in (the group's channels on ``axis``)
and the gradient at its output ``y``; a root through its output space (for gate gradients).
A channel may own several indices of a consumer's input space (Flatten→Gemm: H·W features per
channel); ``owned[c]`` lists them, and they become extra gradient rows like kernel taps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.graph import Group, WeightRef
from onnxprune.channels.rules import weight_op
from onnxprune.model import Model
from onnxprune.shim.module import Shim
from onnxprune.shim.plan import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """One weight-bearing reader of a group's channels.

    Attributes:
        node: node name; ``op`` its ONNX op type.
        kind: how per-sample weight gradients are formed: ``unfold`` (Conv, 1-D/2-D),
            ``grouped`` (ConvTranspose, 3-D Conv: batch folded into conv groups), ``gemm``,
            ``matmul``, ``recurrent`` (LSTM/GRU/RNN input weight W: the recurrence is re-run
            from the input projection to get the gradient at the gates).
        x: the activation the consumer reads; ``axis`` its channel axis.
        y: the consumer's output.
        weight: name of the consumer's weight (for reports).
        sel: sorted indices of ``x``'s axis owned by the group.
        owned: ``[C, m]`` positions into ``sel`` of each channel's indices (``len(sel)`` pads
            channels owning fewer than ``m``).
        step: the shim step (ONNX attributes merged with spec defaults, and the kernel).
        kernel: spatial kernel shape of a conv's weight (``()`` for Gemm/MatMul).

    """

    node: str
    op: str
    kind: str
    x: str
    axis: int
    y: str
    weight: str
    sel: np.ndarray = field(repr=False)
    owned: np.ndarray = field(repr=False)
    step: Step = field(repr=False)
    kernel: tuple[int, ...] = ()

    whole: bool = False

    @property
    def contiguous(self) -> bool:
        """True when channel c owns positions c·m .. c·m+m−1 (no gather needed)."""
        return bool(np.array_equal(self.owned.ravel(), np.arange(self.owned.size)))

    @property
    def attrs(self) -> Mapping[str, Any]:
        """The node's ONNX attributes with spec defaults."""
        return self.step.attrs


@dataclass(frozen=True)
class RootSpec:
    """A producer's output space: ``owner[i]`` is the group channel of index i (-1: other)."""

    tensor: str
    axis: int
    owner: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class GroupSpec:
    """Everything watched for one prunable group, and consumers that could not be used."""

    id: int
    size: int
    consumers: tuple[ConsumerSpec, ...]
    roots: tuple[RootSpec, ...]
    skipped: tuple[str, ...] = ()

    def tensors(self) -> set[str]:
        """Names of every tensor this group needs watched."""
        names = {r.tensor for r in self.roots}
        for c in self.consumers:
            names.update((c.x, c.y))
            if c.kind == "recurrent":  # re-running the recurrence needs all its inputs
                names.update(n for n in c.step.inputs if n)
        return names


def group_specs(model: Model, shim: Shim) -> list[GroupSpec]:
    """Resolve every prunable group of ``model`` to tensors of ``shim``.

    Args:
        model: the loaded model.
        shim: the shim built from ``model.proto``.

    Returns:
        One spec per prunable group, in group order.

    """
    steps = {s.outputs[0]: s for s in shim.plan.steps if s.outputs and s.outputs[0]}
    known = shim.plan.tensor_names()
    specs = []
    for group in model.groups.groups:
        if group.prunable:
            specs.append(_group_spec(model, group, steps, known))
    return specs


def _group_spec(
    model: Model, group: Group, steps: Mapping[str, Step], known: set[str]
) -> GroupSpec:
    consumers, skipped = [], []
    for ref in group.consumers:
        spec, why = _consumer(model, group, ref, steps)
        if spec is None:
            skipped.append(f"{ref.node} ({ref.op}): {why}")
            log.warning("group %d: consumer %s not used: %s", group.id, ref.node, why)
        else:
            consumers.append(spec)
    roots = tuple(
        RootSpec(r.space.tensor, r.space.axis, group.members[r.space])
        for r in group.roots
        if r.space.tensor in known
    )
    return GroupSpec(group.id, group.size, tuple(consumers), roots, tuple(skipped))


def _consumer(
    model: Model, group: Group, ref: WeightRef, steps: Mapping[str, Step]
) -> tuple[ConsumerSpec | None, str]:
    ctx = model.groups.ctx
    node = next(
        (n for n in ctx.consumers(ref.space.tensor) if n.name == ref.node and n.op == ref.op), None
    )
    if node is None or not node.outputs:
        return None, "node not found in the graph"
    y = node.outputs[0].name
    step = steps.get(y)
    if step is None or not ctx.is_const(ref.weight.name):
        return None, "not executed by the shim with a constant weight"
    # the shape only: reading the value would load (and keep) the weight in the graph
    wshape = ctx.shape(ref.weight.name)
    if wshape is None:
        wshape = ctx.const(ref.weight.name).shape  # type: ignore[union-attr]
    kind = _kind(ref.op, len(wshape), int(step.attrs.get("group", 1)))
    if kind is None:
        return None, f"{ref.op} with weight rank {len(wshape)} is not supported"
    if kind == "recurrent":
        why = _recurrent_problem(model, node)
        if why:
            return None, why
    sel, owned = _owned(group.members[ref.space], group.size)
    spec = ConsumerSpec(
        node=ref.node, op=ref.op, kind=kind, x=ref.space.tensor, axis=ref.space.axis, y=y,
        weight=ref.weight.name, sel=sel, owned=owned, step=step,
        kernel=tuple(int(k) for k in wshape[2:]) if ref.op.startswith("Conv") else (),
        whole=len(sel) == len(group.members[ref.space]),
    )
    return spec, ""


def _kind(op: str, weight_rank: int, group: int) -> str | None:
    wop = weight_op(op)  # the op's rule says how its weight gradient is formed
    return wop.gradient(weight_rank, group) if wop is not None and wop.gradient else None


def _recurrent_problem(model: Model, node: gs.Node) -> str:
    """Why a recurrent op's W gradient cannot be formed from the gradient at Y alone."""
    ctx = model.groups.ctx
    outs = [t.name for t in node.outputs]
    used = [bool(n) and (bool(ctx.consumers(n)) or n in ctx.outputs) for n in outs]
    if not used or not used[0]:
        return "its sequence output Y is not read (only final states), so no gate gradient"
    if any(used[1:]):
        return "its final states Y_h/Y_c are read, whose gradients are not gathered"
    return ""


def _owned(owner: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted owned indices and the ``[size, m]`` table of each channel's positions in them."""
    sel = np.flatnonzero(owner >= 0)
    chan = owner[sel].astype(np.int64)
    order = np.argsort(chan, kind="stable")  # positions grouped by channel, in index order
    counts = np.bincount(chan, minlength=size)
    m = max(1, int(counts.max(initial=0)))
    owned = np.full((size, m), len(sel), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks = np.arange(len(sel)) - np.repeat(starts, counts)
    owned[chan[order], ranks] = order
    return sel, owned
