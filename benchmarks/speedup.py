"""Speed-up vs MACs: what onnxruntime delivers of the arithmetic limit, and latency targets.

Every model is pruned

- to ``--target-macs 0.7`` and ``0.5`` with the default ``--round-to auto`` and with
  ``--round-to 1`` (exact MACs, the old default), and
- to ``--target-latency 0.7`` and ``0.5`` (one latency table per thread count; its build time,
  or ~0 s when cached, is reported),

and the pruned model's latency is measured against the original's with ``bench``'s session
options: batch 1, 1 and 2 intra-op threads, runs of the two models interleaved (at least
``--iterations`` pairs, more for ``--seconds``), medians. Per row:

- MACs kept: measured on the pruned model;
- speed-up: 1 / the median of the per-pair latency ratios pruned/original (interleaved pairs;
  robust to preemptions on a loaded machine); the p50s of both are shown too;
- efficiency: speed-up / arithmetic limit = speed-up x MACs kept (1.0: latency falls exactly
  like the MACs);
- predicted: the latency table's predicted latency kept (``--target-latency`` rows); measured:
  p50 pruned / p50 original.

Allocation: the defaults (hierarchical, effective criterion, compensation) on the analysis of
``--samples`` calibration samples (real models: their calibration images; synthetic models:
seeded normal inputs), run once per model and reused by every row; or ``uniform``/``l1``
without compensation for the models named in ``--uniform`` (the row says which).

Usage::

    python benchmarks/speedup.py [--quick] [--threads 1,2] [--iterations 20] [--warmup 3]
        [--only NAME ...] [--uniform NAME ...] [--samples 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import _speed_models
import numpy as np
from _common import export_arch, fetched_models, machine, machine_line, table, write_json

import onnxprune
from onnxprune import ir
from onnxprune.analysis import analyze
from onnxprune.bench import make_session
from onnxprune.bench.speed import random_feeds
from onnxprune.data import Dataset, load_data

log = logging.getLogger("speedup")

MODELS = ("ppocr_cls", "ppocr_rec", "mobilenetv2_full", "mobilenetv3_large", "efficientnet_b0",
          "ppocr_det", "yolov8n_320", "picodet_layout", "resnet50")  # cheapest first
MACS = (0.7, 0.5)
LATENCY = (0.7, 0.5)


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    input_shapes: dict[str, tuple[int, ...]] | None
    calib: Path | None


@dataclass(frozen=True)
class Row:
    model: str
    allocation: str  # "default" (hierarchical/effective/compensation) or "uniform-l1"
    threads: int
    goal: str  # macs | latency
    target: float
    round_to: str
    macs_kept: float
    p50_original_ms: float
    p50_pruned_ms: float
    speedup: float
    efficiency: float
    predicted: float | None
    measured: float
    table_s: float | None
    prune_s: float


def sources(only: Sequence[str]) -> list[Source]:
    real = {r["name"]: r for r in fetched_models()}
    out = []
    for n in MODELS:
        if only and n not in only:
            continue
        if n in real:
            r = real[n]
            shapes = ir.parse_input_shapes(r["input_shapes"])
            out.append(Source(n, Path(r["path"]), shapes, Path(r["calib"])))
        elif n in _speed_models.SPECS:
            out.append(Source(n, _speed_models.export(n), None, None))
        else:
            out.append(Source(n, export_arch(n), None, None))
    return out


def dataset(model: onnxprune.Model, src: Source, samples: int) -> Dataset:
    specs = ir.io_specs(model.proto)
    if src.calib is None:
        return load_data(None, specs, model.input_shapes, random_samples=samples)
    return load_data(src.calib, specs, model.input_shapes, limit=samples)


def configs(threads: Sequence[int]) -> list[tuple[str, float, str, int | None]]:
    """(goal, target, round-to, threads of the table or None) of every prune."""
    out: list[tuple[str, float, str, int | None]] = []
    for rt in ("auto", "1"):
        out += [("macs", t, rt, None) for t in MACS]
    for th in threads:
        out += [("latency", t, "auto", th) for t in LATENCY]
    return out


def prune_one(model: onnxprune.Model, goal: str, target: float, round_to: str,
              threads: int | None, uniform: bool, analysis: object, data: Dataset | None
              ) -> tuple[onnxprune.PruneResult, float]:
    kw: dict[str, object] = {f"target_{goal}": target,
                             "round_to": "auto" if round_to == "auto" else int(round_to),
                             "threads": threads or 1}
    if uniform:
        kw.update(allocation="uniform", criterion="l1", compensate=False)
    else:
        kw.update(analysis=analysis, data=data)
    t0 = time.perf_counter()
    res = onnxprune.prune(model, **kw)  # type: ignore[arg-type]
    return res, time.perf_counter() - t0


def _table_seconds(res: onnxprune.PruneResult) -> float | None:
    for note in res.notes:
        if note.startswith("latency table:"):
            return 0.0 if "loaded from cache" in note else float(
                note.rsplit("built in ", 1)[1].split(" s")[0])
    return None


def measure(src: Source, model: onnxprune.Model, args: argparse.Namespace, tmp: Path
            ) -> list[Row]:
    uniform = src.name in args.uniform
    data = dataset(model, src, args.samples)
    analysis = None
    if not uniform:
        t0 = time.perf_counter()
        analysis = analyze(model, data, estimate=False)
        log.info("%s: analysed %d samples in %.0f s", src.name, len(data),
                 time.perf_counter() - t0)
    rows = []
    for goal, target, round_to, table_threads in configs(args.threads):
        try:
            res, seconds = prune_one(model, goal, target, round_to, table_threads, uniform,
                                     analysis, data)
        except onnxprune.OnnxPruneError as e:
            log.warning("%s %s %.1f round-to %s: %s", src.name, goal, target, round_to, e)
            continue
        pruned = tmp / f"{src.name}_{goal}_{target}_{round_to}_{table_threads}.onnx"
        ir.save_model(res.model, pruned)
        est = res.allocation.estimate if res.allocation is not None else None
        log.info("%s %s %.1f round-to %s threads %s: pruned in %.0f s", src.name, goal, target,
                 round_to, table_threads, seconds)
        for th in args.threads if table_threads is None else [table_threads]:
            rows.append(_row(src, pruned, th, goal, target, round_to, uniform, args,
                             est if goal == "latency" else None, _table_seconds(res), seconds))
    return rows


def _row(src: Source, pruned: Path, threads: int, goal: str, target: float, round_to: str,
         uniform: bool, args: argparse.Namespace, predicted: float | None,
         table_s: float | None, prune_s: float) -> Row:
    original = onnxprune.load(src.path, input_shapes=src.input_shapes)
    small = onnxprune.load(pruned, input_shapes=original.input_shapes)
    p50, ratio = paired(original, pruned, threads, args)
    macs = small.cost.macs / original.cost.macs
    return Row(src.name, "uniform-l1" if uniform else "default", threads, goal, target,
               round_to, macs, p50[0], p50[1], 1 / ratio, macs / ratio, predicted, ratio,
               table_s, prune_s)


def paired(original: onnxprune.Model, pruned: Path, threads: int, args: argparse.Namespace
           ) -> tuple[list[float], float]:
    """Interleaved runs A, B, A, B, ...: both p50s and the median of the per-pair ratios.

    On a loaded machine a preemption hits one run of a pair; the median of pair ratios
    shrugs it off where a ratio of two p50s can be moved by it.
    """
    feeds = random_feeds(original.proto, original.input_shapes)
    sessions = [make_session(m, threads=threads) for m in (original.proto, str(pruned))]
    for _ in range(args.warmup):
        for s in sessions:
            s.run(None, feeds)
    times: list[list[float]] = [[], []]
    start = time.perf_counter()
    while len(times[0]) < args.iterations or (
            time.perf_counter() - start < args.seconds and len(times[0]) < 10 * args.iterations):
        for k, s in enumerate(sessions):
            t0 = time.perf_counter()
            s.run(None, feeds)
            times[k].append(time.perf_counter() - t0)
    a, b = np.array(times[0]), np.array(times[1])
    return [float(np.median(a)) * 1e3, float(np.median(b)) * 1e3], float(np.median(b / a))


HEADER = ["model", "alloc", "thr", "goal", "round", "MACs kept", "p50 orig ms",
          "p50 pruned ms", "speed-up", "efficiency", "lat predicted", "lat measured",
          "table s"]


def rows_table(rows: Sequence[Row]) -> str:
    return table(HEADER, [[
        r.model, r.allocation, r.threads, f"{r.goal} {r.target}", r.round_to, r.macs_kept,
        f"{r.p50_original_ms:.2f}", f"{r.p50_pruned_ms:.2f}", f"{r.speedup:.2f}x",
        f"{r.efficiency:.2f}", "" if r.predicted is None else f"{r.predicted:.3f}",
        f"{r.measured:.3f}", "" if r.table_s is None else f"{r.table_s:.1f}"]
        for r in rows])


def markdown(rows: Sequence[Row]) -> str:
    """One line per model and thread count: speed-up (efficiency) per configuration."""
    cols = [("macs", 0.7, "auto"), ("macs", 0.5, "auto"), ("macs", 0.7, "1"),
            ("macs", 0.5, "1"), ("latency", 0.7, "auto"), ("latency", 0.5, "auto")]
    head = ["model (allocation)", "thr", "MACs 0.7 auto", "MACs 0.5 auto", "MACs 0.7 r1",
            "MACs 0.5 r1", "lat 0.7: pred/meas (speed-up)", "lat 0.5: pred/meas (speed-up)",
            "table build s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    keys = list(dict.fromkeys((r.model, r.allocation, r.threads) for r in rows))
    for model, alloc, th in keys:
        sel = {(r.goal, r.target, r.round_to): r for r in rows
               if (r.model, r.allocation, r.threads) == (model, alloc, th)}
        cells = []
        for c in cols:
            r = sel.get(c)
            if r is None:
                cells.append("n/a")
            elif r.goal == "macs":
                cells.append(f"{r.speedup:.2f}x ({r.efficiency:.2f})")
            else:
                cells.append(f"{r.predicted:.2f}/{r.measured:.2f} ({r.speedup:.2f}x)")
        built = [r.table_s for r in sel.values() if r.table_s]
        cells.append(f"{max(built):.1f}" if built else "cached")
        lines.append("| " + " | ".join([f"{model} ({alloc})", str(th), *cells]) + " |")
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 models, 1 thread, few runs")
    p.add_argument("--threads", default="1,2", help="intra-op thread counts (1,2)")
    p.add_argument("--iterations", type=int, default=30, help="timed runs per model (30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model (3)")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="keep timing pairs for this long (up to 10x --iterations) (3)")
    p.add_argument("--samples", type=int, default=16, help="calibration samples (16)")
    p.add_argument("--only", nargs="+", default=(), help="model names to run")
    p.add_argument("--uniform", nargs="+", default=(),
                   help="models pruned uniform/l1 without analysis (when it is too slow)")
    p.add_argument("--json", help="write rows and machine info here")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    if args.quick:
        args.threads, args.iterations, args.warmup = [1], 5, 1
        args.only = args.only or ("mobilenetv2_full", "ppocr_cls")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("onnxprune").setLevel(logging.ERROR)
    args = parse(argv)
    info = machine(args.threads)
    started = time.perf_counter()
    rows: list[Row] = []
    print(machine_line(info))
    print(f"bench: batch 1, warmup {args.warmup}, iterations {args.iterations}, interleaved, "
          "p50; ORT CPU provider, optimization 'all'; efficiency = speed-up x MACs kept\n")
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources(args.only):
            t0 = time.perf_counter()
            try:
                model = onnxprune.load(src.path, input_shapes=src.input_shapes)
                new = measure(src, model, args, Path(tmp))
            except onnxprune.OnnxPruneError as e:
                print(f"== {src.name}: skipped ({type(e).__name__}: {e})\n")
                continue
            rows += new
            print(f"== {src.name} ({model.cost.macs / 1e6:,.1f} MMACs; "
                  f"{time.perf_counter() - t0:.0f} s; load {_load()})")
            print(rows_table(new) + "\n", flush=True)
    print("== summary: speed-up (efficiency = speed-up x MACs kept); latency targets: "
          "predicted/measured latency kept (speed-up)")
    print(markdown(rows))
    wall = time.perf_counter() - started
    print(f"\ntotal wall time {wall:.0f} s; load avg at end {_load()}")
    if args.json:
        write_json(args.json, {"machine": info, "load_at_end": _load(),
                               "settings": {k: v for k, v in vars(args).items() if k != "json"},
                               "wall_s": round(wall, 1), "rows": [asdict(r) for r in rows]})
    return 0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
