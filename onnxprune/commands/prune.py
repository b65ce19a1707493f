"""``onnxprune prune MODEL -o OUT``: remove filters, recover, verify, check, write, report."""

from __future__ import annotations

import argparse
import logging

from onnxprune import ir
from onnxprune.check import check, check_max_drop, enforce
from onnxprune.commands.common import (
    add_model_args,
    add_output_args,
    load_model,
    output_path,
    write,
)
from onnxprune.data import load_data
from onnxprune.defaults import OBJECTIVES
from onnxprune.pruning import prune
from onnxprune.pruning.allocation import ALLOCATIONS
from onnxprune.pruning.compensation import RIDGE
from onnxprune.pruning.criteria import CRITERIA
from onnxprune.pruning.options import PruneOptions


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the prune command."""
    p = sub.add_parser(
        "prune", help="prune filters to a target and write a verified model",
        description="Prune to --target-macs/--target-params (hierarchical, effective filters, "
        "compensation: needs --data) or by a uniform --ratio (L1, no data).",
    )
    add_model_args(p)
    add_output_args(p)
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target-macs", type=float, metavar="F",
                      help="fraction of the MACs to keep, in (0, 1)")
    goal.add_argument("--target-params", type=float, metavar="F",
                      help="fraction of the parameters to keep, in (0, 1)")
    goal.add_argument("--ratio", type=float,
                      help="remove this share of every prunable group (uniform baseline)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help=".npz/.npy file or image folder of calibration inputs")
    src.add_argument("--random-data", type=int, metavar="N",
                     help="use N seeded normal samples (weights-only, not task-aware)")
    p.add_argument("--labels", help=".npy/.npz class ids: supervised distillation and "
                   "accuracy in --check")
    p.add_argument("--samples", type=int, metavar="N", help="use at most N samples")
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
    p.add_argument("--criterion", choices=sorted(CRITERIA), default=None,
                   help="which channels: effective (default with data), taylor, l1 (default "
                   "without data), l2, random")
    p.add_argument("--round-to", type=int, default=1, metavar="N",
                   help="keep multiples of N channels per group (e.g. 8)")
    p.add_argument("--min-channels", type=int, default=1, metavar="N",
                   help="no group goes below N channels")
    p.add_argument("--exclude", nargs="+", default=(), metavar="NODE_OR_GROUP",
                   help="group ids or root node names to leave unpruned")
    p.add_argument("--no-compensation", action="store_true",
                   help="do not fold dropped channels into kept ones")
    p.add_argument("--no-refine", action="store_true",
                   help="one-shot compensation from the analysis only (no sequential refit "
                   "on the pruned upstream activations)")
    p.add_argument("--ridge", type=float, default=RIDGE, help=argparse.SUPPRESS)
    p.add_argument("--distill-epochs", type=int, default=0, metavar="N",
                   help="fine-tune the pruned model to match the original for N epochs")
    p.add_argument("--distill-time", type=_duration, default=None, metavar="T",
                   help="distil for at most T (e.g. 90s, 5m, 1h); with --distill-epochs the "
                   "first limit reached stops it")
    p.add_argument("--distill-lr", type=float, default=None, metavar="LR",
                   help="Adam learning rate of distillation (1e-4)")
    p.add_argument("--steps", type=int, default=1, metavar="K",
                   help="reach the target in K steps, re-analysing in between")
    p.add_argument("--check", action="store_true",
                   help="compare pruned and original outputs on the data before writing")
    p.add_argument("--max-drop", type=float, default=None, metavar="D",
                   help="refuse to write if the drop (accuracy with --labels, else top-1 "
                   "changes or 1-cosine) exceeds D; implies --check")
    p.add_argument("--save-plan", metavar="PLAN.json", help="also write the plan")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="report progress on stderr")
    p.set_defaults(run=run)


def options_from(args: argparse.Namespace) -> PruneOptions:
    """Return the prune options the command line asked for."""
    return PruneOptions(
        ratio=args.ratio, target_macs=args.target_macs, target_params=args.target_params,
        criterion=args.criterion, allocation=args.allocation, objective=args.objective,
        output_weights=tuple(args.output_weight),
        compensate=False if args.no_compensation else None, refine=not args.no_refine,
        ridge=args.ridge, distill_epochs=args.distill_epochs, distill_time=args.distill_time,
        distill_lr=args.distill_lr,
        distill_labels=args.labels is not None, round_to=args.round_to,
        min_channels=args.min_channels, exclude=tuple(args.exclude), steps=args.steps,
        seed=args.seed, device=args.device, progress=args.progress,
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
    if args.check and not has_data:
        from onnxprune.errors import InputError

        raise InputError("--check compares outputs on data: pass --data FILE.npz")
    model = load_model(args)
    data = None
    if has_data:
        data = load_data(
            args.data, ir.io_specs(model.proto), model.input_shapes, labels=args.labels,
            limit=args.samples, random_samples=args.random_data, seed=args.seed,
        )
    if args.progress:
        logging.getLogger("onnxprune").setLevel(logging.INFO)
    result = prune(model, data=data, options=options_from(args))
    checked = None
    if (args.check or args.max_drop is not None) and data is not None:
        checked = check(model.proto, result.model, data)
        enforce(checked, args.max_drop)
    write(result.model, args)
    if args.save_plan:
        result.plan.save(args.save_plan)
    print(result.groups_table())
    print(result.table())
    if result.summary():
        print(result.summary())
    if checked is not None:
        print("\n".join(checked.lines()))
    n = len(result.plan.groups)
    print(f"pruned {n} groups; {len(result.skipped)} groups left unpruned (barriers); "
          f"wrote {args.output}")
    return 0
