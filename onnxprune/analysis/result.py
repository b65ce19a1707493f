"""The analysis result: per-group effective ranks, spectra and Grams, and a network estimate."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxprune.analysis.gram import ConsumerStats

STATUSES = {
    "ok": "rank read from the consumers' weight gradients",
    "data-limited": "the data cannot show a rank above 2·C: the rank is capped by the data",
    "taylor-fallback": "no weight-bearing consumer: rank from gate gradients",
    "no-signal": "every gradient of the group is zero on the data: no rank is claimed",
    "blocked": "not prunable (barrier)",
    "single-channel": "one channel: nothing to prune",
}
"""Every status a group can have, with its meaning."""


@dataclass(frozen=True)
class GroupAnalysis:
    """The analysis of one channel group.

    Attributes:
        id: group id (as in ``onnxprune inspect``).
        roots: the nodes producing the group's channels.
        channels: C, the group's size.
        status: one of :data:`STATUSES`.
        reason: the barrier (``blocked``) or what limited the analysis.
        mac_share: share of the model's MACs in nodes the group's channels index.
        rows: M, rows of the gradient matrix (samples × directions × rows per sample).
        capacity: upper bound of the rank the data can show (≤ rows).
        rank: effective rank by energy (``None`` when not analysed).
        rank_threshold: effective rank by relative threshold.
        max_rate: maximum compression rate 1 − rank / C.
        fallback: the Gram is the gate-gradient (Taylor) Gram, not the consumers'.
        singular_values: σ_i of the gradient matrix, descending.
        gram: K_g (C×C, float64).
        consumers: each consumer's Gram block, rows and input means.
        activation_mean: mean input activation of each channel over the consumers.
        taylor: mean |∂ℓ/∂m_c| per channel (first-order Taylor score).
        taylor_gram: Σ t tᵀ of the per-sample gate gradients (C×C).
        loss_scale: the group's loss scale measured by pruning it alone
            (``pruning/probe.py``); ``None``: the allocation estimates it.

    """

    id: int
    roots: tuple[str, ...]
    channels: int
    status: str
    reason: str = ""
    mac_share: float = 0.0
    rows: int = 0
    capacity: int = 0
    rank: int | None = None
    rank_threshold: int | None = None
    max_rate: float | None = None
    fallback: bool = False
    singular_values: np.ndarray | None = field(default=None, repr=False)
    gram: np.ndarray | None = field(default=None, repr=False)
    consumers: tuple[ConsumerStats, ...] = field(default=(), repr=False)
    activation_mean: np.ndarray | None = field(default=None, repr=False)
    taylor: np.ndarray | None = field(default=None, repr=False)
    taylor_gram: np.ndarray | None = field(default=None, repr=False)
    loss_scale: float | None = None

    @property
    def analysed(self) -> bool:
        """True when the group has a rank."""
        return self.rank is not None

    def to_dict(self, *, matrices: bool = False) -> dict[str, Any]:
        """JSON-ready form; the C×C matrices and means only with ``matrices``."""
        out: dict[str, Any] = {
            "id": self.id, "roots": list(self.roots), "channels": self.channels,
            "status": self.status, "reasons": [self.reason] if self.reason else [],
            "touched_macs_share": self.mac_share,
            "rows": self.rows, "capacity": self.capacity, "rank": self.rank,
            "rank_threshold": self.rank_threshold, "max_rate": self.max_rate,
            "fallback": self.fallback, "singular_values": _list(self.singular_values),
            "taylor": _list(self.taylor),
        }
        if matrices:
            out["gram"] = _list(self.gram)
            out["taylor_gram"] = _list(self.taylor_gram)
            out["activation_mean"] = _list(self.activation_mean)
            out["consumers"] = [
                {"node": c.node, "op": c.op, "tensor": c.tensor, "weight": c.weight,
                 "rows": c.rows, "capacity": c.capacity, "gram": _list(c.gram),
                 "mean": _list(c.mean)}
                for c in self.consumers
            ]
        return out


def _list(a: np.ndarray | None) -> Any:
    return None if a is None else np.asarray(a, dtype=np.float64).tolist()


@dataclass(frozen=True)
class NetworkEstimate:
    """Cost of the model if every analysed group shrank to its effective rank.

    ``error`` says why the estimate could not be computed (then ``*_after`` equal before).
    """

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    widths: dict[int, int] = field(default_factory=dict)
    error: str = ""

    def line(self) -> str:
        """One line for the report."""
        if self.error:
            return f"network estimate unavailable: {self.error}"
        return (
            f"network estimate at effective ranks: MACs {_si(self.macs_before)} -> "
            f"{_si(self.macs_after)} ({_kept(self.macs_after, self.macs_before)} kept), params "
            f"{_si(self.params_before)} -> {_si(self.params_after)} "
            f"({_kept(self.params_after, self.params_before)} kept)"
        )


def _si(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _kept(after: int, before: int) -> str:
    return f"{100 * after / before:.1f}%" if before else "100%"


@dataclass(frozen=True)
class AnalysisResult:
    """Effective filter analysis of a model.

    Attributes:
        groups: one entry per channel group of the model, in group order.
        estimate: the network estimate (``None`` when not asked for).
        objective: the objective used; ``directions`` its rows per sample.
        samples: number of samples analysed.
        energy_eps: ε of the energy rank; ``rel_tol`` τ of the threshold rank.
        probed: groups whose loss scale was measured (``pruning/probe.py``).

    """

    groups: tuple[GroupAnalysis, ...]
    estimate: NetworkEstimate | None
    objective: str
    directions: int
    samples: int
    energy_eps: float
    rel_tol: float
    probed: int = 0

    def group(self, gid: int) -> GroupAnalysis:
        """Return the analysis of group ``gid``."""
        return next(g for g in self.groups if g.id == gid)

    def table(self) -> str:
        """Aligned text table (group, channels, ranks, max rate, MACs touched, status)."""
        head = (f"{'group':>5} {'ch':>5} {'rank':>5} {'rank@τ':>6} {'max rate':>8} "
                f"{'touch%':>6} {'rows':>9}  {'status':<15} roots")
        lines = [head, "-" * len(head)]
        for g in self.groups:
            lines.append(_row(g))
        lines.append(
            f"{self.samples} samples, objective {self.objective}"
            + (f" ({self.directions} directions)" if self.objective == "gauss-newton" else "")
            + f", ε={self.energy_eps:g}, τ={self.rel_tol:g}"
        )
        lines.append("touch%: share of the MACs in nodes reading or writing the group's "
                     "channels (as in 'onnxprune inspect'; a node counts in two groups)")
        if self.estimate is not None:
            lines.append(self.estimate.line())
        return "\n".join(lines)

    def to_dict(self, *, matrices: bool = False) -> dict[str, Any]:
        """JSON-ready form; per-group matrices only with ``matrices``."""
        est = self.estimate
        return {
            "objective": self.objective, "directions": self.directions,
            "samples": self.samples, "energy_eps": self.energy_eps, "rel_tol": self.rel_tol,
            "groups": [g.to_dict(matrices=matrices) for g in self.groups],
            "estimate": None if est is None else {
                "macs_before": est.macs_before, "macs_after": est.macs_after,
                "params_before": est.params_before, "params_after": est.params_after,
                "widths": {str(k): v for k, v in est.widths.items()}, "error": est.error,
            },
        }

    def to_json(self, *, matrices: bool = False, indent: int | None = 2) -> str:
        """JSON text (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(matrices=matrices), indent=indent)

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Write normalised spectra and per-group max rates as an image (needs matplotlib)."""
        from onnxprune.analysis.plot import plot

        plot(self, path)


def _row(g: GroupAnalysis) -> str:
    def num(v: int | None) -> str:
        return "-" if v is None else str(v)

    rate = "-" if g.max_rate is None else f"{g.max_rate:.3f}"
    roots = ", ".join(g.roots[:2]) + (" …" if len(g.roots) > 2 else "")
    why = f"  [{g.reason}]" if g.reason and g.status != "ok" else ""
    return (f"{g.id:>5} {g.channels:>5} {num(g.rank):>5} {num(g.rank_threshold):>6} "
            f"{rate:>8} {100 * g.mac_share:>6.1f} {g.rows:>9}  {g.status:<15} {roots}{why}")
