"""``onnxprune prune MODEL -o OUT``: remove filters, recover, verify, check, write, report."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from onnxprune import ir
from onnxprune.bench.runtime import PROVIDERS
from onnxprune.bench.speed import SpeedCheck, speed_check
from onnxprune.check import MAX_DROP, check_max_drop, enforce
from onnxprune.commands.common import (
    add_data_args,
    add_model_args,
    add_output_args,
    load_model_and_data,
    output_path,
    plural,
    preprocess_of,
    write,
)
from onnxprune.defaults import OBJECTIVES
from onnxprune.errors import CannotPruneError, InputError
from onnxprune.loading import load_distill_data
from onnxprune.model import Model
from onnxprune.pruning import grid, prune
from onnxprune.pruning.allocation import ALLOCATIONS, ENERGY_POWER
from onnxprune.pruning.compensation import RIDGE
from onnxprune.pruning.criteria import CRITERIA
from onnxprune.pruning.mixup import ALPHA as MIX
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.result import PruneResult


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the prune command."""
    p = sub.add_parser(
        "prune", help="prune filters to a target and write a verified model",
        description="Prune to a target share KEPT (--target-macs/--target-params: with --data "
        "hierarchical widths, effective filters and compensation; without data the data-free "
        "baseline, said in one line) or by a uniform share REMOVED from every group "
        "(--prune-ratio, L1, no data).",
    )
    add_model_args(p)
    add_output_args(p)
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target-macs", type=float, metavar="KEEP",
                      help="share of the MACs to KEEP, in (0, 1): 0.3 keeps 30%%")
    goal.add_argument("--target-params", type=float, metavar="KEEP",
                      help="share of the parameters to KEEP, in (0, 1)")
    goal.add_argument("--target-latency", type=float, metavar="KEEP",
                      help="share of the original's p50 latency to KEEP, in (0, 1): "
                      "allocates on a measured latency table (cached), then measures")
    goal.add_argument("--prune-ratio", "--ratio", dest="ratio", type=float, metavar="REMOVE",
                      help="share of every prunable group's channels to REMOVE (uniform "
                      "baseline): 0.3 removes 30%%, the opposite sense of --target-macs")
    add_data_args(p, random="use N seeded normal samples (weights-only, not task-aware)")
    p.add_argument("--objective", choices=OBJECTIVES, default="output-aware",
                   help="objective of the analysis (output-aware: each output standardised, "
                   "logits behind Sigmoid/Softmax; gauss-newton: the raw outputs)")
    p.add_argument("--output-weight", action="append", default=[], metavar="NAME=W",
                   type=_output_weight,
                   help="weigh graph output NAME by W in the objective, distillation and "
                   "check (default 1 each; 0 ignores it); repeatable")
    p.add_argument("--allocation", choices=ALLOCATIONS, default=None,
                   help="how many channels per group: hierarchical (default with data), "
                   "uniform, global")
    p.add_argument("--energy-power", type=float, default=ENERGY_POWER, metavar="A",
                   help="how much a group's total estimated loss weighs when the hierarchical "
                   "allocation compares groups: 0 = every group alike, 1 = the absolute "
                   f"estimate (default {ENERGY_POWER:g})")
    p.add_argument("--criterion", choices=sorted(CRITERIA), default=None,
                   help="which channels: effective (default with data), taylor, l1 (default "
                   "without data), l2, random")
    p.add_argument("--round-to", type=_round_to, default=grid.AUTO, metavar="N|auto",
                   help="keep multiples of N channels per group; auto (default): the grid "
                   "the provider's fast kernels want on this CPU; 1: exact MACs")
    p.add_argument("--min-channels", type=int, default=1, metavar="N",
                   help="no group goes below N channels")
    p.add_argument("--exclude", nargs="+", default=(), metavar="NODE_OR_GROUP",
                   help="group ids or root node names to leave unpruned")
    p.add_argument("--no-compensation", action="store_true",
                   help="do not fold dropped channels into kept ones")
    p.add_argument("--no-refine", action="store_true",
                   help="one-shot compensation from the analysis only (no sequential refit "
                   "on the pruned upstream activations)")
    p.add_argument("--probe", action="store_true",
                   help="with --target-macs/--target-params: measure each group pruned alone "
                   "(compensated and refined) before the final allocation, and price the groups "
                   "by that measured loss (slower: one refinement pass per pruned group)")
    p.add_argument("--ridge", type=float, default=RIDGE, help=argparse.SUPPRESS)
    p.add_argument("--distill-epochs", type=int, default=0, metavar="N",
                   help="fine-tune the pruned model to match the original for N epochs")
    p.add_argument("--distill-time", type=_duration, default=None, metavar="T",
                   help="distil for at most T (e.g. 90s, 5m, 1h); with --distill-epochs the "
                   "first limit reached stops it")
    p.add_argument("--distill-lr", type=float, default=None, metavar="LR",
                   help="Adam learning rate of distillation (1e-4)")
    p.add_argument("--distill-mix", type=float, default=MIX, metavar="A",
                   help=f"label-free distillation mixes each sample with a random other one "
                   f"(weight ~ Beta(A, A)) and asks the original about the mix ({MIX:g}; 0: "
                   "train on the samples as they are)")
    p.add_argument("--distill-data", metavar="FILE.npz|FILE.npy|DIR",
                   help="more unlabelled samples for distillation alone, shaped like --data "
                   "(the analysis keeps to --data; distillation gains from thousands)")
    p.add_argument("--steps", type=int, default=1, metavar="K",
                   help="reach the target in K steps, re-analysing in between")
    p.add_argument("--check", action="store_true",
                   help="print the fidelity check per output (it always runs with data)")
    p.add_argument("--max-drop", type=float, default=None, metavar="D",
                   help="refuse to write (exit 3) if the drop on the data exceeds D, for the "
                   "worst output: accuracy drop with --labels, else share of changed top-1 "
                   f"classes for class scores, else 1 - mean cosine (default {MAX_DROP:g})")
    p.add_argument("--force", action="store_true",
                   help="write the model even when it fails the fidelity check (with a "
                   "warning)")
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime intra-op threads of the latency table and speed check (1)")
    p.add_argument("--provider", choices=list(PROVIDERS), default="cpu",
                   help="onnxruntime provider to prune for (cpu)")
    p.add_argument("--min-speedup", type=float, default=None, metavar="X",
                   help="refuse to write (exit 3) if the measured speed-up is below X")
    p.add_argument("--no-speed-check", action="store_true",
                   help="skip timing the pruned model against the original (~1-2 s)")
    p.add_argument("--save-plan", metavar="PLAN.json", help="also write the plan")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # now default
    p.set_defaults(run=run)


