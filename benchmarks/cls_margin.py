"""Where the PP-OCR angle classifier's pruned decisions part from the original's: agreement by
the original's confidence (margin |p_180 - p_0|) on the real-task evaluation lines.

Usage: python benchmarks/cls_margin.py [--targets 0.7 0.5] [--eval 1000]

Label-free default pipeline (256 calibration lines), onnxruntime CPU, batch 1.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

BINS = ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.01))


def probabilities(model: bytes | str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def setup(n_eval: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """PP-OCR cls as loaded for pruning, its calibration Dataset, the evaluation lines and the
    original's probabilities on them."""
    import onnxprune
    from onnxprune.data import Dataset
    from onnxprune.testing import realdata

    path = realdata.model_path("ppocr_cls")
    spec = realdata.SPECS["ppocr_cls"]
    model = onnxprune.load(path, input_shapes={spec.input_name: (1, *spec.shape)})
    calib = Dataset(inputs=realdata.load("ppocr_cls", "calib", None, seed=0).feeds())
    ev = realdata.load("ppocr_cls", "eval", n_eval, seed=0).x
    return model, calib, ev, probabilities(str(path), ev)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", nargs="+", type=float, default=[0.7, 0.5])
    p.add_argument("--eval", type=int, default=1000)
    args = p.parse_args()

    import onnxprune

    model, calib, ev, p0 = setup(args.eval)
    a0, margin = p0.argmax(1), np.abs(p0[:, 1] - p0[:, 0])
    print(f"ppocr_cls, {len(calib)} calibration lines, {len(ev)} evaluation lines")
    print("| MACs kept | original's margin | lines | agreement | mean abs change of p_180 |")
    print("|---|---|---|---|---|")
    for t in args.targets:
        res = onnxprune.prune(model, target_macs=t, data=calib, seed=0)
        p1 = probabilities(res.model.SerializeToString(), ev)
        a1 = p1.argmax(1)
        print(f"| {t} | all | {len(a0)} | {np.mean(a0 == a1):.3f} | "
              f"{np.mean(np.abs(p0[:, 1] - p1[:, 1])):.3f} |")
        for lo, hi in BINS:
            k = (margin >= lo) & (margin < hi)
            if k.any():
                agree = np.mean(a0[k] == a1[k])
                print(f"| {t} | [{lo}, {min(hi, 1.0)}) | {k.sum()} | {agree:.3f} | "
                      f"{np.mean(np.abs(p0[k, 1] - p1[k, 1])):.3f} |")


if __name__ == "__main__":
    main()
