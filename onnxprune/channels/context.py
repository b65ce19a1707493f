"""What rules may ask about the graph: shapes, constants, attributes; and edit helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import count
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune import ir
from onnxprune.channels import qdq
from onnxprune.channels.types import Space
from onnxprune.numerics import flush_subnormals


class Context:
    """A graph with static shapes, shared by the rules of one channel analysis or surgery.

    Args:
        graph: the onnx-graphsurgeon graph (the one surgery edits).
        shapes: static shape of every tensor whose shape is known (inferred with concrete
            input shapes).
        opset: the model's default-domain opset.
        keep_values: keep a weight's value in the graph once read (what surgery edits);
            False reads it afresh each time, so a read-only graph never holds a second copy
            of the model's weights.

    """

    def __init__(self, graph: gs.Graph, shapes: Mapping[str, tuple[int, ...]], opset: int,
                 *, keep_values: bool = True):
        self.graph = graph
        self.keep_values = keep_values
        self.shapes = dict(shapes)
        self.opset = opset
        self.tensors: dict[str, gs.Tensor] = graph.tensors()
        self.outputs = {t.name for t in graph.outputs}
        self.inputs = {t.name for t in graph.inputs}
        self._fresh = count()

    def clone(self) -> Context:
        """Return a context over a copy of the graph (nodes and tensors copied, arrays shared).

        The copy keeps the values it reads (``keep_values``): it is the graph surgery edits.
        """
        return Context(self.graph.copy(), self.shapes, self.opset)

    # -- questions -------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...] | None:
        """Static shape of a tensor, or None when unknown."""
        t = self.tensors.get(name)
        if isinstance(t, gs.Constant):
            return tuple(t.shape)  # not .values: that loads (and keeps) the weight
        return self.shapes.get(name)

    def dim(self, space: Space) -> int | None:
        """Length of a channel space, or None when the tensor's shape is unknown."""
        shape = self.shape(space.tensor)
        if shape is None or space.axis >= len(shape):
            return None
        return int(shape[space.axis])

    def const(self, name: str) -> np.ndarray | None:
        """Value of a constant tensor, else None.

        Constants are initializers, folded Constant nodes, and weights stored quantised behind
        a DequantizeLinear of constants (their exact dequantised value).
        """
        t = self.tensors.get(name)
        if isinstance(t, gs.Constant):
            return np.asarray(t.values) if self.keep_values else ir.peek_constant(t)
        dq = qdq.dequantizer(self, name)
        return None if dq is None else qdq.dequantized(self, dq)

    def is_const(self, name: str) -> bool:
        """Tell whether :meth:`const` would return a value (without loading it)."""
        if isinstance(self.tensors.get(name), gs.Constant):
            return True
        return qdq.dequantizer(self, name) is not None

    def quantised(self, name: str) -> bool:
        """True when ``name`` is a weight stored quantised (a DequantizeLinear of constants)."""
        return qdq.dequantizer(self, name) is not None

    def input_name(self, node: gs.Node, i: int) -> str | None:
        """Name of the node's i-th input, or None when absent or an empty optional input."""
        if i >= len(node.inputs) or not node.inputs[i].name:
            return None
        return str(node.inputs[i].name)

    def input_const(self, node: gs.Node, i: int) -> np.ndarray | None:
        """Value of the node's i-th input when it is a constant."""
        name = self.input_name(node, i)
        return None if name is None else self.const(name)

    def input_is_const(self, node: gs.Node, i: int) -> bool:
        """Tell whether the node's i-th input is a constant (without loading its value)."""
        name = self.input_name(node, i)
        return name is not None and self.is_const(name)

    def producer(self, name: str) -> gs.Node | None:
        """The node that writes a tensor, or None for inputs and constants."""
        t = self.tensors.get(name)
        return t.inputs[0] if t is not None and t.inputs else None

    def consumers(self, name: str) -> list[gs.Node]:
        """The nodes that read a tensor."""
        t = self.tensors.get(name)
        return list(t.outputs) if t is not None else []

    @staticmethod
    def attr(node: gs.Node, name: str, default: Any = None) -> Any:
        """An attribute of the node, or ``default`` (the spec default) when absent."""
        return node.attrs.get(name, default)

    @staticmethod
    def describe(node: gs.Node) -> str:
        """Human name of a node for messages: ``node 'name' (Op)``."""
        return f"node '{node.name}' ({node.op})"

    @staticmethod
    def positions(node: gs.Node, name: str, *, outputs: bool = False) -> list[int]:
        """Indices at which a tensor appears among the node's inputs (or outputs)."""
        seq: Sequence[gs.Tensor] = node.outputs if outputs else node.inputs
        return [i for i, t in enumerate(seq) if t.name == name]

    # -- edits (surgery) -------------------------------------------------------------------
    def set_input_const(self, node: gs.Node, i: int, value: np.ndarray) -> None:
        """Give the node's i-th input a new constant value without touching other readers.

        Subnormal floats are written as zero (:func:`onnxprune.numerics.flush_subnormals`).
        """
        value = flush_subnormals(np.asarray(value))
        old = node.inputs[i] if i < len(node.inputs) else None
        base = old.name if old is not None and old.name else f"{node.name}_in{i}"
        shared = old is not None and len([n for n in old.outputs if n is not node]) > 0
        if isinstance(old, gs.Constant) and not shared:
            old.values = np.ascontiguousarray(value)
            return
        name = f"{base}__pruned{next(self._fresh)}"
        while name in self.tensors:
            name = f"{base}__pruned{next(self._fresh)}"
        const = gs.Constant(name, np.ascontiguousarray(value))
        self.tensors[name] = const
        while len(node.inputs) <= i:
            node.inputs.append(gs.Variable.empty())
        node.inputs[i] = const

    def take_input(self, node: gs.Node, i: int, axis: int, keep: np.ndarray) -> None:
        """Keep only ``keep`` along ``axis`` of the node's i-th (constant) input."""
        name = self.input_name(node, i)
        if name is not None and self.quantised(name):
            qdq.take(self, node, i, axis, keep)
            return
        value = self.input_const(node, i)
        if value is None:
            raise ValueError(f"{self.describe(node)}: input {i} is not a constant")
        self.set_input_const(node, i, np.take(value, keep, axis=axis))
