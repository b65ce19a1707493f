"""Time and peak memory of ``onnxprune.analysis.analyze`` on a model and its calibration data.

Each configuration runs in a fresh subprocess so that its peak RSS (``resource.getrusage``,
``ru_maxrss`` of the child) is its own. ``analyze_s`` is wall time, ``analyze_cpu_s`` the
process CPU time (less sensitive to other load on a shared machine). After the analysis (and
after its peak RSS is read) the child times one onnxruntime forward pass over the same samples
in the model's fixed batch or ``--batch-size``, with the same thread count (``ort_s``,
``ort_cpu_s``); ``x_ort`` is ``analyze_cpu_s / ort_cpu_s``. A model with a fixed batch runs
that batch whatever ``--batch-size`` says. Prints a table (or JSON with ``--json``;
``--table`` adds each configuration's analysis table).

Usage::

    python tools/measure_analyze.py MODEL.onnx DATA.npz [--input-shapes x:1,3,48,320]
        [--samples 32] [--batch-size 16 8] [--directions 4] [--objective gauss-newton]
        [--threads 1 2] [--no-estimate] [--table] [--json]

``--samples N`` repeats the calibration samples cyclically when the file holds fewer
(the timing depends on the count, not on which images they are).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any


def _child(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from onnxprune import ir
    from onnxprune.analysis import analyze
    from onnxprune.data import Dataset, load_data
    from onnxprune.model import load

    torch.set_num_threads(args.threads[0])
    t0 = time.perf_counter()
    model = load(args.model, input_shapes=ir.parse_input_shapes(args.input_shapes))
    data = load_data(args.data, ir.io_specs(model.proto), model.input_shapes)
    idx = np.arange(args.samples) % len(data)
    data = Dataset({k: v[idx] for k, v in data.inputs.items()}, None, data.source)
    t1 = time.perf_counter()
    c1 = time.process_time()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = analyze(model, data, objective=args.objective, directions=args.directions,
                     batch_size=args.batch_size[0], estimate=not args.no_estimate)
    t2 = time.perf_counter()
    c2 = time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ort_s, ort_cpu_s = _ort_forward(args.model, data, _batch(model, args.batch_size[0]),
                                    args.threads[0])
    analysed = [g for g in result.groups if g.analysed]
    est = result.estimate
    return {
        "model": args.model, "samples": len(data), "batch_size": _batch(model, args.batch_size[0]),
        "threads": args.threads[0], "directions": result.directions,
        "load_s": round(t1 - t0, 2), "analyze_s": round(t2 - t1, 2),
        "analyze_cpu_s": round(c2 - c1, 2),
        "ort_s": round(ort_s, 2), "ort_cpu_s": round(ort_cpu_s, 2),
        "x_ort": round((c2 - c1) / max(ort_cpu_s, 1e-9), 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_before_analyze_mb": round(rss_before / 1024, 1),
        "groups": len(result.groups), "analysed": len(analysed),
        "channels": sum(g.channels for g in analysed),
        "mean_max_rate": round(sum(g.max_rate or 0 for g in analysed) / max(1, len(analysed)), 3),
        "macs_kept": None if est is None or est.error
        else round(est.macs_after / est.macs_before, 3),
        "statuses": _count(g.status for g in result.groups),
        "table": result.table() if args.table else None,
    }


def _ort_forward(path: str, data: Any, batch: int, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds of one onnxruntime forward pass over ``data`` (session built first)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    batches = [feeds for feeds, _ in data.batches(batch)]
    t0, c0 = time.perf_counter(), time.process_time()
    for feeds in batches:
        sess.run(None, feeds)
    return time.perf_counter() - t0, time.process_time() - c0


def _batch(model: Any, asked: int) -> int:
    """The batch ``analyze`` really uses: a model's fixed batch wins over ``--batch-size``."""
    from onnxprune import ir

    fixed = [s.shape[0] for s in ir.io_specs(model.proto)
             if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0]
    return max(fixed) if fixed else asked


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--input-shapes", action="append", default=None)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--batch-size", type=int, nargs="+", default=[16])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--directions", type=int, default=4)
    p.add_argument("--objective", default="gauss-newton")
    p.add_argument("--no-estimate", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--table", action="store_true",
                   help="also print the analysis table of each configuration")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _run_child(argv: list[str], batch: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *argv, "--child", "--batch-size", str(batch),
           "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return 0
    rows = [_run_child(argv, b, t) for b, t in itertools.product(args.batch_size, args.threads)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ["samples", "batch_size", "threads", "directions", "analyze_s", "analyze_cpu_s",
            "ort_cpu_s", "x_ort", "peak_rss_mb",
            "rss_before_analyze_mb", "analysed", "channels", "mean_max_rate", "macs_kept"]
    print(f"model: {args.model}")
    print("  ".join(f"{c:>10}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]!s:>10}" for c in cols))
    for r in rows:
        print(f"statuses (batch {r['batch_size']}, {r['threads']} threads): {r['statuses']}")
        if r["table"]:
            print(r["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
