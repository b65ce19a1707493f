"""Landing on a latency target: re-aim the table's prediction at what was measured.

The latency table predicts well what scales with the widths and less well what does not
(per-op dispatch, reorders, memory traffic the micro-benchmarks miss), and a shared machine
adds noise. So ``--target-latency`` closes the loop: after each prune the real original vs
pruned latency is measured (interleaved); while it misses the target by more than
:data:`LAND`, the allocation is re-run aiming the *predicted* latency elsewhere: first
proportionally (``goal * target / measured``), then by the secant through the last two
(predicted, measured) pairs. At most :data:`CORRECTIONS` re-runs; the closest result wins.
"""

from __future__ import annotations

from onnxprune.bench.speed import SpeedCheck

LAND = 0.04
"""Relative miss (of the target) accepted without re-aiming."""
CORRECTIONS = 2
LOWEST = 0.02


class Aim:
    """The sequence of predicted-latency goals for one latency target."""

    def __init__(self, target: float, corrections: int = CORRECTIONS) -> None:
        self.target = target
        self.corrections = corrections
        self.tried: list[tuple[float, float]] = []  # (predicted, measured) latency kept

    def next(self) -> float | None:
        """Return the next goal for the allocation, or None when done."""
        if not self.tried:
            return self.target
        if len(self.tried) > self.corrections or self.landed(self.tried[-1][1]):
            return None
        p, m = self.tried[-1]
        goal = p * self.target / m if m > 0 else p
        if len(self.tried) >= 2:
            p0, m0 = self.tried[-2]
            if abs(m - m0) > 1e-3 and abs(p - p0) > 1e-3:
                goal = p + (self.target - m) * (p - p0) / (m - m0)
        goal = min(max(goal, LOWEST), 0.999)
        if any(abs(goal - q) < 1e-3 for q, _ in self.tried):
            return None  # nothing new to try
        return goal

    def measured(self, predicted: float, measured: float) -> None:
        """Record the allocation's predicted and the measured latency kept."""
        self.tried.append((predicted, measured))

    def landed(self, measured: float) -> bool:
        """Return whether ``measured`` is within :data:`LAND` of the target."""
        return abs(measured - self.target) <= LAND * self.target

    def closer(self, a: float, b: float) -> bool:
        """Return whether measured ``a`` is closer to the target than ``b``."""
        return abs(a - self.target) < abs(b - self.target)

    def lines(self, final: SpeedCheck) -> list[str]:
        """Return the report lines: every try, and the result kept."""
        tries = "; ".join(f"predicted {p:.3f} -> measured {m:.3f}" for p, m in self.tried)
        pred = next(p for p, m in self.tried if abs(m - final.ratio) < 1e-12)
        return [
            f"latency kept: predicted {pred:.3f}, measured {final.ratio:.3f} (target "
            f"{self.target:.3f}; p50 {final.original_ms:.3f} -> {final.pruned_ms:.3f} ms, "
            f"interleaved, {final.threads} thread(s))",
            *([f"latency target re-aimed at the measurements: {tries}"]
              if len(self.tried) > 1 else []),
        ]
