"""The speed check after a prune: original vs pruned latency, interleaved, in a second or two.

``prune`` runs it before writing (DESIGN.md §2.4: the result is always measured against the
original), prints the speed-up, says loudly when the pruned model is slower and, with
``--min-speedup``, refuses to write below it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxprune import ir
from onnxprune.bench.runtime import make_session

SECONDS = 1.5
"""Time budget of the timed runs (both models together), after the warm-up."""
MIN_PAIRS = 5
MAX_PAIRS = 200
WARMUP = 2


EFFICIENT = 0.8
"""Efficiency (speed-up x MACs kept) below which ``prune`` says where the rest of the time is."""


@dataclass(frozen=True)
class SpeedCheck:
    """p50 latency of the original and the pruned model, measured interleaved.

    ``paired`` is the median over the interleaved pairs of pruned/original: on a loaded
    machine a preemption hits one run of a pair, and the median of the pair ratios shrugs it
    off where the ratio of the two p50s can be moved by it.
    """

    original_ms: float
    pruned_ms: float
    pairs: int
    threads: int
    provider: str
    paired: float | None = None

    @property
    def ratio(self) -> float:
        """Latency kept: the median pair ratio (or pruned p50 / original p50)."""
        if self.paired is not None:
            return self.paired
        return self.pruned_ms / self.original_ms if self.original_ms > 0 else 1.0

    @property
    def speedup(self) -> float:
        """1 / :attr:`ratio` (above 1: the pruned model is faster)."""
        return 1.0 / self.ratio if self.ratio > 0 else float("inf")

    def line(self, macs_kept: float | None = None) -> str:
        """One line: speed-up, both p50s, and the efficiency when the MACs kept are given."""
        eff = "" if macs_kept is None else (
            f", efficiency {self.speedup * macs_kept:.2f} of the arithmetic limit "
            f"{1 / macs_kept:.2f}x")
        return (f"speed-up {self.speedup:.2f}x (p50 {self.original_ms:.3f} ms -> "
                f"{self.pruned_ms:.3f} ms, {self.provider}, {self.threads} thread(s), "
                f"{self.pairs} interleaved runs{eff})")

    def hint(self, macs_kept: float | None) -> str | None:
        """Return a plain line when a faster model gained much less than its MACs, else None."""
        if macs_kept is None or not 0 < macs_kept < 1 or self.speedup < 1.0:
            return None
        efficiency = self.speedup * macs_kept
        if efficiency >= EFFICIENT:
            return None
        return (f"latency fell less than the MACs (efficiency {efficiency:.2f}): work that "
                "does not shrink with the channels (per-run and per-op overhead, softmax, "
                "concat/split, elementwise ops, narrow layers on the channel grid) keeps its "
                "time. To ask for a speed, prune with --target-latency F; 'onnxprune bench "
                "ORIGINAL PRUNED --per-node 20' shows which nodes did not get faster")

    def warning(self, round_to: int | str) -> str | None:
        """Return the loud line when the pruned model is slower than the original, else None."""
        if self.speedup >= 1.0:
            return None
        fix = ("prune again with the default --round-to auto (latency-friendly widths) or "
               "--target-latency F" if round_to == 1 else
               "prune with --target-latency F (spends a measured latency table), a milder "
               "target, or --min-speedup 1.0 to refuse such a model")
        return (f"WARNING: the pruned model is SLOWER than the original ({self.speedup:.2f}x, "
                f"p50 {self.original_ms:.3f} -> {self.pruned_ms:.3f} ms); to fix this, {fix}")


def random_feeds(model: ir.ModelProto, input_shapes: Mapping[str, Sequence[int]],
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for timing: normal floats, zeros for integer inputs."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in ir.io_specs(model):
        shape = tuple(input_shapes.get(spec.name, ()))
        dtype = np.dtype(spec.dtype)
        out[spec.name] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                          else np.zeros(shape, dtype))
    return out


def speed_check(
    original: ir.ModelProto | str | Path,
    pruned: ir.ModelProto | str | Path,
    input_shapes: Mapping[str, Sequence[int]],
    *,
    threads: int = 1,
    provider: str = "cpu",
    optimization: str = "all",
    seconds: float = SECONDS,
) -> SpeedCheck:
    """Time ``original`` and ``pruned`` alternately (A, B, A, B, ...) and return their p50s.

    Runs at least ``MIN_PAIRS`` and at most ``MAX_PAIRS`` pairs, stopping once ``seconds``
    have passed. Either model may be given as a file (onnxruntime opens it without a
    serialised copy of its weights); the feeds follow ``pruned``'s inputs, which verification
    made the original's.

    Raises:
        InputError: onnxruntime cannot load or run a model.

    """
    io = pruned if isinstance(pruned, ir.ModelProto) else ir.load_model(pruned, weights=False)
    feeds = random_feeds(io, input_shapes)
    sessions = [make_session(m, threads=threads, optimization=optimization, provider=provider)
                for m in (original, pruned)]
    for _ in range(WARMUP):
        for s in sessions:
            s.run(None, feeds)
    times: list[list[float]] = [[], []]
    start = time.perf_counter()
    while len(times[0]) < MAX_PAIRS and (
            len(times[0]) < MIN_PAIRS or time.perf_counter() - start < seconds):
        for k, s in enumerate(sessions):
            t0 = time.perf_counter()
            s.run(None, feeds)
            times[k].append((time.perf_counter() - t0) * 1e3)
    p50 = [float(np.median(t)) for t in times]
    paired = float(np.median(np.array(times[1]) / np.array(times[0])))
    return SpeedCheck(p50[0], p50[1], len(times[0]), threads, provider, paired)
