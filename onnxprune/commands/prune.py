"""``onnxprune prune MODEL -o OUT``: remove filters, verify, write, report."""

from __future__ import annotations

import argparse

from onnxprune.commands.common import add_model_args, add_output_args, load_model, output_path, write
from onnxprune.criteria import CRITERIA
from onnxprune.pruning import prune


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the prune command."""
    p = sub.add_parser("prune", help="prune filters and write a verified model")
    add_model_args(p)
    add_output_args(p)
    p.add_argument("--ratio", type=float, required=True,
                   help="share of every prunable group's channels to remove, in (0, 1)")
    p.add_argument("--criterion", choices=sorted(CRITERIA), default="l1")
    p.add_argument("--exclude", nargs="+", default=(), metavar="NODE_OR_GROUP",
                   help="group ids or root node names to leave unpruned")
    p.add_argument("--save-plan", metavar="PLAN.json", help="also write the plan")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Prune, verify, write, print the before/after table."""
    output_path(args)
    model = load_model(args)
    result = prune(model, ratio=args.ratio, criterion=args.criterion, exclude=args.exclude,
                   seed=args.seed)
    write(result.model, args)
    if args.save_plan:
        result.plan.save(args.save_plan)
    print(result.table())
    n = len(result.plan.groups)
    print(f"pruned {n} groups; {len(result.skipped)} groups left unpruned (barriers); "
          f"wrote {args.output}")
    return 0
