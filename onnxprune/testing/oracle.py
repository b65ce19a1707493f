"""The exactness oracle for pruning: zero what the dropped channels contribute, in the original.

Every channel of a group ends in a consumer that mixes channels with weights (Conv input
channels, Gemm/MatMul input features) - anything else is a barrier. Zeroing those consumer
weight columns in the *original* model therefore gives exactly the function the pruned model
must compute.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from onnxprune import ir
from onnxprune.model import Model


def _set_weight(  # type: ignore[no-untyped-def]
    model: ir.ModelProto, name: str, fn, folded=None
) -> None:
    """Apply ``fn`` to weight ``name``: an initializer, a Constant, or a folded node output.

    A weight that constant folding computed (dynamo's per-direction LSTM weights joined by a
    Concat) becomes an initializer holding ``fn(folded)`` in place of the node producing it.
    """
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(ir.from_array(fn(ir.to_array(t)), name))
            return
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    a.t.CopyFrom(ir.from_array(fn(ir.to_array(a.t)), name))
                    return
    producer = next((n for n in model.graph.node if name in n.output), None)
    if folded is None or producer is None or len(producer.output) != 1:
        raise KeyError(f"weight {name} not found")
    model.graph.node.remove(producer)
    model.graph.initializer.append(ir.from_array(fn(np.asarray(folded)), name))


def zeroed(model: Model, plan: Mapping[int, Sequence[int]]) -> ir.ModelProto:
    """Return a copy of the original whose consumers ignore the channels the plan drops."""
    out = copy.deepcopy(model.proto)
    cg = model.groups
    for gid, kept in plan.items():
        group = cg.group(gid)
        gone = np.setdiff1d(np.arange(group.size), np.asarray(kept))
        for ref in group.consumers:
            owner = group.members[ref.space]
            idx = np.flatnonzero(np.isin(owner, gone))

            def zero(w: np.ndarray, idx: np.ndarray = idx, axis: int = ref.weight.axis) -> np.ndarray:
                w = w.copy()
                sl = [slice(None)] * w.ndim
                sl[axis] = idx
                w[tuple(sl)] = 0
                return w

            if cg.ctx.quantised(ref.weight.name):
                _zero_quantised(out, ref.weight.name, idx, ref.weight.axis)
            else:
                _set_weight(out, ref.weight.name, zero, cg.ctx.const(ref.weight.name))
    return out


def _zero_quantised(model: ir.ModelProto, name: str, idx: np.ndarray, axis: int) -> None:
    """Set the stored integers of a DequantizeLinear'd weight to its zero point (value 0).

    The model stays quantised exactly as before, so onnxruntime runs the same (fused) kernels
    in the oracle and the pruned model.
    """
    dq = next(n for n in model.graph.node
              if n.op_type == "DequantizeLinear" and n.output[0] == name)
    q_axis = next((int(a.i) for a in dq.attribute if a.name == "axis"), 1)
    zp = None
    if len(dq.input) > 2 and dq.input[2]:
        zp = next(ir.to_array(t) for t in model.graph.initializer
                  if t.name == dq.input[2])

    def zero(q: np.ndarray) -> np.ndarray:
        z = np.zeros((), q.dtype) if zp is None else zp
        if z.size > 1:
            shape = [1] * q.ndim
            shape[q_axis % q.ndim] = -1
            z = z.reshape(shape)
        full = np.broadcast_to(z, q.shape)
        q = q.copy()
        sl = [slice(None)] * q.ndim
        sl[axis] = idx
        q[tuple(sl)] = full[tuple(sl)]
        return q

    _set_weight(model, dq.input[0], zero)


def run(model: ir.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model in onnxruntime (CPU, one thread)."""
    from onnxprune.bench import make_session

    return make_session(model).run(None, dict(feeds))


def random_feeds(model: Model, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded normal inputs at the model's concrete input shapes."""
    rng = np.random.default_rng(seed)
    return {
        s.name: rng.standard_normal(model.input_shapes[s.name]).astype(s.dtype)
        for s in ir.io_specs(model.proto)
    }


def max_rel_error(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], *, floor: float = 1e-6
) -> float:
    """Largest absolute difference over all outputs, relative to each output's scale.

    ``floor`` bounds the scale from below: probabilities that are all ~0 (a text detector on
    noise) are compared on the scale of 1, not on the scale of float rounding.
    """
    worst = 0.0
    for x, y in zip(a, b):
        scale = max(float(np.abs(x).max()), floor)
        worst = max(worst, float(np.abs(x - y).max()) / scale)
    return worst


def every_other_plan(model: Model, share: float = 0.3, seed: int = 0) -> dict[int, list[int]]:
    """A seeded plan dropping about ``share`` of every prunable group (at least one channel)."""
    rng = np.random.default_rng(seed)
    plan = {}
    for g in model.groups.groups:
        if g.prunable:
            n_drop = max(1, int(round(share * g.size)))
            drop = rng.choice(g.size, size=min(n_drop, g.size - 1), replace=False)
            plan[g.id] = sorted(set(range(g.size)) - set(drop.tolist()))
    return plan
