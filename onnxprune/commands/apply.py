"""``onnxprune apply MODEL PLAN -o OUT``: replay a saved plan."""

from __future__ import annotations

import argparse

from onnxprune.commands.common import (
    add_model_args,
    add_output_args,
    load_model,
    output_path,
    write,
)
from onnxprune.pruning import apply
from onnxprune.pruning.plan import load_plan


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the apply command."""
    p = sub.add_parser(
        "apply", help="apply a saved plan (from prune --save-plan)",
        description="Replay a plan saved by 'onnxprune prune --save-plan' on MODEL: the same "
        "channels are removed (without compensation or distillation), the result is verified "
        "and written to -o. Useful to prune again after re-exporting the same model.",
    )
    add_model_args(p)
    p.add_argument("plan", help="plan JSON written by 'onnxprune prune --save-plan'")
    add_output_args(p)
    p.add_argument("--channels-only", action="store_true",
                   help="remove the plan's channels without replaying its recovery (for plans "
                   "that cannot reproduce prune's model: distilled, several steps)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Apply, verify, write, print the before/after table."""
    output_path(args)
    model = load_model(args)
    plan = load_plan(args.plan, model.groups)
    result = apply(model, plan, channels_only=args.channels_only)
    write(result.model, args)
    print(result.groups_table())
    print(result.table())
    rec = plan.recovery
    if args.channels_only:
        replayed = "kept channels only (no recovery replayed)"
    elif rec.compensation:
        consumers = len({u.node for u in rec.updates or ()})
        replayed = f"kept channels and prune's compensation ({consumers} consumer(s) updated)"
    else:
        replayed = "kept channels (prune used no compensation)"
    print(f"applied {len(plan.groups)} groups from {args.plan}: {replayed}; wrote {args.output}")
    return 0
