"""Surgery: apply a plan (group -> kept channels) to the graph, then verify the result."""

from __future__ import annotations

import gc
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune import ir
from onnxprune.channels.graph import ChannelGraph
from onnxprune.channels.rules import rule_for
from onnxprune.channels.types import Space
from onnxprune.errors import CannotPruneError, InputError, VerificationError
from onnxprune.model import Model
from onnxprune.verify import verify, verify_saved

log = logging.getLogger(__name__)


def check_plan(cg: ChannelGraph, plan: Mapping[int, Sequence[int]]) -> None:
    """Refuse a plan that names unknown or blocked groups or invalid channel indices.

    Raises:
        InputError: the plan does not fit the model's groups.
        CannotPruneError: the plan would remove every channel of some tensor.

    """
    ids = {g.id for g in cg.groups}
    for gid, kept in plan.items():
        if gid not in ids:
            raise InputError(f"plan names group {gid}, which the model does not have")
        group = cg.group(gid)
        k = np.asarray(kept, dtype=np.int64)
        if not group.prunable and len(np.unique(k)) != group.size:
            raise InputError(f"plan prunes group {gid}, which is blocked: {group.barriers[0]}")
        if k.size == 0 or len(np.unique(k)) != k.size or k.min() < 0 or k.max() >= group.size:
            raise InputError(
                f"plan for group {gid} must keep 1..{group.size} distinct channels in "
                f"0..{group.size - 1}"
            )
    _check_nothing_emptied(cg, plan)


def _check_nothing_emptied(cg: ChannelGraph, plan: Mapping[int, Sequence[int]]) -> None:
    """Refuse a plan that removes every channel of some tensor (a Split or Slice part).

    ONNX has no zero-channel Conv; the branch would have to be replaced by its bias, which
    the tool does not do.

    Raises:
        CannotPruneError: a tensor would lose all its channels.

    """
    keep = cg.keep({g: [int(i) for i in k] for g, k in plan.items()})
    for space, kept in keep.items():
        if kept.size:
            continue
        groups = [g.id for g in cg.groups if space in g.members and g.id in plan]
        owned = sorted({int(c) for g in groups for c in cg.group(g).members[space] if c >= 0})
        producer = cg.ctx.producer(space.tensor)
        by = f" written by {cg.ctx.describe(producer)}" if producer is not None else ""
        raise CannotPruneError(
            f"plan for group(s) {groups} removes every channel of tensor '{space.tensor}'{by}; "
            f"keep at least one of its channels {owned} or exclude the group"
        )


def apply_plan(
    model: Model,
    plan: Mapping[int, Sequence[int]],
    *,
    edit: Callable[[ChannelGraph], None] | None = None,
    check: bool = True,
) -> ir.ModelProto:
    """Remove every channel a plan does not keep, propagate it, and verify the result.

    Args:
        model: the loaded model (not modified).
        plan: group id -> kept channel indices (sorted or not).
        edit: called with the fresh channel graph before anything is removed (compensation
            edits the consumers' weights there).
        check: verify the result; off when the caller edits the model further and verifies
            what it writes (each written model is verified once).

    Returns:
        The pruned model, verified unless ``check`` is off.

    Raises:
        InputError: the plan does not fit the model.
        VerificationError: the pruned model failed a check; nothing should be written.

    """
    pruned = _surgery(model, plan, edit)
    gc.collect()  # the channel graph (reference cycles) and its weights go before onnxruntime
    if not check:
        return pruned
    if not ir.heavy(pruned):
        return verify(pruned, model.proto, model.input_shapes)
    # A large model is verified from a file, so that onnxruntime holds its weights alone
    # (not beside the model's own copy): they are read back once it passed.
    with tempfile.TemporaryDirectory(prefix="onnxprune-pruned-",
                                     ignore_cleanup_errors=True) as folder:
        path = ir.save_external(pruned, Path(folder) / "pruned.onnx")
        del pruned
        return verify_saved(path, model.proto, model.input_shapes)


def _surgery(
    model: Model, plan: Mapping[int, Sequence[int]], edit: Callable[[ChannelGraph], None] | None
) -> ir.ModelProto:
    cg = model.channel_graph()
    check_plan(cg, plan)
    if edit is not None:
        edit(cg)
    keep = cg.keep({g: sorted(int(i) for i in k) for g, k in plan.items()})
    ctx = cg.ctx
    for node in _touched_nodes(cg, keep):
        mine = {
            s: k for s, k in keep.items()
            if any(t.name == s.tensor for t in [*node.inputs, *node.outputs])
        }
        rule = rule_for(node.op, node.domain or "")
        try:
            if rule is not None:
                rule.shrink(ctx, node, mine)
        except Exception as e:
            raise VerificationError(
                f"surgery failed at {ctx.describe(node)}: {e}; this is a bug - please report it"
            ) from e
    return _export(ctx.graph, model.proto)


def _touched_nodes(cg: ChannelGraph, keep: Mapping[Space, np.ndarray]) -> list[gs.Node]:
    nodes: dict[int, gs.Node] = {}
    for space in keep:
        producer = cg.ctx.producer(space.tensor)
        for node in ([producer] if producer is not None else []) + cg.ctx.consumers(space.tensor):
            nodes.setdefault(id(node), node)
    return list(nodes.values())


def _export(graph: gs.Graph, like: ir.ModelProto) -> ir.ModelProto:
    io = {t.name for t in [*graph.inputs, *graph.outputs]}
    for tensor in graph.tensors().values():
        if isinstance(tensor, gs.Variable) and tensor.name not in io:
            tensor.shape = None
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    return ir.from_graph(graph, like, consume=True)
