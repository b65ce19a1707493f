"""Micro-benchmarks of one prunable node at chosen channel widths (for the latency table).

A :class:`NodeSpec` is what onnxruntime sees of a Conv / ConvTranspose / Gemm / MatMul with a
constant weight: its attributes, its input's real shape, its weight's shape and the activation
that onnxruntime fuses into it (a Relu/Clip/... that is its only consumer, behind a folded
BatchNormalization). :meth:`NodeSpec.model` rebuilds it as a one- or two-node ONNX model with
``c_in`` input and ``c_out`` output channels (seeded random weights), and :class:`Timer` times
such models with the session options of ``bench``, minus the fixed cost of a session run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxprune import ir
from onnxprune.bench.runtime import make_session

FUSED = ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Clip")
"""Activations onnxruntime fuses into a Conv (FusedConv / NCHWc) when they are its only reader."""
OPSET = 17


@dataclass(frozen=True)
class Tail:
    """The activation fused into a node: op type, attributes, Clip bounds (as inputs)."""

    op: str
    attrs: tuple[tuple[str, object], ...] = ()
    bounds: tuple[float, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """A prunable node as a self-contained, hashable micro-benchmark description.

    ``x_axis``: channel axis of the data input; ``w_in``/``w_out``: the weight's input and
    output channel axes; ``depthwise``: one input channel per output channel (``group`` follows
    the width); ``tail``: the fused activation (op, attributes, Clip bounds).
    """

    op: str
    attrs: tuple[tuple[str, object], ...]
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    bias: bool
    x_axis: int
    w_in: int
    w_out: int
    depthwise: bool = False
    tail: Tail | None = None

    @property
    def c_in(self) -> int:
        """Input channels (features) of the node."""
        return self.x_shape[self.x_axis]

    @property
    def c_out(self) -> int:
        """Output channels (features) of the node."""
        return self.w_shape[self.w_out]

    def model(self, c_in: int, c_out: int, seed: int = 0) -> ir.ModelProto:
        """Return the node (and its fused activation) at ``c_in`` -> ``c_out`` channels."""
        if self.depthwise:
            c_in = c_out
        rng = np.random.default_rng(seed)
        x_shape = list(self.x_shape)
        x_shape[self.x_axis] = c_in
        w_shape = list(self.w_shape)
        w_shape[self.w_out] = c_out
        if not self.depthwise:
            w_shape[self.w_in] = c_in
        attrs: dict[str, Any] = dict(self.attrs)
        if self.depthwise:
            attrs["group"] = c_out
        inits = [ir.from_array((rng.standard_normal(w_shape) * 0.05).astype(np.float32), "W")]
        names = ["X", "W"]
        if self.bias:
            inits.append(ir.from_array(np.zeros(c_out, np.float32), "B"))
            names.append("B")
        nodes = [ir.make_node(self.op, names, ["Y0"], **attrs)]
        last = "Y0"
        if self.tail is not None:
            ins = [last]
            for i, v in enumerate(self.tail.bounds):
                inits.append(ir.from_array(np.array(v, np.float32), f"clip{i}"))
                ins.append(f"clip{i}")
            t_attrs: dict[str, Any] = dict(self.tail.attrs)
            nodes.append(ir.make_node(self.tail.op, ins, ["Y1"], **t_attrs))
            last = "Y1"
        graph = ir.make_graph(
            nodes, "micro", [ir.make_value_info("X", np.float32, x_shape)],
            [ir.make_value_info(last, np.float32, None)], inits)
        return ir.make_model(graph, opset=OPSET, ir_version=8)

    def feed(self, c_in: int, seed: int = 0) -> np.ndarray:
        """Return a seeded input for :meth:`model` at ``c_in`` channels."""
        shape = list(self.x_shape)
        shape[self.x_axis] = c_in
        return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


class Timer:
    """Times micro-models with fixed session options; subtracts the cost of an empty run."""

    def __init__(self, *, threads: int, optimization: str, provider: str,
                 budget_ms: float = 25.0, repeats: tuple[int, int] = (3, 15)) -> None:
        self.options = {"threads": threads, "optimization": optimization, "provider": provider}
        self.budget_ms = budget_ms
        self.repeats = repeats
        self.runs = 0
        self.overhead_ms = 0.0
        self.overhead_ms = self._time(_identity(), np.zeros((1, 16), np.float32))

    def time(self, spec: NodeSpec, c_in: int, c_out: int) -> float:
        """Fastest latency (ms) of ``spec`` at ``c_in`` -> ``c_out``, less the empty run."""
        c_in = c_out if spec.depthwise else c_in
        return self._time(spec.model(c_in, c_out), spec.feed(c_in))

    def _time(self, model: ir.ModelProto, x: np.ndarray) -> float:
        sess = make_session(model, **self.options)  # type: ignore[arg-type]
        feeds = {"X": x}
        t0 = time.perf_counter()
        sess.run(None, feeds)  # warm-up (first run allocates)
        first = (time.perf_counter() - t0) * 1e3
        lo, hi = self.repeats
        n = int(min(hi, max(lo, self.budget_ms / max(first, 1e-3))))
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        self.runs += n + 1
        # the fastest run: other processes only ever add time (a shared, loaded machine)
        return max(float(np.min(times)) - self.overhead_ms, 1e-4)


def _identity() -> ir.ModelProto:
    graph = ir.make_graph(
        [ir.make_node("Identity", ["X"], ["Y"])], "empty",
        [ir.make_value_info("X", np.float32, [1, 16])],
        [ir.make_value_info("Y", np.float32, [1, 16])])
    return ir.make_model(graph, opset=OPSET, ir_version=8)
