"""``onnxprune analyze MODEL --data X.npz``: effective filters and maximum rate of every group."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from onnxprune.commands.common import add_data_args, add_model_args, load_model_and_data
from onnxprune.defaults import ENERGY_EPS, OBJECTIVES, RANDOM_SAMPLES, REL_TOL


def register(sub: Any) -> None:
    """Add the analyze command."""
    p = sub.add_parser(
        "analyze", help="effective filters and maximum compression rate of every group",
        description=__doc__,
    )
    add_model_args(p)
    add_data_args(p, random=f"use N seeded normal samples instead (default {RANDOM_SAMPLES} "
                  "when --data is omitted; weights-only, not task-aware)")
    p.add_argument("--objective", choices=OBJECTIVES, default="output-aware",
                   help="gauss-newton (any model, default), labels, pseudo-label")
    p.add_argument("--directions", type=int, default=4, metavar="R",
                   help="random output directions per sample for gauss-newton (4)")
    p.add_argument("--batch-size", type=int, default=16, help="samples per pass (16)")
    p.add_argument("--energy-eps", type=float, default=ENERGY_EPS, metavar="E",
                   help="share of spectral energy the effective rank may leave out "
                   f"({ENERGY_EPS:g})")
    p.add_argument("--rel-tol", type=float, default=REL_TOL, metavar="T",
                   help=f"threshold rank counts σ_i > T·σ_1 ({REL_TOL:g})")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0, help="seed of directions and random data (0)")
    p.add_argument("--no-estimate", action="store_true",
                   help="skip the network estimate (it runs the surgery once)")
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # now default
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--matrices", action="store_true",
                   help="with --json: include Gram matrices and activation means")
    p.add_argument("--plot", metavar="OUT.png", help="also write spectra and max rates")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load model and data, analyse, print the table (or JSON), optionally plot."""
    from onnxprune.analysis import analyze  # imports torch: only when the command runs

    model, data = load_model_and_data(args)
    if args.progress:
        logging.getLogger("onnxprune.analysis").setLevel(logging.INFO)
    result = analyze(
        model, data, objective=args.objective, directions=args.directions,
        batch_size=args.batch_size, energy_eps=args.energy_eps, rel_tol=args.rel_tol,
        device=args.device, seed=args.seed, progress=args.progress,
        estimate=not args.no_estimate,
    )
    sys.stdout.write((result.to_json(matrices=args.matrices) if args.json else result.table())
                     + "\n")
    if args.plot:
        result.plot(args.plot)
    return 0
