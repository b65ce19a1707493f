"""The CUDA kernels of a warm ``analyze`` run: the top ones by GPU time (torch profiler).

Usage: python tools/profile_cuda_kernels.py MODEL.onnx DATA.npz [--samples 2] [--rows 12]

Runs the analysis once on ``cuda`` to warm up (kernel loading, algorithm choice), then again
under the profiler, and prints the kernels sorted by their own CUDA time; the table's last line
is the total. Compare it with the wall time of ``tools/profile_analyze.py --device cuda`` to see
how much of the analysis is GPU arithmetic. Needs a CUDA device.
"""

from __future__ import annotations

import argparse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--rows", type=int, default=12)
    args = p.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    import onnxprune.analysis as A
    from onnxprune.loading import load_with_data

    if not torch.cuda.is_available():
        raise SystemExit("profile_cuda_kernels: needs a CUDA device")
    model, data = load_with_data(args.model, args.data, samples=args.samples)
    A.analyze(model, data, estimate=False, device="cuda")  # warm
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        A.analyze(model, data, estimate=False, device="cuda")
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=args.rows,
                                    max_name_column_width=60))


if __name__ == "__main__":
    main()
