"""``onnxprune inspect MODEL``: the channel groups and what blocks them."""

from __future__ import annotations

import argparse

from onnxprune.commands.common import add_model_args, load_model
from onnxprune.report import inspect


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the inspect command."""
    p = sub.add_parser(
        "inspect", help="list channel groups, their MACs share and barriers",
        description="Show the model's inputs, outputs, opset and producer, then every channel "
        "group (channels pruned together): its share of the MACs, whether it can be pruned "
        "and, if not, the barrier that blocks it. No data needed; nothing is written.",
    )
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the inspect report."""
    report = inspect(load_model(args))
    print(report.to_json() if args.json else report.table())
    return 0
