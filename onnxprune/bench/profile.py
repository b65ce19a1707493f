"""Per-node latency from onnxruntime's profiler (``bench --per-node``).

onnxruntime writes one JSON event per node run (``cat: "Node"``, ``dur`` in µs, the node name
suffixed ``_kernel_time``); the events are summed per node and divided by the runs, for the
graph onnxruntime actually executes (after fusion: a Conv+Relu is one ``FusedConv``, NCHWc
convs are ``nchwc`` nodes named after the original Conv).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from onnxprune import ir
from onnxprune.bench.runtime import OPTIMIZATION, PROVIDERS, run

SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class NodeTime:
    """Mean time (ms per run) of one executed node."""

    name: str
    op: str
    ms: float


def node_times(
    model: ir.ModelProto | str | Path,
    feeds: Mapping[str, np.ndarray],
    *,
    threads: int = 1,
    optimization: str = "all",
    provider: str = "cpu",
    runs: int = 10,
) -> dict[str, NodeTime]:
    """Profile ``runs`` runs (after one warm-up) and return the mean time of every node.

    Raises:
        InputError: onnxruntime cannot load or run the model.

    """
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        if threads > 1:  # like make_session
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = OPTIMIZATION[optimization]
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "profile")
        source = model.SerializeToString() if isinstance(model, ir.ModelProto) else str(model)
        providers = list(dict.fromkeys([PROVIDERS[provider], PROVIDERS["cpu"]]))
        sess = ort.InferenceSession(source, so, providers=providers)
        run(sess, feeds)
        for _ in range(runs):
            run(sess, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    total: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith(SUFFIX):
            continue
        name = e["name"][: -len(SUFFIX)]
        total.setdefault(name, []).append(float(e.get("dur", 0)) / 1e3)
        ops[name] = e.get("args", {}).get("op_name", "?")
    # the warm-up run is profiled too: drop each node's first event
    return {n: NodeTime(n, ops[n], float(np.sum(t[1:])) / max(len(t) - 1, 1))
            for n, t in total.items()}


def compare_table(original: Mapping[str, NodeTime], pruned: Mapping[str, NodeTime],
                  top: int = 15) -> str:
    """Text table of the ``top`` slowest original nodes: op, original ms, pruned ms, ratio."""
    rows = sorted(original.values(), key=lambda t: -t.ms)[:top]
    name_w = max([len(r.name) for r in rows] + [4])
    lines = [f"{'node':<{name_w}}  {'op':<18} {'original ms':>11} {'pruned ms':>10} {'ratio':>6}"]
    for r in rows:
        p = pruned.get(r.name)
        ratio = f"{p.ms / r.ms:.2f}" if p is not None and r.ms > 0 else "n/a"
        lines.append(f"{r.name:<{name_w}}  {r.op:<18} {r.ms:>11.3f} "
                     f"{'gone' if p is None else f'{p.ms:.3f}':>10} {ratio:>6}")
    tot_a = sum(t.ms for t in original.values())
    tot_b = sum(t.ms for t in pruned.values())
    lines.append(f"{'all nodes':<{name_w}}  {'':<18} {tot_a:>11.3f} {tot_b:>10.3f} "
                 f"{tot_b / tot_a if tot_a else 0:>6.2f}")
    return "\n".join(lines)


def top_table(times: Mapping[str, NodeTime], top: int = 15) -> str:
    """Text table of the ``top`` slowest nodes of one model."""
    return compare_table(times, {}, top).replace(" gone", "  n/a")


def ops_summary(times: Mapping[str, NodeTime]) -> dict[str, float]:
    """Total ms per executed op type."""
    out: dict[str, float] = {}
    for t in times.values():
        out[t.op] = out.get(t.op, 0.0) + t.ms
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


__all__: Sequence[str] = ("NodeTime", "compare_table", "node_times", "ops_summary", "top_table")
