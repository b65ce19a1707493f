"""Run ``onnxprune prune ARGS`` in this process and print the peak RSS of each step.

Usage: python tools/measure_prune_stages.py MODEL.onnx -o OUT.onnx --ratio 0.3 [prune options]

A thread samples VmRSS every 5 ms and charges it to the innermost step running (load, prune,
surgery, export, verification and its onnxruntime run, the speed check's preparations, the
speed check, write); each line gives the step's peak in GiB and as a multiple of the model's
size on disk (with its ``.data`` file). Steps are found by wrapping functions of onnxprune by
name, so the list follows the code of this checkout.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

STACK = ["outside"]
PEAKS: dict[str, int] = {}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sample() -> None:
    while True:
        label = "/".join(STACK)
        PEAKS[label] = max(PEAKS.get(label, 0), _rss())
        time.sleep(0.005)


def _wrap(owner: Any, name: str, label: str | None = None) -> None:
    f: Callable[..., Any] | None = getattr(owner, name, None)
    if f is None:  # not in this version of the code
        return

    @functools.wraps(f)
    def step(*args: Any, **kwargs: Any) -> Any:
        STACK.append(label or name)
        try:
            return f(*args, **kwargs)
        finally:
            STACK.pop()

    setattr(owner, name, step)


def main(argv: list[str]) -> int:
    import onnxprune.bench.runtime as runtime
    import onnxprune.commands.prune as command
    import onnxprune.ir.graph as graph
    import onnxprune.surgery as surgery
    import onnxprune.verify as verify
    from onnxprune.cli import main as cli

    for owner, name, label in [
        (command, "load_model_and_data", "load"), (command, "prune", None),
        (command, "_reopenable", None), (command, "_parked", None),
        (command, "speed_check", None), (command, "write", None),
        (surgery, "_surgery", "surgery"), (graph, "_export_lean", "export"),
        (surgery, "verify", None), (surgery, "verify_saved", None),
        (verify, "_run", "onnxruntime run"), (runtime, "_session_via_file", "session via file"),
    ]:
        _wrap(owner, name, label)
    threading.Thread(target=_sample, daemon=True).start()
    code = cli(["prune", *argv])
    time.sleep(0.05)
    model = argv[0]
    size = sum(os.path.getsize(p) for p in (model, model + ".data") if os.path.exists(p))
    for label, peak in PEAKS.items():
        print(f"{peak / 2**30:7.2f} GiB {peak / size:5.2f}x  {label}")
    print(f"process peak (ru_maxrss): {_maxrss() / size:.2f}x the model; exit {code}")
    return code


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
