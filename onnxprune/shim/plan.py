"""Turn an ONNX model into the shim's execution plan (the shim's only protobuf reader).

The plan is plain data: the model's constants (initializers and ``Constant`` node values) as
torch tensors, and the remaining nodes in topological order, each bound to its kernel with
its attributes merged over the kernel's spec defaults.
"""

from __future__ import annotations

import heapq
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from onnxprune import ir
from onnxprune.errors import InputError, UnsupportedOpError
from onnxprune.shim import ops  # noqa: F401  (registers the kernels)
from onnxprune.shim.dtypes import to_torch, torch_dtype
from onnxprune.shim.registry import Kernel, lookup, normalize_domain

__all__ = ["Plan", "Step", "build_plan"]


@dataclass(frozen=True)
class Step:
    """One node to execute.

    Attributes:
        name: node name (or a generated ``op_type#index`` when the node has none).
        op_type: ONNX op type.
        domain: ONNX domain ("" for ai.onnx).
        opset: the model's opset for ``domain``.
        inputs: input tensor names ("" for an omitted optional input).
        outputs: output tensor names ("" for an omitted optional output).
        attrs: the attributes passed to the kernel (spec defaults merged in).
        kernel: the kernel that runs the node.

    """

    name: str
    op_type: str
    domain: str
    opset: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    kernel: Kernel


@dataclass(frozen=True)
class Plan:
    """Everything the shim needs to run a model.

    Attributes:
        steps: nodes in topological order (``Constant`` nodes excluded).
        inputs: graph inputs that must be fed, with their torch dtype (``None`` if unknown).
        defaults: graph inputs that have an initializer (feeding them is optional).
        outputs: graph output names, in graph order.
        constants: initializer and ``Constant``-node values, by tensor name.
        constant_nodes: names of the tensors that come from ``Constant`` nodes.
        frees: per step, the tensors no later step (nor the graph outputs) reads.
        frozen: constants that hold statistics or shape values (read at a kernel's
            ``frozen`` input, directly or through Identity/Cast/Reshape/Concat-like ops):
            the shim never trains them. A constant that an exporter shared between a
            statistic and a weight (it deduplicates equal tensors, e.g. the ones and zeros
            of an untrained BatchNormalization) is frozen too: training it would change the
            statistic.

    """

    steps: tuple[Step, ...]
    inputs: Mapping[str, torch.dtype | None]
    defaults: frozenset[str]
    outputs: tuple[str, ...]
    constants: Mapping[str, torch.Tensor]
    constant_nodes: frozenset[str]
    frees: tuple[tuple[str, ...], ...] = field(default=())
    frozen: frozenset[str] = field(default=frozenset())

    def tensor_names(self) -> set[str]:
        """Return every tensor name the plan knows (inputs, constants, node outputs)."""
        names = set(self.inputs) | set(self.constants)
        for s in self.steps:
            names.update(n for n in s.outputs if n)
        return names


def build_plan(model: ir.ModelProto) -> Plan:
    """Build the execution plan of ``model``.

    Args:
        model: the ONNX model (local functions are inlined first).

    Returns:
        The plan.

    Raises:
        UnsupportedOpError: a node's op (or one of its attributes) has no kernel.
        InputError: the graph is malformed (a tensor read but never produced, a cycle, a
            required attribute missing).

    """
    if len(model.functions):
        model = ir.inline_functions(model)
    graph = model.graph
    opsets = {normalize_domain(o.domain): int(o.version) for o in model.opset_import}
    constants = {t.name: to_torch(ir.to_array(t)) for t in graph.initializer}
    steps: list[Step] = []
    from_nodes: set[str] = set()
    for i, node in enumerate(graph.node):
        step = _step(node, i, opsets)
        if step.op_type == "Constant" and step.domain == "":
            constants[node.output[0]] = step.kernel.fn(**step.attrs)
            from_nodes.add(node.output[0])
        else:
            steps.append(step)
    inputs = {v.name: _elem_dtype(v) for v in graph.input if v.name not in constants}
    defaults = frozenset(v.name for v in graph.input if v.name in constants)
    outputs = tuple(v.name for v in graph.output)
    ordered = _toposort(steps, set(inputs) | set(constants), outputs)
    return Plan(
        steps=tuple(ordered),
        inputs=MappingProxyType(inputs),
        defaults=defaults,
        outputs=outputs,
        constants=MappingProxyType(constants),
        constant_nodes=frozenset(from_nodes),
        frees=_frees(ordered, outputs),
        frozen=_frozen(ordered, constants),
    )


# Ops whose output is (a reshaped / cast / concatenated copy of) the listed inputs
# (``None``: all): a constant that reaches a frozen input through them is frozen too.
_PASS_THROUGH: dict[str, tuple[int, ...] | None] = {
    "Identity": None, "Cast": None, "CastLike": (0,), "Reshape": (0,), "Squeeze": (0,),
    "Unsqueeze": (0,), "Flatten": None, "Concat": None,
}  # fmt: skip


