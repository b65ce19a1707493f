"""``onnxprune prune MODEL -o OUT``: remove filters, recover, verify, check, write, report."""

from __future__ import annotations

import argparse
import logging

from onnxprune import ir
from onnxprune.check import MAX_DROP, check_max_drop, enforce
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
    p.add_argument("--objective", choices=OBJECTIVES, default="gauss-newton",
                   help="objective of the analysis (gauss-newton)")
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
    p.add_argument("--ridge", type=float, default=RIDGE, help=argparse.SUPPRESS)
    p.add_argument("--distill-epochs", type=int, default=0, metavar="N",
                   help="fine-tune the pruned model to match the original for N epochs")
    p.add_argument("--distill-lr", type=float, default=None, metavar="LR",
                   help="Adam learning rate of distillation (1e-4)")
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
        compensate=False if args.no_compensation else None, ridge=args.ridge,
        distill_epochs=args.distill_epochs, distill_lr=args.distill_lr,
        distill_labels=args.labels is not None, round_to=args.round_to,
        min_channels=args.min_channels, exclude=tuple(args.exclude), steps=args.steps,
        seed=args.seed, device=args.device, progress=args.progress,
        max_drop=MAX_DROP if args.max_drop is None else args.max_drop,
    )


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
    if result.check is not None:
        enforce(result.check, args.output, force=args.force)
    write(result.model, args)
    sidecar = result.plan.save(args.save_plan) if args.save_plan else None
    print(result.groups_table())
    print(result.table())
    if result.summary():
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
    n = len(result.plan.groups)
    print(f"pruned {n} groups; {len(result.skipped)} groups left unpruned (barriers); "
          f"wrote {args.output}")
    return 0
