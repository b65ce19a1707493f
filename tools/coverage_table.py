"""Print the coverage table: share of MACs in prunable groups per architecture and real model.

    python tools/coverage_table.py [--real] [--cache DIR]

Exports every test architecture and transformer with both exporters (into --cache, default a
temp dir), and with --real also runs on the models from tools/fetch_models.py. For each:
prunable groups, share of MACs in prunable groups, the exactness error of a 30% plan against
the zeroed-channel oracle, and the distinct barrier reasons.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

import onnxprune
from onnxprune import ir
from onnxprune.surgery import apply_plan
from onnxprune.testing import ARCHS, EXPORTERS, exported_path, oracle
from onnxprune.testing.transformers import TRANSFORMERS, export_transformer


def row(
    label: str, model: onnxprune.Model, floor: float, feeds: dict[str, np.ndarray] | None = None
) -> list[str]:
    report = onnxprune.inspect(model)
    plan = oracle.every_other_plan(model, share=0.3, seed=1)
    feeds = feeds if feeds is not None else oracle.random_feeds(model, seed=2)
    pruned = apply_plan(model, plan)
    err = oracle.max_rel_error(
        oracle.run(pruned, feeds), oracle.run(oracle.zeroed(model, plan), feeds), floor=floor
    )
    n_ok = sum(g.prunable for g in report.groups)
    print(f"| {label} | {n_ok}/{len(report.groups)} | {100 * report.prunable_share:.1f}% | {err:.1e} |")
    reasons = Counter(
        r.split(": ", 1)[-1] if "no channel rule" not in r else r
        for g in report.groups if not g.prunable for r in g.reasons[:1]
    )
    return [f"{label}: {n}x {r}" for r, n in reasons.items()]


def main() -> int:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="onnxprune-cov-"))
    print("| model | prunable groups | MACs in prunable groups | exactness (30% plan) |")
    print("|---|---|---|---|")
    notes: list[str] = []
    for name in ARCHS:
        for exporter in EXPORTERS:
            model = onnxprune.load(exported_path(name, exporter, cache))
            notes += row(f"{name} ({exporter})", model, 1e-6)
    for name, spec in TRANSFORMERS.items():
        for exporter in EXPORTERS:
            model = onnxprune.load(export_transformer(name, exporter, cache))
            notes += row(f"{name} ({exporter})", model, 1e-6, spec.example(seed=2))
    if args.real:
        out = subprocess.run([sys.executable, "tools/fetch_models.py", "--json"],
                             capture_output=True, text=True, check=True)
        for rec in json.loads(out.stdout):
            shapes = ir.parse_input_shapes(rec["input_shapes"])
            notes += row(rec["name"], onnxprune.load(rec["path"], input_shapes=shapes), 1.0)
    print("\nBarriers (first reason per blocked group):")
    for n in notes:
        print("-", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
