"""The bench report: per-model cost, latency, fidelity and settings; table, Markdown and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from onnxprune.bench.compare import FidelityReport
from onnxprune.bench.runtime import Latency


@dataclass(frozen=True)
class ModelStats:
    """Cost of one model: parameters, MACs per sample, serialised size, session peak memory."""

    path: str
    params: int
    macs: int
    size_bytes: int
    peak_memory_bytes: int | None
    accuracy: float | None


@dataclass(frozen=True)
class BenchSettings:
    """How the numbers were taken."""

    threads: int
    optimization: str
    provider: str
    warmup: int
    iterations: int
    data: str
    samples: int
    input_shapes: Mapping[str, tuple[int, ...]]
    memory_method: str


@dataclass(frozen=True)
class BenchReport:
    """Side-by-side numbers of the original and (optionally) the pruned model."""

    models: tuple[ModelStats, ...]
    latency: tuple[Latency, ...]
    fidelity: FidelityReport | None
    settings: BenchSettings

    def to_dict(self) -> dict[str, object]:
        """Return the report as plain JSON-compatible data (with ``speedup`` when compared)."""
        data = asdict(self)
        if len(self.models) == 2:
            data["speedup"] = [{"batch": lat.batch, "speedup": s, "efficiency": e}
                               for lat, (s, e) in zip(self.latency, self.speedups(),
                                                      strict=True)]
        return data

    def speedups(self) -> list[tuple[float, float]]:
        """Per batch size: (speed-up, efficiency) of the pruned model (two models only).

        Speed-up is p50 original / p50 pruned; efficiency is the speed-up over its arithmetic
        limit (1 / MACs kept), i.e. speed-up x MACs kept: 1.0 when latency falls exactly like
        the MACs.
        """
        a, b = self.models
        kept = b.macs / a.macs if a.macs else 1.0
        out = []
        for lat in self.latency:
            s = lat.p50_ms[0] / lat.p50_ms[1] if lat.p50_ms[1] > 0 else float("inf")
            out.append((s, s * kept))
        return out

    def to_json(self) -> str:
        """Return the report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """Return an aligned text table: metric, original, [pruned, ratio pruned/original]."""
        header, rows, note = _rows(self)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in [header, *rows]
        ]
        return "\n".join([*lines, note])

    def markdown(self) -> str:
        """Return the report as a Markdown table followed by the settings line."""
        header, rows, note = _rows(self)
        lines = ["| " + " | ".join(r) + " |" for r in [header, *rows]]
        lines.insert(1, "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        return "\n".join([*lines, "", note])


def si(x: float, unit: str = "") -> str:
    """Format ``x`` with three significant digits and an SI prefix (K, M, G, T)."""
    for prefix in ("", "K", "M", "G", "T"):
        if abs(x) < 1000 or prefix == "T":
            return f"{x:.3g} {prefix}{unit}".rstrip()
        x /= 1000
    return str(x)  # unreachable


def _rows(report: BenchReport) -> tuple[list[str], list[list[str]], str]:
    two = len(report.models) == 2
    header = ["metric", "original", "pruned", "ratio"] if two else ["metric", "model"]

    def row(
        label: str, values: Sequence[float | None], fmt: Callable[[float], str], ratio: bool = True
    ) -> list[str]:
        cells = [label] + ["n/a" if v is None else fmt(v) for v in values]
        if not two:
            return cells
        a, b = values
        return cells + [f"{b / a:.3f}" if ratio and a and b is not None else ""]

    models = report.models
    rows = [
        row("params", [m.params for m in models], lambda v: f"{int(v):,}"),
        row("MACs / sample", [m.macs for m in models], si),
        row("size", [m.size_bytes for m in models], lambda v: si(v, "B")),
        row("peak memory", [m.peak_memory_bytes for m in models], lambda v: si(v, "B")),
    ]
    speed = report.speedups() if two else [None] * len(report.latency)
    for lat, sp in zip(report.latency, speed, strict=True):
        rows.append(row(f"p50 latency b={lat.batch}", list(lat.p50_ms), lambda v: f"{v:.3f} ms"))
        rows.append(row(f"p90 latency b={lat.batch}", list(lat.p90_ms), lambda v: f"{v:.3f} ms"))
        if lat.batch > 1:
            rows.append(
                row(f"throughput b={lat.batch}", list(lat.throughput), lambda v: f"{v:,.1f}/s")
            )
        if sp is not None:
            rows.append([f"speed-up b={lat.batch}", "", f"{sp[0]:.3f}x", ""])
            rows.append([f"efficiency b={lat.batch}", "", f"{sp[1]:.3f}", ""])
    if any(m.accuracy is not None for m in models):
        rows.append(row("accuracy", [m.accuracy for m in models], lambda v: f"{v:.4f}", False))
    rows += _fidelity_rows(report.fidelity)
    return header, rows, _note(report.settings, two)


def _fidelity_rows(fid: FidelityReport | None) -> list[list[str]]:
    rows = []
    for o in fid.outputs if fid else ():
        rows.append([f"cosine {o.name} (mean/min)", "", f"{o.cosine:.6f}/{o.cosine_min:.6f}", ""])
        rows.append([f"max abs error {o.name}", "", f"{o.max_abs:.3g}", ""])
        if o.top1_agreement is not None:
            rows.append([f"top-1 agreement {o.name}", "", f"{o.top1_agreement:.4f}", ""])
    return rows


def _note(st: BenchSettings, two: bool) -> str:
    shapes = " ".join(f"{k}:{','.join(map(str, v))}" for k, v in st.input_shapes.items())
    return (
        f"threads={st.threads} optimization={st.optimization} provider={st.provider} "
        f"warmup={st.warmup} iterations={st.iterations} shapes={shapes}; data: {st.data} "
        f"({st.samples} samples); peak memory: {st.memory_method}"
        + ("; ratio = pruned/original, runs interleaved; speed-up = p50 original/pruned, "
           "efficiency = speed-up x MACs kept (1.0: latency falls like the MACs)" if two else "")
    )
