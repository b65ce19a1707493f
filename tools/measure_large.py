"""Run inspect / prune --ratio / bench on a large model in subprocesses; print wall time and peak RSS.

Usage: python tools/measure_large.py MODEL.onnx [--ratio 0.3] [--iterations 3] [--keep]

Each command runs as ``python -m onnxprune.cli ...`` in its own process; its peak resident
memory is read from ``wait4`` (the child's ``ru_maxrss``). The pruned model is written next to
the input (``<stem>.pruned.onnx``, plus ``.data`` when over 2 GB) and removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def weights_bytes(model: Path) -> int:
    data = model.with_name(model.name + ".data")
    return model.stat().st_size + (data.stat().st_size if data.exists() else 0)


def measure(argv: list[str]) -> tuple[int, float, float, str]:
    """Run ``onnxprune ARGV``; return exit code, wall seconds, peak RSS (GB), stderr tail."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "onnxprune.cli", *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_maxrss / 2**20, err.strip()[-300:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--iterations", type=int, default=3, help="bench timed runs")
    parser.add_argument("--keep", action="store_true", help="keep the pruned model")
    args = parser.parse_args(argv)
    model: Path = args.model
    pruned = model.with_name(model.stem + ".pruned.onnx")
    size = weights_bytes(model)
    print(f"model {model}: {size / 2**30:.2f} GiB on disk")
    runs = {
        "inspect": ["inspect", str(model)],
        f"prune --ratio {args.ratio}": ["prune", str(model), "-o", str(pruned),
                                        "--ratio", str(args.ratio)],
        "bench": ["bench", str(model), str(pruned), "--warmup", "1",
                  "--iterations", str(args.iterations)],
    }
    print(f"{'command':<20}{'exit':>5}{'wall s':>9}{'peak RSS GiB':>14}{'RSS / model':>13}")
    failed = 0
    try:
        for name, cmd in runs.items():
            code, wall, rss, err = measure(cmd)
            failed += code != 0
            print(f"{name:<20}{code:>5}{wall:>9.1f}{rss:>14.2f}{rss * 2**30 / size:>13.2f}",
                  flush=True)
            if code:
                print(f"  stderr: {err}")
        if pruned.exists():
            print(f"pruned model: {weights_bytes(pruned) / 2**30:.2f} GiB on disk")
    finally:
        if not args.keep:
            for p in (pruned, pruned.with_name(pruned.name + ".data")):
                p.unlink(missing_ok=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
