"""Tool cost: wall time and peak memory of ``inspect``, ``analyze`` and ``prune`` vs model size.

Every measurement runs in a fresh child process; its wall time is taken around the whole child
(interpreter start, imports and model load included) and its peak RSS is
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` read by a lean launcher process that ran only it.

- ``inspect`` and ``prune --ratio 0.3`` run the CLI (``python -m onnxprune.cli``);
- ``analyze`` runs ``onnxprune.analysis.analyze`` (gauss-newton, 4 directions, batch 16) on
  the model's calibration images (real models) or seeded normal samples (built models), as
  ``tools/measure_analyze.py`` does; its child also reports the time inside ``analyze``.

Three tables: cost against model size (nodes, params, MACs), each stage's share of
``prune --target-macs 0.5`` (load, analysis, allocation, surgery, compensation, verify, save),
and ``analyze`` against the number of calibration samples on one model.

Stage times come from a child that runs the CLI with the stage functions wrapped in timers;
each stage is charged its own time only (the surgery's time leaves out the compensation and
verification it calls). ``other`` is what no stage claims: imports, data, tables.

Usage::

    python benchmarks/tool_cost.py [--quick] [--samples 8] [--sweep 8,16,32,64]
        [--sweep-model ppocr_cls] [--analyze-max-gmacs 0.1] [--stage-models mobilenetv3]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import child_env, export_arch, fetched_models, machine, machine_line, table, write_json

# small to large: built archs at their own size (LARGE_ARCHS at 224) and fetched real models
MODELS = (
    "mobilenetv3", "resnet_basic", "ppocr_cls", "yolov8", "mobilenetv2_full", "ppocr_rec",
    "resnet50",
)  # fmt: skip
QUICK_MODELS = ("mobilenetv3", "ppocr_cls")


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    input_shapes: list[str]  # CLI form, NAME:D1,D2,..
    calib: Path | None


@dataclass(frozen=True)
class Cost:
    wall_s: float
    peak_rss_mb: float
    inner_s: float | None = None  # time inside analyze (children report it)
    error: str | None = None


def sources(names: Sequence[str]) -> dict[str, Source]:
    real = {r["name"]: r for r in fetched_models()}
    out = {}
    for name in names:
        if name in real:
            r = real[name]
            out[name] = Source(name, Path(r["path"]), list(r["input_shapes"]), Path(r["calib"]))
        else:
            out[name] = Source(name, export_arch(name), [], None)
    return out


# A lean launcher between us and the measured command: a child's ru_maxrss starts from the
# RSS of the process it was forked from (Linux keeps the pre-exec high-water mark), and this
# script holds loaded models; the launcher holds ~10 MB, so it reports the command's own peak.
_LAUNCHER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)


def run_child(cmd: Sequence[str]) -> Cost:
    """Run ``cmd`` in a fresh process; return its wall time and its own peak RSS."""
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, *cmd]
    t0 = time.perf_counter()
    done = subprocess.run(launcher, capture_output=True, text=True, env=child_env(), check=False)
    wall = time.perf_counter() - t0
    lines = done.stderr.strip().splitlines() or ["0"]
    rss = int(lines[-1]) / 1024 if lines[-1].isdigit() else float("nan")
    if done.returncode != 0:
        return Cost(wall, rss, error=(lines[:-1] or ["?"])[-1][:200])
    last = (done.stdout.strip().splitlines() or ["{}"])[-1]
    inner = json.loads(last).get("analyze_s") if last.startswith("{") else None
    return Cost(wall, rss, inner)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "onnxprune.cli", *args]


def shape_args(src: Source) -> list[str]:
    return [a for s in src.input_shapes for a in ("--input-shapes", s)]


def inspect_cost(src: Source) -> Cost:
    return run_child(cli("inspect", str(src.path), *shape_args(src)))


def prune_cost(src: Source, tmp: Path) -> Cost:
    out = tmp / f"{src.name}_pruned.onnx"
    return run_child(
        cli("prune", str(src.path), "--ratio", "0.3", "-o", str(out), *shape_args(src))
    )


def analyze_cost(src: Source, samples: int) -> Cost:
    calib = str(src.calib) if src.calib else "-"
    cmd = [sys.executable, __file__, "--child-analyze", str(src.path), calib, str(samples)]
    return run_child(cmd + src.input_shapes)


def child_analyze(path: str, calib: str, samples: int, shapes: Sequence[str]) -> None:
    """Child side of :func:`analyze_cost`: load, analyze, print the time inside analyze."""
    import numpy as np

    from onnxprune import ir, load
    from onnxprune.analysis import analyze
    from onnxprune.data import Dataset, load_data

    model = load(path, input_shapes=ir.parse_input_shapes(list(shapes)))
    specs = ir.io_specs(model.proto)
    if calib == "-":
        data = load_data(None, specs, model.input_shapes, random_samples=samples)
    else:  # repeat the calibration images cyclically up to ``samples``
        data = load_data(calib, specs, model.input_shapes)
        idx = np.arange(samples) % len(data)
        data = Dataset({k: v[idx] for k, v in data.inputs.items()}, None, data.source)
    t0 = time.perf_counter()
    analyze(model, data, batch_size=16)
    print(json.dumps({"analyze_s": round(time.perf_counter() - t0, 3)}))


STAGES = ("load", "analysis", "allocation", "surgery", "compensation", "verify", "save")
# stage -> (module, attribute) of each function charged to it; wrapped where it is looked up
_STAGE_FUNCS = {
    "load": [("onnxprune.commands.common", "load"), ("onnxprune.pruning", "load")],
    "analysis": [("onnxprune.analysis", "analyze")],
    "allocation": [("onnxprune.pruning", "_target_plan"), ("onnxprune.pruning", "ratio_plan")],
    "surgery": [("onnxprune.pruning", "apply_plan")],
    "compensation": [("onnxprune.pruning", "compensate")],
    "verify": [("onnxprune.surgery", "verify"), ("onnxprune.verify", "verify")],
    "save": [("onnxprune.ir", "save_model")],
}


class StageClock:
    """Exclusive wall time per stage: a nested stage's time is not charged to its caller."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._stack: list[list[float]] = []  # [start, time of nested stages]

    def wrap(self, stage: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                start, nested = self._stack.pop()
                took = time.perf_counter() - start
                self.seconds[stage] += took - nested
                if self._stack:
                    self._stack[-1][1] += took

        return timed


def child_stages(argv: Sequence[str]) -> None:
    """Child side of :func:`stage_cost`: run ``onnxprune ARGV`` with timed stages."""
    import importlib

    from onnxprune.cli import main as cli_main

    clock = StageClock()
    for stage, sites in _STAGE_FUNCS.items():
        for module, name in sites:
            mod = importlib.import_module(module)
            setattr(mod, name, clock.wrap(stage, getattr(mod, name)))
    t0 = time.perf_counter()
    code = cli_main(list(argv))
    total = time.perf_counter() - t0
    print(json.dumps({"code": code, "total_s": round(total, 3),
                      "stages": {k: round(v, 3) for k, v in clock.seconds.items()}}))


def stage_cost(src: Source, tmp: Path, samples: int) -> dict[str, Any]:
    """Stage times of ``prune --target-macs 0.5`` on ``src`` (random data, ``samples``)."""
    out = tmp / f"{src.name}_stages.onnx"
    data = ["--data", str(src.calib), "--samples", str(samples)] if src.calib else [
        "--random-data", str(samples)]
    cmd = [sys.executable, __file__, "--child-stages", "prune", str(src.path), "--target-macs",
           "0.5", "-o", str(out), *data, *shape_args(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), check=False)
    last = (done.stdout.strip().splitlines() or ["{}"])[-1]
    if done.returncode != 0 or not last.startswith("{"):
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(last)


def stage_table(rows: Sequence[dict[str, Any]]) -> str:
    header = ["model", "total s", *STAGES, "other"]
    body = []
    for r in rows:
        st = r["stages"]
        if "error" in st:
            body.append([r["model"], f"error: {st['error'][:60]}", *[""] * (len(STAGES) + 1)])
            continue
        total = st["total_s"]
        other = total - sum(st["stages"].values())
        cells = [f"{v:.1f} ({100 * v / total:.0f}%)" for v in (*st["stages"].values(), other)]
        body.append([r["model"], f"{total:.1f}", *cells])
    return table(header, body)


def size_of(src: Source) -> dict[str, Any]:
    from onnxprune import ir, load

    model = load(src.path, input_shapes=ir.parse_input_shapes(src.input_shapes))
    return {
        "nodes": len(model.proto.graph.node),
        "params": model.cost.params,
        "macs": model.cost.macs,
        "mb": src.path.stat().st_size / 1e6,
    }


def _fmt(c: Cost | None, inner: bool = False) -> list[str]:
    if c is None:
        return ["skipped", ""] + ([""] if inner else [])
    if c.error:
        return [f"error: {c.error[:40]}", ""] + ([""] if inner else [])
    cells = [f"{c.wall_s:.1f}", f"{c.peak_rss_mb:,.0f}"]
    return cells + ([f"{c.inner_s:.1f}" if c.inner_s is not None else "n/a"] if inner else [])


def size_table(rows: Sequence[dict[str, Any]]) -> str:
    header = [
        "model",
        "nodes",
        "params",
        "MMACs",
        "inspect s",
        "MB",
        "prune s",
        "MB",
        "analyze s",
        "MB",
        "in analyze s",
    ]
    body = [
        [
            r["model"],
            r["nodes"],
            f"{r['params']:,}",
            f"{r['macs'] / 1e6:,.1f}",
            *_fmt(r["inspect"]),
            *_fmt(r["prune"]),
            *_fmt(r["analyze"], inner=True),
        ]
        for r in rows
    ]
    return table(header, body)


def sweep_table(rows: Sequence[dict[str, Any]]) -> str:
    body = [[r["samples"], *_fmt(r["analyze"], inner=True)] for r in rows]
    return table(["samples", "analyze s", "peak RSS MB", "in analyze s"], body)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 small models, a 2-point sweep")
    p.add_argument("--samples", type=int, default=8, help="analyze samples in the size table")
    p.add_argument("--sweep", default="8,16,32,64", help="sample counts of the analyze sweep")
    p.add_argument("--sweep-model", default="ppocr_cls", help="model of the analyze sweep")
    p.add_argument(
        "--analyze-max-gmacs",
        type=float,
        default=0.1,
        help="skip analyze on bigger models in the size table (GMACs, 0.1)",
    )
    p.add_argument("--only", nargs="+", default=(), help="model names of the size table")
    p.add_argument("--stage-models", nargs="*", default=["mobilenetv3", "resnet_basic"],
                   help="models of the stage table (prune --target-macs 0.5)")
    p.add_argument("--json", help="write the rows and machine info here")
    args = p.parse_args(argv)
    args.sweep = [int(s) for s in args.sweep.split(",")]
    args.models = [n for n in MODELS if not args.only or n in args.only]
    if args.quick:
        args.models, args.sweep = (
            [m for m in QUICK_MODELS if m in args.models or not args.only],
            [8, 16],
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child-analyze"]:
        child_analyze(argv[1], argv[2], int(argv[3]), argv[4:])
        return 0
    if argv[:1] == ["--child-stages"]:
        child_stages(argv[1:])
        return 0
    args = parse(argv)
    info = machine()
    print(machine_line(info))
    print(
        "each cell: a fresh child process; wall s includes interpreter start, imports and "
        "model load; MB = the child's peak RSS (ru_maxrss); analyze: gauss-newton, 4 "
        "directions, batch 16, torch threads default\n",
        flush=True,
    )
    started = time.perf_counter()
    startup = run_child(cli("--help"))
    print(
        f"CLI start-up alone (python -m onnxprune.cli --help): {startup.wall_s:.1f} s, "
        f"{startup.peak_rss_mb:,.0f} MB\n",
        flush=True,
    )
    srcs = sources(dict.fromkeys([*args.models, *args.stage_models, args.sweep_model]))
    size_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            src = srcs[name]
            row: dict[str, Any] = {"model": name, **size_of(src)}
            row["inspect"] = inspect_cost(src)
            row["prune"] = prune_cost(src, Path(tmp))
            big = row["macs"] > args.analyze_max_gmacs * 1e9
            row["analyze"] = None if big else analyze_cost(src, args.samples)
            print(f"  {name}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
            size_rows.append(row)
    print(
        f"== cost vs model size (analyze on {args.samples} samples; skipped above "
        f"{args.analyze_max_gmacs} GMACs)"
    )
    print(size_table(size_rows) + "\n", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        stage_rows = [{"model": n, "stages": stage_cost(srcs[n], Path(tmp), args.samples)}
                      for n in args.stage_models]
    print(f"== stage shares of prune --target-macs 0.5 ({args.samples} samples; wall s and "
          "share of the command's time)")
    print(stage_table(stage_rows) + "\n", flush=True)
    sweep_src = srcs[args.sweep_model]
    sweep = [{"samples": n, "analyze": analyze_cost(sweep_src, n)} for n in args.sweep]
    data = "calibration images, repeated cyclically" if sweep_src.calib else "random samples"
    print(f"== analyze vs calibration samples on {args.sweep_model} ({data})")
    print(sweep_table(sweep))
    wall = time.perf_counter() - started
    print(f"\ntotal wall time {wall:.0f} s")
    if args.json:

        def plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {k: asdict(v) if isinstance(v, Cost) else v for k, v in r.items()} for r in rows
            ]

        write_json(
            args.json,
            {
                "machine": info,
                "settings": vars(args),
                "wall_s": round(wall, 1),
                "size": plain(size_rows),
                "stages": stage_rows,
                "samples": plain(sweep),
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
