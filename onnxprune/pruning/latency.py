"""The measured latency table: onnxruntime latency of every prunable node vs its widths.

For every Conv (dense, 1x1, depthwise), ConvTranspose, Gemm and MatMul with a constant weight,
the node is rebuilt alone at its real input shape with the activation onnxruntime fuses into
it (``bench/micro.py``) and timed with the session options of ``bench`` (provider, threads,
optimisation level) at a few widths on the latency-friendly grid (``pruning/grid.py``): the
output channels at 1/4, 1/2, 3/4 and all of them with the input full, and the input channels
likewise with the output full. Identical configurations (same op, attributes, shapes) are
timed once. The whole model is timed too, and profiled once: the share of its time outside
the prunable nodes' kernels (elementwise ops, pooling, SE gates, reorders) is spread over the
other nodes by the elements they touch and scales with the channels they carry
(``pruning/latency_cost.py``). Which nodes are measured, and how, is ``latency_nodes.py``.

The table is cached as JSON under ``$ONNXPRUNE_CACHE`` (default ``~/.cache/onnxprune``),
``latency/<key>.json``, the key hashing the model's structure (:func:`structure_hash`), its
input shapes, provider, threads,
optimisation level, grid, CPU model, onnxruntime version and :data:`VERSION`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from onnxprune.bench.micro import NodeSpec, Timer
from onnxprune.bench.profile import node_times
from onnxprune.bench.runtime import make_session
from onnxprune.bench.speed import random_feeds
from onnxprune.model import Model
from onnxprune.pruning.latency_nodes import node_specs

log = logging.getLogger(__name__)

VERSION = 2  # 2: no intra-op spinning with several threads
FRACTIONS = (0.25, 0.5, 0.75)
MODEL_RUNS = 5
PROFILE_RUNS = 3
KERNEL_OPS = ("Conv", "FusedConv", "NchwcConv", "ConvTranspose", "Gemm", "FusedGemm",
              "MatMul", "FusedMatMul")
"""Executed op types that are the prunable nodes themselves (after onnxruntime's fusions)."""


@dataclass(frozen=True)
class Curve:
    """Latency (ms) of one node vs its output widths and its input widths.

    ``outs`` are timed with the input full, ``ins`` with the output full; a depthwise node has
    only ``outs`` (its input follows).
    """

    c_in: int
    c_out: int
    outs: tuple[tuple[int, float], ...]
    ins: tuple[tuple[int, float], ...] = ()
    depthwise: bool = False

    @property
    def full_ms(self) -> float:
        """Latency at full widths."""
        return dict(self.outs)[self.c_out]


@dataclass(frozen=True)
class LatencyTable:
    """Per-node latency curves, the whole model's p50, and what building them cost."""

    key: str
    settings: dict[str, object]
    model_ms: float
    curves: dict[str, Curve]
    overhead_ms: float = 0.0
    build_s: float = 0.0
    measured: int = 0  # distinct micro-benchmarks run
    cached: bool = False
    fused: tuple[str, ...] = field(default=())  # nodes folded into a measured node
    rest: float = 0.0  # share of the profiled model time outside the prunable nodes

    def line(self) -> str:
        """One line: what the table holds and what it cost."""
        how = "loaded from cache" if self.cached else f"built in {self.build_s:.1f} s"
        return (f"latency table: {len(self.curves)} nodes, {self.measured} micro-benchmarks, "
                f"model p50 {self.model_ms:.3f} ms ({self.settings['provider']}, "
                f"{self.settings['threads']} thread(s)); {how}")

    def to_json(self) -> str:
        """Serialise (the ``cached`` flag is not stored)."""
        data = asdict(self)
        data.pop("cached")
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> LatencyTable:
        """Load a serialised table."""
        data = json.loads(text)
        curves = {n: Curve(c["c_in"], c["c_out"], tuple(map(tuple, c["outs"])),
                           tuple(map(tuple, c["ins"])), c["depthwise"])
                  for n, c in data.pop("curves").items()}
        data["fused"] = tuple(data.get("fused", ()))
        data.setdefault("rest", 0.0)
        return cls(curves=curves, cached=True, **data)


def cache_root() -> Path:
    """Return the user cache folder of onnxprune."""
    if os.environ.get("ONNXPRUNE_CACHE"):
        return Path(os.environ["ONNXPRUNE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "onnxprune"


def cpu_model() -> str:
    """Return the CPU's model name (part of the cache key)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(model: Model, *, threads: int, provider: str, optimization: str, step: int
              ) -> tuple[str, dict[str, object]]:
    """Return the table's cache key and the settings it hashes."""
    settings: dict[str, object] = {
        "model_sha256": structure_hash(model),
        "input_shapes": {k: list(v) for k, v in sorted(model.input_shapes.items())},
        "provider": provider, "threads": threads, "optimization": optimization, "grid": step,
        "cpu": cpu_model(), "onnxruntime": ort.__version__, "version": VERSION,
    }
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], settings


def structure_hash(model: Model) -> str:
    """SHA-256 of what latency depends on: nodes, attributes, weight names/shapes/dtypes.

    Not the weight values: they do not change the time (so a distilled or re-trained model of
    the same architecture reuses the table) and hashing 100 MB of them costs a second or more.
    """
    h = hashlib.sha256()
    graph = model.proto.graph
    for node in graph.node:
        h.update(node.SerializeToString())
    for t in graph.initializer:
        h.update(f"{t.name}:{t.data_type}:{list(t.dims)};".encode())
    for v in (*graph.input, *graph.output):
        h.update(v.SerializeToString())
    for op in model.proto.opset_import:
        h.update(f"{op.domain}:{op.version};".encode())
    return h.hexdigest()


def table_for(model: Model, *, threads: int = 1, provider: str = "cpu",
              optimization: str = "all", step: int = 16, cache: bool = True) -> LatencyTable:
    """Load the model's latency table from the cache, or measure it (and cache it).

    Raises:
        InputError: onnxruntime cannot load or run the model or a micro-benchmark.

    """
    key, settings = cache_key(model, threads=threads, provider=provider,
                              optimization=optimization, step=step)
    path = cache_root() / "latency" / f"{key}.json"
    if cache and path.exists():
        try:
            return LatencyTable.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("latency table %s unreadable (%s); measuring again", path, e)
    table = build(model, key=key, settings=settings, step=step)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(table.to_json())
            tmp.replace(path)
        except OSError as e:
            log.warning("cannot cache the latency table in %s (%s)", path, e)
    return table


def build(model: Model, *, key: str, settings: dict[str, object], step: int) -> LatencyTable:
    """Measure every prunable node's curve and the whole model (see the module doc)."""
    start = time.perf_counter()
    opts = {k: settings[k] for k in ("threads", "provider", "optimization")}
    timer = Timer(**opts)  # type: ignore[arg-type]
    specs, fused = node_specs(model)
    memo: dict[tuple[NodeSpec, int, int], float] = {}

    def ms(spec: NodeSpec, c_in: int, c_out: int) -> float:
        k = (spec, c_in, c_out)
        if k not in memo:
            memo[k] = timer.time(spec, c_in, c_out)
        return memo[k]

    curves = {}
    for name, spec in specs.items():
        outs = tuple((c, ms(spec, spec.c_in, c)) for c in points(spec.c_out, step))
        ins = () if spec.depthwise else tuple(
            (c, ms(spec, c, spec.c_out)) for c in points(spec.c_in, step))
        curves[name] = Curve(spec.c_in, spec.c_out, outs, ins, spec.depthwise)
    model_ms = model_latency(model, **opts)  # type: ignore[arg-type]
    rest = rest_fraction(model, **opts)  # type: ignore[arg-type]
    table = LatencyTable(key, settings, model_ms, curves, timer.overhead_ms,
                         time.perf_counter() - start, len(memo), False, tuple(sorted(fused)),
                         rest)
    log.info("%s", table.line())
    return table


def points(size: int, step: int) -> list[int]:
    """Widths to time: 1/4, 1/2, 3/4 of ``size`` on the grid of ``step``, and ``size``."""
    out = {size}
    for f in FRACTIONS:
        w = int(round(size * f / step)) * step
        if 0 < w < size:
            out.add(w)
    return sorted(out)


def model_latency(model: Model, *, threads: int, provider: str, optimization: str) -> float:
    """Fastest latency (ms) of the whole model with the given session options."""
    sess = make_session(model.proto, threads=threads, provider=provider,
                        optimization=optimization)
    feeds = random_feeds(model.proto, model.input_shapes)
    sess.run(None, feeds)
    times = []
    for _ in range(MODEL_RUNS):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.min(times))  # like the micro-benchmarks: load only ever adds time


def rest_fraction(model: Model, *, threads: int, provider: str, optimization: str) -> float:
    """Share of the model's time spent outside Conv/Gemm/MatMul kernels, from the profiler.

    A share, not a difference of times: on a loaded machine a long whole-model run is
    preempted far more than a short micro-benchmark, so ``model - sum(nodes)`` would count
    the other processes as elementwise work; the profiler's split is taken within the same runs.
    """
    times = node_times(model.proto, random_feeds(model.proto, model.input_shapes),
                       threads=threads, provider=provider, optimization=optimization,
                       runs=PROFILE_RUNS)
    total = sum(t.ms for t in times.values())
    other = sum(t.ms for t in times.values() if t.op not in KERNEL_OPS)
    return other / total if total > 0 else 0.0


