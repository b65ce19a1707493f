"""Speed-up vs MACs: how close the measured onnxruntime speed-up comes to the arithmetic limit.

Every model is pruned to 0.8, 0.6 and 0.4 of its MACs (uniform allocation, l1 criterion, no
compensation), with widths free (round-to 1) and multiples of 8 (round-to 8), and the pruned
model's latency is measured against the original's with ``onnxprune.bench.bench``: batch 1,
explicit intra-op threads, runs of the two models interleaved, medians (p50). Per row:

- MACs / params kept: measured on the written pruned model;
- latency ratio: p50 pruned / p50 original (same run);
- efficiency: (1 / latency ratio) / (1 / MACs ratio), i.e. the share of the arithmetic
  speed-up that onnxruntime delivers (1.0 = latency falls exactly like the MACs).

Models: ResNet-50 and MobileNetV2 (1.0x) at 224x224 with seeded random weights, the small test
architectures at 224x224 (narrow nets: few channels, large activations), and the real models
of ``tools/fetch_models.py`` fed their calibration images.

Usage::

    python benchmarks/speedup.py [--quick] [--threads 1,2] [--iterations 20] [--warmup 3]
        [--only NAME ...] [--json out.json] [--plot out.png]
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import export_arch, fetched_models, machine, machine_line, table, write_json

import onnxprune
from onnxprune import ir
from onnxprune.bench import bench
from onnxprune.data import Dataset, load_data

log = logging.getLogger("speedup")

TARGETS = (0.8, 0.6, 0.4)
ROUND_TO = (1, 8)
LARGE = ("resnet50", "mobilenetv2_full")
SMALL = (
    "vgg_bn", "resnet_basic", "resnet_bottleneck", "resnext", "mobilenetv2", "mobilenetv3",
    "efficientnet", "shufflenetv2", "densenet", "inception", "convnext", "unet",
)  # fmt: skip
FIDELITY_SAMPLES = 4


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # large | small | real
    path: Path
    input_shapes: dict[str, tuple[int, ...]] | None
    calib: Path | None


@dataclass(frozen=True)
class Row:
    model: str
    threads: int
    round_to: int
    target: float
    macs_kept: float
    params_kept: float
    p50_original_ms: float
    p50_pruned_ms: float
    latency_ratio: float
    efficiency: float
    cosine_min: float


def sources(quick: bool, only: Sequence[str]) -> list[Source]:
    names = [*LARGE, *SMALL]
    real = {r["name"]: r for r in fetched_models()}
    wanted = ("mobilenetv2_full", "resnet_basic", "ppocr_cls") if quick else [*names, *real]
    wanted = [n for n in wanted if not only or n in only]
    out = []
    for n in wanted:
        if n in real:
            r = real[n]
            shapes = ir.parse_input_shapes(r["input_shapes"])
            out.append(Source(n, "real", Path(r["path"]), shapes, Path(r["calib"])))
        elif n in LARGE:
            out.append(Source(n, "large", export_arch(n), None, None))
        else:
            out.append(Source(n, "small", export_arch(n, image=224), None, None))
    return out


def prune_to(model: onnxprune.Model, target: float, round_to: int) -> onnxprune.PruneResult:
    """Prune to ``target`` MACs kept: uniform allocation, l1, no compensation."""
    if "target_macs" in inspect.signature(onnxprune.prune).parameters:
        return onnxprune.prune(
            model,
            target_macs=target,
            allocation="uniform",
            criterion="l1",
            compensate=False,
            round_to=round_to,
        )
    return _bisect_ratio(model, target)  # older onnxprune: no targets (round-to ignored)


def _bisect_ratio(model: onnxprune.Model, target: float) -> onnxprune.PruneResult:
    lo, hi, best = 0.0, 1.0, None
    for _ in range(10):
        mid = (lo + hi) / 2
        res = onnxprune.prune(model, ratio=mid, criterion="l1")
        kept = res.after.macs / res.before.macs
        if best is None or abs(kept - target) < abs(best.after.macs / best.before.macs - target):
            best = res
        lo, hi = (mid, hi) if kept > target else (lo, mid)
        if abs(kept - target) < 0.005:
            break
    return best  # type: ignore[return-value]  # the loop runs at least once


def dataset(model: onnxprune.Model, src: Source) -> Dataset:
    specs = ir.io_specs(model.proto)
    if src.calib is None:
        return load_data(None, specs, model.input_shapes, random_samples=FIDELITY_SAMPLES)
    return load_data(src.calib, specs, model.input_shapes, limit=FIDELITY_SAMPLES)


def measure(src: Source, model: onnxprune.Model, args: argparse.Namespace, tmp: Path) -> list[Row]:
    data = dataset(model, src)
    rows = []
    for round_to in args.round_to:
        for target in args.targets:
            t0 = time.perf_counter()
            try:
                res = prune_to(model, target, round_to)
            except onnxprune.CannotPruneError as e:  # e.g. round-to 8 on very narrow nets
                log.warning("%s round-to %d target %.1f: %s", src.name, round_to, target, e)
                continue
            pruned = tmp / f"{src.name}_{round_to}_{target}.onnx"
            ir.save_model(res.model, pruned)
            log.info(
                "%s round-to %d target %.1f: pruned in %.1f s",
                src.name,
                round_to,
                target,
                time.perf_counter() - t0,
            )
            rows += [_row(src, data, pruned, t, round_to, target, args) for t in args.threads]
    return rows


def _row(
    src: Source,
    data: Dataset,
    pruned: Path,
    threads: int,
    round_to: int,
    target: float,
    args: argparse.Namespace,
) -> Row:
    rep = bench(
        src.path,
        pruned,
        data=data,
        input_shapes=src.input_shapes,
        threads=threads,
        warmup=args.warmup,
        iterations=args.iterations,
        measure_memory=False,
    )
    a, b = rep.models
    lat = rep.latency[0]
    macs, ratio = b.macs / a.macs, lat.p50_ms[1] / lat.p50_ms[0]
    cos = rep.fidelity.cosine_min if rep.fidelity else float("nan")
    return Row(
        src.name,
        threads,
        round_to,
        target,
        macs,
        b.params / a.params,
        lat.p50_ms[0],
        lat.p50_ms[1],
        ratio,
        macs / ratio,
        cos,
    )


HEADER = [
    "thr",
    "round",
    "target",
    "MACs kept",
    "params kept",
    "p50 orig ms",
    "p50 pruned ms",
    "lat ratio",
    "efficiency",
]


def model_table(rows: Sequence[Row]) -> str:
    return table(
        HEADER,
        [
            [
                r.threads,
                r.round_to,
                r.target,
                r.macs_kept,
                r.params_kept,
                f"{r.p50_original_ms:.2f}",
                f"{r.p50_pruned_ms:.2f}",
                r.latency_ratio,
                f"{r.efficiency:.2f}",
            ]
            for r in rows
        ],
    )


def summary_table(rows: Sequence[Row], targets: Sequence[float]) -> str:
    keys = sorted(
        {(r.model, r.threads, r.round_to) for r in rows},
        key=lambda k: ([r.model for r in rows].index(k[0]), k[1], k[2]),
    )
    body = []
    for model, threads, round_to in keys:
        sel = {
            r.target: r
            for r in rows
            if (r.model, r.threads, r.round_to) == (model, threads, round_to)
        }
        body.append(
            [
                model,
                threads,
                round_to,
                *[
                    f"{1 / sel[t].latency_ratio:.2f}x ({sel[t].efficiency:.2f})"
                    if t in sel
                    else "n/a"
                    for t in targets
                ],
            ]
        )
    limits = [f"MACs {t} (limit {1 / t:.2f}x)" for t in targets]
    return table(["model", "thr", "round", *limits], body)


def plot(rows: Sequence[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r.threads for r in rows})
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 5), squeeze=False)
    for ax, t in zip(axes[0], threads, strict=True):
        for model in dict.fromkeys(r.model for r in rows):
            for round_to, marker in ((1, "o"), (8, "s")):
                sel = [r for r in rows if (r.model, r.threads, r.round_to) == (model, t, round_to)]
                if sel:
                    ax.plot(
                        [r.macs_kept for r in sel],
                        [r.latency_ratio for r in sel],
                        marker=marker,
                        lw=0.8,
                        label=f"{model} r{round_to}",
                    )
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="latency = MACs")
        ax.set(
            xlim=(0.3, 1.0),
            ylim=(0.0, 1.4),
            xlabel="MACs kept",
            ylabel="latency ratio (pruned / original, p50)",
            title=f"{t} thread(s)",
        )
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 models, 1 target, 1 thread, few runs")
    p.add_argument("--threads", default="1,2", help="intra-op thread counts (1,2)")
    p.add_argument("--iterations", type=int, default=20, help="timed runs per model (20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model (3)")
    p.add_argument("--only", nargs="+", default=(), help="model names to run")
    p.add_argument("--json", help="write rows and machine info here")
    p.add_argument("--plot", help="write a latency-ratio vs MACs-kept plot (PNG) here")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    args.targets, args.round_to = list(TARGETS), list(ROUND_TO)
    if args.quick:
        args.threads, args.targets, args.iterations, args.warmup = [1], [0.6], 5, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("onnxprune").setLevel(logging.ERROR)  # random-data warnings
    args = parse(argv)
    info = machine(args.threads)
    started = time.perf_counter()
    rows: list[Row] = []
    print(machine_line(info))
    print(
        f"bench: batch 1, warmup {args.warmup}, iterations {args.iterations}, interleaved, "
        "p50; ORT CPU provider, optimization 'all', inter-op 1, sequential; pruning: "
        "uniform allocation, l1, no compensation; efficiency = MACs ratio / latency ratio\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources(args.quick, args.only):
            t0 = time.perf_counter()
            try:
                model = onnxprune.load(src.path, input_shapes=src.input_shapes)
                new = measure(src, model, args, Path(tmp))
            except onnxprune.OnnxPruneError as e:
                print(f"== {src.name}: skipped ({type(e).__name__}: {e})\n")
                continue
            rows += new
            shapes = " ".join(f"{k}:{','.join(map(str, v))}" for k, v in model.input_shapes.items())
            print(
                f"== {src.name} ({src.kind}; {shapes}; {model.cost.macs / 1e6:,.1f} MMACs, "
                f"{model.cost.params:,} params; {time.perf_counter() - t0:.0f} s)"
            )
            print(model_table(new) + "\n", flush=True)
    print("== summary: speed-up = 1 / latency ratio (efficiency), by MACs target")
    print(summary_table(rows, args.targets))
    wall = time.perf_counter() - started
    print(f"\ntotal wall time {wall:.0f} s")
    if args.json:
        write_json(
            args.json,
            {
                "machine": info,
                "settings": {k: v for k, v in vars(args).items() if k not in ("json", "plot")},
                "wall_s": round(wall, 1),
                "rows": [asdict(r) for r in rows],
            },
        )
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
