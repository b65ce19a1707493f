"""Where ``analyze``'s time goes: CPU seconds per stage (self time; a nested stage is charged to
the inner one), for one model and its calibration data (its dynamic input dims are read from the
data, as the CLI does). With ``--device cuda`` the stages are wall seconds, the GPU synchronised
at each stage boundary (CPU time would miss the work queued on the GPU).

Stages: the shim's forward passes (the calibration pass of the output scales runs without
gradients, the analysis pass with them; timed apart), the backward passes (one per direction), the
consumer hooks, the Taylor hooks, the per-position Grams (``close_batch``), the Gram sums,
handing freed memory back to the OS (``trim_heap``), the spectra and summary; ``other`` is
what no stage claims. ``--no-trim`` skips handing memory back (faster, larger peak RSS).

Usage::

    python tools/profile_analyze.py MODEL.onnx DATA.npz [--samples 16] [--threads 1]
        [--objective output-aware] [--no-trim] [--device cuda]

``--samples N`` repeats the calibration samples cyclically when the file holds fewer.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import resource
import time
from collections.abc import Callable
from typing import Any


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--objective", default="output-aware")
    p.add_argument("--no-trim", action="store_true", help="never hand freed memory back")
    p.add_argument("--device", default="cpu", help="torch device of the analysis (cpu, cuda)")
    args = p.parse_args()

    import numpy as np
    import torch

    import onnxprune.analysis as A
    from onnxprune.data import Dataset
    from onnxprune.loading import load_with_data

    torch.set_num_threads(args.threads)
    collect = importlib.import_module("onnxprune.analysis.collect")
    gram = importlib.import_module("onnxprune.analysis.gram")
    gramsum = importlib.import_module("onnxprune.analysis.gramsum")
    taylor = importlib.import_module("onnxprune.analysis.taylor")
    spent: collections.Counter[str] = collections.Counter()
    stack: list[list[Any]] = []

    gpu = torch.device(args.device).type == "cuda"

    def clock() -> float:
        if not gpu:
            return time.process_time()
        torch.cuda.synchronize()
        return time.perf_counter()

    def enter(name: str) -> None:
        now = clock()
        if stack:
            spent[stack[-1][0]] += now - stack[-1][1]
        stack.append([name, now])

    def leave() -> None:
        now = clock()
        name, t0 = stack.pop()
        spent[name] += now - t0
        if stack:
            stack[-1][1] = now

    def wrap(owner: Any, attr: str, name: str) -> None:
        f: Callable[..., Any] = getattr(owner, attr)

        def timed(*a: Any, **k: Any) -> Any:
            enter(name if name != "forward" else
                  "forward, with gradients" if torch.is_grad_enabled() else
                  "forward, without (output scales)")
            try:
                return f(*a, **k)
            finally:
                leave()

        setattr(owner, attr, timed)

    if args.no_trim:
        collect.trim_heap = lambda: None
    wrap(collect.Shim, "__call__", "forward")
    wrap(torch.autograd, "backward", "backward")
    wrap(torch.autograd, "grad", "backward")
    wrap(collect._Hook, "__call__", "hooks: other")
    wrap(gram.ConsumerAccumulator, "add_gradient", "hooks: consumer per direction")
    wrap(gram.ConsumerAccumulator, "close_batch", "close_batch (positions Gram)")
    wrap(taylor.TaylorAccumulator, "add_root", "hooks: taylor")
    wrap(gramsum.GramSum, "add", "Gram sums")
    wrap(collect, "trim_heap", "trim_heap")
    wrap(A, "summarise", "spectra and summary")
    wrap(A, "group_specs", "specs")
    wrap(A, "Shim", "shim build")
    wrap(A, "output_measures", "output scales (besides its forward)")

    model, data = load_with_data(args.model, args.data)
    assert data is not None
    have = len(data)
    data = Dataset({k: np.concatenate([v] * -(-args.samples // have))[:args.samples]
                    for k, v in data.inputs.items()}, None, data.source)
    enter("other")
    t0, w0 = clock(), time.perf_counter()
    A.analyze(model, data, objective=args.objective, estimate=False, device=args.device)
    leave()
    total, wall = clock() - t0, time.perf_counter() - w0
    n = args.samples
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    unit = "wall (GPU synchronised)" if gpu else "CPU"
    print(f"{args.model}: {n} samples, {args.threads} thread(s), {args.objective}, "
          f"{args.device}: {total:.2f} s {unit}, {wall:.2f} s wall, peak RSS {rss:.0f} MiB; "
          f"load {tuple(round(x, 2) for x in os.getloadavg())}")
    print(f"{'stage':36s} {'wall s' if gpu else 'CPU s':>8s} {'share':>6s} {'ms/sample':>10s}")
    for k, v in spent.most_common():
        print(f"{k:36s} {v:8.2f} {100 * v / total:5.1f}% {v / n * 1000:10.0f}")


if __name__ == "__main__":
    main()
