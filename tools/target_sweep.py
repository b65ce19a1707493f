"""Prune every test architecture (both exporters) and every fetched real model to MACs targets.

Prints, per model and target, the MACs kept against the target, the fidelity gate's drop and
the time, and fails (exit 1) if any case misses its target by more than ``--tolerance`` or
cannot reach it at all ("target cannot be reached" is a failure, not a pass). The fidelity
gate is reported, not enforced (a random-data sweep is about the targets).

Usage: python tools/target_sweep.py [--targets 0.7 0.5 0.3] [--samples 4] [--real] [--archs a b]
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
    ap.add_argument("--targets", type=float, nargs="+", default=[0.7, 0.5, 0.3])
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
    print(f"{'model':<28}{'target':>7}{'kept':>7}{'miss':>7}{'drop':>7}{'time s':>8}  note")
    for label, path, shapes, calib in cases:
        model = onnxprune.load(path, input_shapes=shapes)
        specs = ir.io_specs(model.proto)
        if calib:
            data = load_data(calib, specs, model.input_shapes, limit=args.samples)
        else:
            data = load_data(None, specs, model.input_shapes, random_samples=args.samples)
        from onnxprune.analysis import analyze

        analysis = analyze(model, data, estimate=False)  # once per model, shared by targets
        for target in args.targets:
            t0 = time.perf_counter()
            try:
                res = onnxprune.prune(model, target_macs=target, data=data, analysis=analysis)
            except OnnxPruneError as e:
                # Every failure counts, "cannot be reached" included: the claim is that the
                # targets are met on every model.
                print(f"{label:<28}{target:>7.2f}{'-':>7}{'-':>7}{'-':>7}"
                      f"{time.perf_counter() - t0:>8.1f}  FAIL {type(e).__name__}: {e}")
                bad += 1
                continue
            kept = res.after.macs / res.before.macs
            miss = kept - target
            missed = abs(miss) > args.tolerance
            bad += missed
            past = len(res.allocation.past_rank) if res.allocation else 0
            drop = f"{res.check.drop:.3f}" if res.check is not None else "-"
            print(f"{label:<28}{target:>7.2f}{kept:>7.3f}{miss:>+7.3f}{drop:>7}"
                  f"{time.perf_counter() - t0:>8.1f}  {'FAIL missed; ' if missed else ''}"
                  f"{past} group(s) past max rate")
    print(f"{bad} case(s) failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
