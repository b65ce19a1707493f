"""Test accuracy of the default pipeline (no training) on the bundled digits models.

    python benchmarks/digits_default.py [--energy-power A]

For each model and MACs target: `onnxprune.prune(model, target_macs=t, data=calib)` with the
default latency-friendly widths (`round_to="auto"`) and with exact-MACs widths (`round_to=1`),
evaluated on the 540 held-out test digits. Deterministic (no timing). ``--energy-power``
passes the allocation's currency option (default: the package default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import onnxprune
from onnxprune.testing.oracle import run

MODELS = Path(__file__).resolve().parents[1] / "models"


def accuracy(proto, test) -> float:  # type: ignore[no-untyped-def]
    (y,) = run(proto, {"input": test["input"]})
    return float((y.argmax(1) == test["labels"]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--energy-power", type=float, default=None, metavar="A")
    args = ap.parse_args()
    extra = {} if args.energy_power is None else {"energy_power": args.energy_power}
    test = np.load(MODELS / "digits_test.npz")
    print("| model (original) | MACs target | round-to auto: acc (MACs kept) | round-to 1 |")
    print("|---|---|---|---|")
    for name in ("digits_resnet", "digits_cnn"):
        path = MODELS / f"{name}.onnx"
        base = accuracy(onnxprune.load(path).proto, test)
        for target in (0.5, 0.3):
            cells = []
            for round_to in ("auto", 1):
                r = onnxprune.prune(path, target_macs=target, data=MODELS / "digits_calib.npz",
                                    round_to=round_to, **extra)
                kept = r.after.macs / r.before.macs
                cells.append(f"{accuracy(r.model, test):.4f} ({kept:.3f})")
            print(f"| {name} ({base:.4f}) | {target} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
