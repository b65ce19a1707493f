"""Time the graph side of onnxprune on a real-size model: load, channel graph, a 30% plan.

Usage:
    python tools/bench_graph.py                      # exports ResNet-50 (legacy exporter)
    python tools/bench_graph.py --arch mobilenetv2_full --dynamo
    python tools/bench_graph.py --model some.onnx [--input-shapes images:1,3,640,640]

Prints one row per stage with the best of ``--repeat`` wall times, plus node and group counts.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import onnxprune
from onnxprune import ir
from onnxprune.channels.context import Context
from onnxprune.channels.graph import ChannelGraph
from onnxprune.pruning import ratio_plan
from onnxprune.surgery import apply_plan
from onnxprune.testing.archs import LARGE_ARCHS
from onnxprune.testing.export import export_onnx
from onnxprune.verify import verify

logger = logging.getLogger("bench_graph")
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    model: Path | None
    arch: str
    dynamo: bool
    input_shapes: dict[str, tuple[int, ...]]
    share: float
    repeat: int


@dataclass(frozen=True)
class Row:
    stage: str
    best_s: float
    median_s: float
    note: str = ""


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="an existing .onnx (default: export --arch)")
    p.add_argument("--arch", choices=sorted(LARGE_ARCHS), default="resnet50")
    p.add_argument("--dynamo", action="store_true", help="export with torch.export (opset 18)")
    p.add_argument("--input-shapes", action="append", metavar="NAME:D1,D2,..")
    p.add_argument("--share", type=float, default=0.3, help="share of each group to remove")
    p.add_argument("--repeat", type=int, default=3, help="runs per stage (best is reported)")
    ns = p.parse_args(argv)
    shapes = ir.parse_input_shapes(ns.input_shapes)
    return Options(ns.model, ns.arch, ns.dynamo, shapes, ns.share, max(1, ns.repeat))


def timed(fn: Callable[[], T], repeat: int) -> tuple[T, list[float]]:
    """Run ``fn`` ``repeat`` times; return the last result and every wall time."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, times  # type: ignore[return-value]


def row(stage: str, times: list[float], note: str = "") -> Row:
    return Row(stage, min(times), statistics.median(times), note)


def bench(path: Path, opts: Options) -> list[Row]:
    rows = []
    model, t = timed(lambda: onnxprune.load(path, input_shapes=opts.input_shapes), opts.repeat)
    n_nodes = len(model.proto.graph.node)
    rows.append(row("load + shape inference", t, f"{n_nodes} nodes"))
    graph, t = timed(lambda: ir.to_graph(model.proto), opts.repeat)
    rows.append(row("  import to graphsurgeon", t, f"{len(graph.nodes)} nodes after folding"))
    opset = ir.opset_version(model.proto)
    cg, t = timed(
        lambda: ChannelGraph(Context(ir.to_graph(model.proto), model.shapes, opset)), opts.repeat
    )
    n_ok = sum(g.prunable for g in cg.groups)
    groups = f"{len(cg.groups)} groups, {n_ok} prunable"
    rows.append(row("channel graph (import + rules)", t, groups))
    plan, t = timed(lambda: ratio_plan(model, ratio=opts.share).keep(), opts.repeat)
    dropped = sum(cg.group(g).size - len(k) for g, k in plan.items())
    note = f"{len(plan)} groups, {dropped} channels dropped"
    rows.append(row(f"{opts.share:.0%} plan (L1)", t, note))
    pruned, t = timed(lambda: apply_plan(model, plan), opts.repeat)
    rows.append(row("apply plan (graph + surgery + verify)", t,
                    f"{len(pruned.graph.node)} nodes written"))
    _, t = timed(lambda: verify(pruned, model.proto, model.input_shapes), opts.repeat)
    rows.append(row("  of which verification", t, "checker, strict shapes, onnxruntime"))
    return rows


def table(rows: list[Row], title: str) -> str:
    head = f"{'stage':<40}{'best s':>9}{'median s':>10}  note"
    lines = [title, head, "-" * len(head)]
    lines += [f"{r.stage:<40}{r.best_s:>9.3f}{r.median_s:>10.3f}  {r.note}" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opts = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = opts.model
        if path is None:
            spec = LARGE_ARCHS[opts.arch]
            path = export_onnx(spec.build(), spec.input_shape, Path(tmp) / f"{opts.arch}.onnx",
                               dynamo=opts.dynamo)
            exporter = "dynamo" if opts.dynamo else "legacy"
            logger.info("exported %s (%s exporter)", spec.name, exporter)
        title = f"{path.name}: {path.stat().st_size / 1e6:.1f} MB, repeat {opts.repeat}"
        print(table(bench(path, opts), title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
