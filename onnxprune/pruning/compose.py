"""Composition of plans made in successive steps into the original model's indices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnxprune.model import Model
from onnxprune.pruning.plan import Plan, make_plan

if TYPE_CHECKING:
    pass



def compose(first: Plan, second: Plan, original: Model) -> Plan:
    """Express ``second`` (made on the model ``first`` produced) in the original's indices."""
    before = {frozenset(g.roots): g for g in first.groups}
    keep: dict[int, list[int]] = {}
    info = {}
    for g0 in original.groups.groups:
        roots = frozenset(g0.root_nodes)
        prev = before.get(roots)
        k = list(prev.keep) if prev is not None else list(range(g0.size))
        nxt = next((g for g in second.groups if frozenset(g.roots) == roots), None)
        if nxt is not None:
            k = [k[i] for i in nxt.keep]
            info[g0.id] = dict(nxt.info)
        elif prev is not None:
            info[g0.id] = dict(prev.info)
        if len(k) < g0.size:
            keep[g0.id] = k
    return make_plan(original.groups, keep, method={**second.method, "steps": "composed"},
                     info=info)