def _frozen(steps: list[Step], constants: Mapping[str, torch.Tensor]) -> frozenset[str]:
    """Constants that reach a kernel's ``frozen`` inputs (statistics, scales, ratios)."""
    producer = {o: s for s in steps for o in s.outputs if o}
    todo = [s.inputs[i] for s in steps for i in s.kernel.frozen if i < len(s.inputs)]
    seen: set[str] = set()
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        if name in constants:
            found.add(name)
            continue
        step = producer.get(name)
        if step is not None and step.domain == "" and step.op_type in _PASS_THROUGH:
            keep = _PASS_THROUGH[step.op_type]
            todo.extend(n for i, n in enumerate(step.inputs) if keep is None or i in keep)
    return frozenset(found)


def _elem_dtype(value: ir.ValueInfoProto) -> torch.dtype | None:
    elem = value.type.tensor_type.elem_type
    return torch_dtype(elem) if elem else None


def _step(node: ir.NodeProto, index: int, opsets: Mapping[str, int]) -> Step:
    domain = normalize_domain(node.domain)
    name = node.name or f"{node.op_type}#{index}"
    if domain not in opsets:
        raise UnsupportedOpError(
            f"node '{name}': op '{node.op_type}' is in domain '{domain}', which the model does "
            "not import; the model is invalid - re-export it"
        )
    kernel = lookup(domain, node.op_type, opsets[domain], node=name)
    given = {a.name: _attr_value(a, name) for a in node.attribute}
    unknown = sorted(set(given) - set(kernel.attrs))
    where = (
        f"node '{name}': {node.op_type} (domain '{domain or 'ai.onnx'}', opset {opsets[domain]})"
    )
    if unknown:
        raise UnsupportedOpError(
            f"{where} has attribute(s) {unknown} that the shim kernel does not support"
        )
    attrs = {**kernel.attrs, **given}
    missing = [k for k, v in attrs.items() if v is inspect.Parameter.empty]
    if missing:
        raise InputError(f"{where} lacks required attribute(s) {missing}; the model is invalid")
    if kernel.n_inputs is not None and len(node.input) > kernel.n_inputs:
        raise UnsupportedOpError(
            f"{where} has {len(node.input)} inputs; the shim kernel takes {kernel.n_inputs}"
        )
    return Step(
        name,
        node.op_type,
        domain,
        opsets[domain],
        tuple(node.input),
        tuple(node.output),
        MappingProxyType(attrs),
        kernel,
    )


def _attr_value(attr: ir.AttributeProto, node: str) -> Any:
    if ir.holds_graph(attr):
        raise UnsupportedOpError(
            f"node '{node}': attribute '{attr.name}' holds a subgraph; control flow "
            "(If/Loop/Scan) is not supported by the shim"
        )
    return ir.plain_value(attr)


def _toposort(steps: list[Step], available: set[str], outputs: tuple[str, ...]) -> list[Step]:
    """Order steps so each runs after its producers (stable for already-sorted graphs)."""
    waiting: dict[str, list[int]] = {}
    missing = []
    for i, s in enumerate(steps):
        needs = {n for n in s.inputs if n and n not in available}
        missing.append(len(needs))
        for n in needs:
            waiting.setdefault(n, []).append(i)
    ready = [i for i, m in enumerate(missing) if m == 0]
    heapq.heapify(ready)
    order: list[Step] = []
    produced = set(available)
    while ready:
        i = heapq.heappop(ready)
        order.append(steps[i])
        for out in steps[i].outputs:
            if not out or out in produced:
                continue
            produced.add(out)
            for j in waiting.pop(out, []):
                missing[j] -= 1
                if missing[j] == 0:
                    heapq.heappush(ready, j)
    _check_complete(steps, order, produced, outputs)
    return order


def _check_complete(
    steps: list[Step], order: list[Step], produced: set[str], outputs: tuple[str, ...]
) -> None:
    if len(order) < len(steps):
        done = {id(s) for s in order}
        stuck = next(s for s in steps if id(s) not in done)
        lacking = [n for n in stuck.inputs if n and n not in produced]
        raise InputError(
            f"node '{stuck.name}' ({stuck.op_type}) reads {lacking}, which no node, input or "
            "initializer produces (or the graph has a cycle); the model is invalid"
        )
    absent = [n for n in outputs if n not in produced]
    if absent:
        raise InputError(f"graph outputs {absent} are never produced; the model is invalid")


def _frees(steps: list[Step], outputs: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    last: dict[str, int] = {}
    for i, s in enumerate(steps):
        for n in (*s.inputs, *s.outputs):
            if n:
                last[n] = i
    keep = set(outputs)
    frees: list[list[str]] = [[] for _ in steps]
    for name, i in last.items():
        if name not in keep:
            frees[i].append(name)
    return tuple(tuple(f) for f in frees)
