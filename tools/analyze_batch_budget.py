"""Time ``analyze`` on the CPU under a given activation budget (the batch it allows).

Usage: python tools/analyze_batch_budget.py MODEL.onnx DATA.npz BUDGET_MIB SAMPLES [--threads 2]

One budget per process, so that the peak RSS printed is that budget's.
"""

from __future__ import annotations

import argparse
import resource
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("budget_mib", type=int)
    p.add_argument("samples", type=int)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    import onnxprune.analysis as A
    from onnxprune.loading import load_with_data

    torch.set_num_threads(args.threads)
    model, data = load_with_data(args.model, args.data, samples=args.samples)
    A.ACTIVATION_BUDGET = args.budget_mib << 20
    batch = A._batching(model, data, 16)[0]
    t = time.perf_counter()
    A.analyze(model, data, estimate=False)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    print(f"{args.model.split('/')[-1]} budget {args.budget_mib} MiB batch {batch}: "
          f"{wall:.1f}s, peak RSS {rss} MiB", flush=True)


if __name__ == "__main__":
    main()