def _round_to(text: str) -> int | str:
    try:
        return grid.parse_round_to(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected 'auto' or an integer >= 1") \
            from None


def options_from(args: argparse.Namespace) -> PruneOptions:
    """Return the prune options the command line asked for."""
    return PruneOptions(
        ratio=args.ratio, target_macs=args.target_macs, target_params=args.target_params,
        target_latency=args.target_latency, threads=args.threads, provider=args.provider,
        criterion=args.criterion, allocation=args.allocation, energy_power=args.energy_power,
        objective=args.objective,
        output_weights=tuple(args.output_weight),
        compensate=False if args.no_compensation else None, refine=not args.no_refine,
        probe=args.probe,
        ridge=args.ridge, distill_epochs=args.distill_epochs, distill_time=args.distill_time,
        distill_lr=args.distill_lr, distill_mix=args.distill_mix,
        distill_labels=args.labels is not None, round_to=args.round_to,
        min_channels=args.min_channels, exclude=tuple(args.exclude), steps=args.steps,
        seed=args.seed, device=args.device, progress=args.progress,
        max_drop=MAX_DROP if args.max_drop is None else args.max_drop,
    )


def _output_weight(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        if sep and name:
            return name, float(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"'{text}': give NAME=W, e.g. prob=2")


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    unit = text[-1:].lower()
    try:
        return float(text[:-1]) * _UNITS[unit] if unit in _UNITS else float(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"'{text}': give a duration such as 90s, 5m or 1h")


def run(args: argparse.Namespace) -> int:
    """Prune, verify, optionally check, write, print the before/after table."""
    output_path(args)
    has_data = args.data is not None or args.random_data is not None
    check_max_drop(args.max_drop, has_data)
    if args.min_speedup is not None and (args.min_speedup <= 0 or args.no_speed_check):
        raise InputError(f"--min-speedup {args.min_speedup}: needs the speed check and a "
                         "positive speed-up, e.g. --min-speedup 1.0")
    if args.check and not has_data:
        raise InputError("--check compares outputs on data: pass --data FILE.npz")
    options = options_from(args)
    if args.distill_data is not None and not options.distils:
        raise InputError("--distill-data is only read by distillation: add --distill-time 5m "
                         "(or --distill-epochs N), or drop --distill-data")
    model, data = load_model_and_data(args)
    more = None if args.distill_data is None else load_distill_data(
        model, args.distill_data, preprocess=preprocess_of(args))
    if args.progress:
        logging.getLogger("onnxprune").setLevel(logging.INFO)
    result = prune(model, data=data, options=options, distill_data=more)
    if result.check is not None:
        enforce(result.check, args.output, force=args.force)
    with tempfile.TemporaryDirectory(prefix="onnxprune-original-",
                                     ignore_cleanup_errors=True) as folder:
        shapes = model.input_shapes
        timed = not args.no_speed_check and result.speed is None  # else measured already
        original = _reopenable(model, Path(folder)) if timed else None
        pruned, result = _parked(result, Path(folder)) if timed else (None, result)
        del model, data  # the original's weights go before onnxruntime opens it
        gc.collect()  # (the model's channel graph holds reference cycles)
        speed = None if args.no_speed_check else _speed(original, pruned, shapes, result, args)
        if isinstance(pruned, Path):  # the weights, back once both sessions are closed
            result = replace(result, model=ir.load_model(pruned))
    write(result.model, args)
    sidecar = result.plan.save(args.save_plan) if args.save_plan else None
    print(result.groups_table())
    print(result.table())
    print(result.summary())
    if result.check is None:
        print("fidelity: not checked (no data); pass --data to compare the pruned model with "
              "the original before it is written")
    elif args.check:
        print("\n".join(result.check.lines()))
    else:
        print(result.check.line())
    if args.save_plan:
        print(f"plan: wrote {args.save_plan}" + (f" and its compensation updates {sidecar}"
                                                 if sidecar else ""))
    print(f"pruned {plural(len(result.plan.groups), 'group')}; "
          f"{plural(len(result.skipped), 'group')} left unpruned (barriers); wrote {args.output}")
    if speed is not None:
        kept = result.after.macs / result.before.macs if result.before.macs else None
        print(speed.line(kept))
        loud = speed.warning(args.round_to)
        hint = None if args.target_latency else speed.hint(kept)
        for line, stream in ((loud, sys.stderr), (hint, sys.stdout)):
            if line:
                print(line, file=stream)
    return 0


def _reopenable(model: Model, folder: Path) -> ir.ModelProto | Path:
    """Return what the speed check opens the original from, so that ``model`` can go first.

    A small model is timed as it is. A large one is reopened from its file when that keeps
    the weights in a data file; otherwise from a copy with external data written to
    ``folder``: onnxruntime opens external weights with 2x their size above the session,
    inline ones with 3x (a 0.45 GB conv stack at full optimisation).
    """
    path = model.unchanged_file
    if not ir.heavy(model.proto):
        return path or model.proto
    if path is not None and path.stat().st_size < ir.model_bytes(model.proto) // 2:
        return path
    return ir.save_external(model.proto, folder / "original.onnx")


def _parked(result: PruneResult, folder: Path) -> tuple[ir.ModelProto | Path, PruneResult]:
    """Return what the speed check opens the pruned model from, and the result meanwhile.

    A large pruned model is saved with its weights in a data file in ``folder``, and the
    result keeps only its weightless skeleton until the timing is over: onnxruntime then
    holds the only copy of the pruned weights while both models are timed.
    """
    if not ir.heavy(result.model):
        return result.model, result
    path = ir.save_external(result.model, folder / "pruned.onnx")
    return path, replace(result, model=ir.load_model(path, weights=False))


def _speed(original: ir.ModelProto | Path | None, pruned: ir.ModelProto | Path | None,
           shapes: Mapping[str, tuple[int, ...]], result: PruneResult,
           args: argparse.Namespace) -> SpeedCheck:
    """Measure original vs pruned (reusing --target-latency's measurement); enforce the floor.

    ``original`` and ``pruned`` are what :func:`_reopenable` and :func:`_parked` gave (None
    when --target-latency measured).
    """
    if result.speed is not None:
        speed = result.speed
    else:
        assert original is not None and pruned is not None
        speed = speed_check(original, pruned, shapes, threads=args.threads,
                            provider=args.provider)
    if args.min_speedup is not None and speed.speedup < args.min_speedup:
        aim = min(0.95, 1 / args.min_speedup)
        raise CannotPruneError(
            f"measured {speed.line()}: below --min-speedup {args.min_speedup:g}; nothing "
            f"written. To fix this, prune with --target-latency {aim:.2f}, a milder target, "
            "or the default --round-to auto")
    return speed
