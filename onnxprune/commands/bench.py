"""``onnxprune bench``: latency, cost and fidelity of a model, or a pruned model vs its original."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from onnxprune import api as bench_api
from onnxprune import ir
from onnxprune.bench import OPTIMIZATION, PROVIDERS
from onnxprune.bench.profile import compare_table, node_times, top_table
from onnxprune.bench.speed import random_feeds
from onnxprune.commands import common


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(b) for b in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': expected positive integers like 1,8")
    return sizes


def register(subparsers: Any) -> None:
    """Add the ``bench`` command to the ``onnxprune`` parser."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark a model, or compare a pruned model with its original",
        description=__doc__,
    )
    common.add_model_args(p)  # MODEL (the original) and --input-shapes
    p.add_argument("pruned", nargs="?", help="a pruned .onnx model to compare with MODEL")
    common.add_data_args(p)  # random inputs when --data is omitted
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (1)")
    p.add_argument(
        "--batch", type=_batch_sizes, default=(1,), metavar="B,B,..", help="batch sizes (1)"
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per model and batch (10)")
    p.add_argument("--iterations", type=int, default=50, help="timed runs per model and batch")
    p.add_argument(
        "--optimization",
        choices=list(OPTIMIZATION),
        default="all",
        help="onnxruntime graph optimisation level (all)",
    )
    p.add_argument("--provider", choices=list(PROVIDERS), default="cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    p.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the peak-memory measurement (one subprocess per model)",
    )
    p.add_argument(
        "--per-node",
        nargs="?",
        type=int,
        const=15,
        default=None,
        metavar="N",
        help="also profile every node with onnxruntime's profiler and show the N slowest "
        "(15), original vs pruned, so you see which layers did not get faster",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bench`` with parsed arguments and print the report; return the exit code."""
    pre = common.preprocess_of(args)
    report = bench_api.bench(
        args.model,
        args.pruned,
        data=args.data,
        preprocess=pre,
        labels=args.labels,
        samples=args.samples,
        input_shapes=ir.parse_input_shapes(args.input_shapes),
        threads=args.threads,
        batches=args.batch,
        warmup=args.warmup,
        iterations=args.iterations,
        optimization=args.optimization,
        provider=args.provider,
        seed=args.seed,
        measure_memory=not args.no_memory,
    )
    text = report.to_json() if args.json else report.markdown() if args.markdown else report.table()
    if args.per_node is not None:
        text = _with_per_node(text, report, args)
    sys.stdout.write(text + "\n")
    return 0


def _with_per_node(text: str, report: bench_api.BenchReport, args: argparse.Namespace) -> str:
    """Append (or, with --json, add) the per-node profile of the first batch size."""
    paths = [args.model] + ([args.pruned] if args.pruned else [])
    proto = ir.load_model(args.model)
    feeds = random_feeds(proto, dict(report.settings.input_shapes))
    times = [
        node_times(p, feeds, threads=args.threads, optimization=args.optimization,
                   provider=args.provider, runs=max(3, min(args.iterations, 20)))
        for p in paths
    ]
    if args.json:
        data = json.loads(text)
        data["per_node"] = [{n: asdict(t) for n, t in ts.items()} for ts in times]
        return json.dumps(data, indent=2)
    table = (compare_table(times[0], times[1], args.per_node) if len(times) == 2
             else top_table(times[0], args.per_node))
    return (f"{text}\n\nper node (onnxruntime profiler, ms per run, executed graph after "
            f"fusion; random inputs):\n{table}")
