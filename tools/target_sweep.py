"""Prune every test architecture (both exporters) and every fetched real model to a MACs target.

Prints, per model, the MACs kept against the target, the method and the time, and fails
(exit 1) if any result misses the target by more than ``--tolerance`` without a clear reason.

Usage: python tools/target_sweep.py [--target 0.7] [--samples 4] [--real] [--archs a b]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=float, default=0.7)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--real", action="store_true", help="also the fetched real models")
    ap.add_argument("--archs", nargs="*", help="only these architectures")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import onnxprune
    from onnxprune import ir
    from onnxprune.data import load_data
    from onnxprune.errors import OnnxPruneError
    from onnxprune.testing import ARCHS, EXPORTERS
    from onnxprune.testing.export import exported_path

    cases = []
    cache = Path(tempfile.gettempdir()) / "onnxprune-archs"
    cache.mkdir(exist_ok=True)
    for name in args.archs or list(ARCHS):
        for exporter in EXPORTERS:
            cases.append((f"{name}/{exporter}", exported_path(name, exporter, cache), None, None))
    if args.real:
        out = subprocess.run([sys.executable, str(ROOT / "tools" / "fetch_models.py"), "--json"],
                             capture_output=True, text=True, check=True)
        for rec in json.loads(out.stdout):
            shapes = ir.parse_input_shapes(rec["input_shapes"])
            cases.append((rec["name"], Path(rec["path"]), shapes, rec.get("calib")))
    bad = 0
    print(f"{'model':<28}{'target':>7}{'kept':>7}{'miss':>7}{'time s':>8}  note")
    for label, path, shapes, calib in cases:
        t0 = time.perf_counter()
        model = onnxprune.load(path, input_shapes=shapes)
        specs = ir.io_specs(model.proto)
        if calib:
            data = load_data(calib, specs, model.input_shapes, limit=args.samples)
        else:
            data = load_data(None, specs, model.input_shapes, random_samples=args.samples)
        try:
            res = onnxprune.prune(model, target_macs=args.target, data=data)
        except OnnxPruneError as e:
            print(f"{label:<28}{args.target:>7.2f}{'-':>7}{'-':>7}{time.perf_counter() - t0:>8.1f}"
                  f"  {type(e).__name__}: {e}")
            bad += not isinstance(e, onnxprune.CannotPruneError)
            continue
        kept = res.after.macs / res.before.macs
        miss = kept - args.target
        bad += abs(miss) > args.tolerance
        past = len(res.allocation.past_rank) if res.allocation else 0
        print(f"{label:<28}{args.target:>7.2f}{kept:>7.3f}{miss:>+7.3f}"
              f"{time.perf_counter() - t0:>8.1f}  {past} group(s) past max rate")
    print(f"{bad} case(s) failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
