"""What each pruned group of PP-OCR's angle classifier costs, alone and together.

Usage: python benchmarks/cls_groups.py [--target 0.5] [--eval 1000]

Prunes the default plan at ``--target`` MACs (label-free, 256 calibration lines), then each of
its groups alone (the same kept channels, with compensation and refinement), and prints the
angle agreement with the original on the evaluation lines and the MACs each group saves. Then
the same target without the groups that save under 0.5% of the MACs, on the default grid and
with ``round_to=1``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from cls_margin import probabilities, setup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", type=float, default=0.5)
    p.add_argument("--eval", type=int, default=1000)
    args = p.parse_args()

    import onnxprune
    from onnxprune.analysis import analyze
    from onnxprune.pruning import recovery
    from onnxprune.pruning.options import PruneOptions

    name = "ppocr_cls"
    model, cal, ev, p0 = setup(args.eval)
    a0 = p0.argmax(1)

    def agreement(m: bytes) -> float:
        return float(np.mean(probabilities(m, ev).argmax(1) == a0))

    an = analyze(model, cal, estimate=False)
    res = onnxprune.prune(model, data=cal, analysis=an, target_macs=args.target, seed=0)
    print(f"{name} at {args.target} MACs, {len(cal)} calibration lines, {len(a0)} evaluation lines")
    print(f"all groups: agreement {agreement(res.model.SerializeToString()):.3f}, MACs kept "
          f"{res.after.macs / res.before.macs:.3f}\n")
    print("| group | kept / size | effective rank | MACs saved | agreement alone |")
    print("|---|---|---|---|---|")
    opts = PruneOptions.of(None, target_macs=args.target).resolved(has_data=True)
    rank = {g.id: g.rank for g in an.groups}
    small = []
    for g in res.plan.groups:
        if len(g.keep) >= g.size:
            continue
        one = recovery.finish(model, replace(res.plan, groups=(g,)), opts, an, None, [], cal)
        saved = 1 - one.after.macs / one.before.macs
        if saved < 0.005:
            small.append(str(g.id))
        print(f"| {g.id} | {len(g.keep)} / {g.size} | {rank[g.id]} | {saved:.3f} | "
              f"{agreement(one.model.SerializeToString()):.3f} |", flush=True)
    print(f"\ngroups saving under 0.5% of the MACs: {', '.join(small)}\n")
    print("| exclude | round_to | agreement | MACs kept |")
    print("|---|---|---|---|")
    for ex in ((), tuple(small)):
        for rt in ("auto", 1):
            r = onnxprune.prune(model, data=cal, analysis=an, target_macs=args.target,
                                exclude=ex, round_to=rt, seed=0)
            print(f"| {', '.join(ex) or '-'} | {rt} | {agreement(r.model.SerializeToString()):.3f}"
                  f" | {r.after.macs / r.before.macs:.3f} |", flush=True)


if __name__ == "__main__":
    main()
