"""Recovery edits as plain data, so a saved plan replays exactly what ``prune`` did.

Compensation edits the consumers' weights and biases in the channel graph before the surgery
removes anything (``surgery.apply_plan(..., edit=...)``). :func:`capture` runs such an edit
and notes which node inputs (and attributes) it changed; :func:`finals` then reads those
inputs' *final* values from the pruned model, so a record holds only what survives the
surgery (the consumer's kept rows and columns). :func:`replay` writes them into a plain
replay of the plan's channels. Recording the values themselves (not the fit that produced
them) keeps a replay bit-exact and independent of how compensation is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune import ir
from onnxprune.channels.graph import ChannelGraph


@dataclass(frozen=True)
class ConstUpdate:
    """Final value of one constant input of one node in the pruned model (named ``tensor``)."""

    node: str
    input: int
    tensor: str
    values: np.ndarray


@dataclass(frozen=True)
class AttrUpdate:
    """A node attribute the edit changed (e.g. a Gemm's ``beta`` when a bias was added)."""

    node: str
    name: str
    value: object


Update = ConstUpdate | AttrUpdate


@dataclass(frozen=True)
class Changes:
    """What an edit changed: node inputs ``(node, index)`` and attributes."""

    inputs: tuple[tuple[str, int], ...]
    attrs: tuple[AttrUpdate, ...]


def capture(cg: ChannelGraph, edit: Callable[[ChannelGraph], None]) -> Changes:
    """Run ``edit`` on ``cg`` and return which node inputs and attributes it changed."""
    before = _snapshot(cg)
    edit(cg)
    inputs: list[tuple[str, int]] = []
    attrs: list[AttrUpdate] = []
    for node in cg.ctx.graph.nodes:
        old_inputs, old_attrs = before.get(node.name, ({}, {}))
        for i, t in enumerate(node.inputs):
            old = old_inputs.get(i)
            if isinstance(t, gs.Constant) and (old is None or old[0] is not t
                                              or old[1] is not t.values):
                inputs.append((node.name, i))
        attrs += [AttrUpdate(node.name, k, v) for k, v in node.attrs.items()
                  if k not in old_attrs or not _same(old_attrs[k], v)]
    return Changes(tuple(inputs), tuple(attrs))


def finals(pruned: ir.ModelProto, changes: Sequence[Changes]) -> tuple[Update, ...]:
    """Return the final values (in ``pruned``) of the inputs the edits changed, and attributes."""
    keys = [k for c in changes for k in c.inputs]
    found = ir.node_inputs(pruned, keys)
    consts = [ConstUpdate(n, i, *found[(n, i)]) for n, i in dict.fromkeys(keys)
              if (n, i) in found]
    return (*consts, *(a for c in changes for a in c.attrs))


def replay(model: ir.ModelProto, updates: Sequence[Update]) -> ir.ModelProto:
    """Return ``model`` (the plan's channels removed, no recovery) with the updates written in.

    Raises:
        KeyError: an update names a node that ``model`` does not have.

    """
    values = {(u.node, u.input): (u.tensor, u.values) for u in updates
              if isinstance(u, ConstUpdate)}
    attrs = {(u.node, u.name): u.value for u in updates if isinstance(u, AttrUpdate)}
    return ir.set_node_inputs(model, values, attrs)


def _snapshot(cg: ChannelGraph) -> dict[str, tuple[dict[int, tuple[gs.Constant, object]],
                                                   dict[str, object]]]:
    """Return references (no copies) to every node's constant inputs and copies of its attrs."""
    snap = {}
    for node in cg.ctx.graph.nodes:
        consts = {i: (t, t.values) for i, t in enumerate(node.inputs)
                  if isinstance(t, gs.Constant)}
        snap[node.name] = (consts, dict(node.attrs))
    return snap


def _same(a: object, b: object) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a is b


def to_arrays(updates: Sequence[Update]) -> tuple[list[dict[str, object]], dict[str, np.ndarray]]:
    """Split updates into JSON-ready records and the arrays they refer to (by key)."""
    records: list[dict[str, object]] = []
    arrays: dict[str, np.ndarray] = {}
    for k, u in enumerate(updates):
        if isinstance(u, AttrUpdate):
            records.append({"node": u.node, "attr": u.name, "value": _plain(u.value)})
            continue
        key = f"u{k}"
        arrays[key] = u.values
        records.append({"node": u.node, "input": u.input, "tensor": u.tensor, "values": key})
    return records, arrays


def from_arrays(records: Sequence[Mapping[str, object]], arrays: Mapping[str, np.ndarray]
                ) -> tuple[Update, ...]:
    """Inverse of :func:`to_arrays`.

    Raises:
        KeyError: a record refers to an array that is not there.

    """
    out: list[Update] = []
    for r in records:
        if "attr" in r:
            out.append(AttrUpdate(str(r["node"]), str(r["attr"]), r["value"]))
        else:
            out.append(ConstUpdate(str(r["node"]), int(r["input"]),  # type: ignore[call-overload]
                                   str(r["tensor"]), np.asarray(arrays[str(r["values"])])))
    return tuple(out)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
