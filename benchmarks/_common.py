"""Shared helpers of the benchmark scripts: machine line, tables, JSON, model sources.

Kept small and stable: other benchmark scripts import from here. Run the scripts from the
repository root (``python benchmarks/<name>.py``); the repository is put on ``sys.path`` here
so that they work without an installed package.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # scripts run as files: make `import onnxprune` work
    sys.path.insert(0, str(REPO))


def cache_dir(*parts: str) -> Path:
    """Return (and create) ``$ONNXPRUNE_CACHE/bench/<parts>``, default ``~/.cache/onnxprune``."""
    root = Path(os.environ.get("ONNXPRUNE_CACHE", Path.home() / ".cache" / "onnxprune"))
    path = root.joinpath("bench", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def child_env() -> dict[str, str]:
    """Return an environment in which a child ``python`` imports this checkout's onnxprune."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def machine(threads: Sequence[int] | None = None) -> dict[str, Any]:
    """Describe the machine and the runtime versions (for headers and JSON)."""
    import numpy as np
    import onnxruntime as ort

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_at_start": _read("/proc/loadavg").split()[:3],
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }
    if threads is not None:
        info["threads"] = list(threads)
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One header line from :func:`machine`'s dict."""
    load = " ".join(info.get("loadavg_at_start") or []) or "n/a"
    text = (
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"load avg {load}; python {info['python']}, onnxruntime {info['onnxruntime']}, "
        f"numpy {info['numpy']}"
    )
    return text + (f"; threads {info['threads']}" if "threads" in info else "")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], data: object) -> None:
    """Write ``data`` as indented JSON."""
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


def fetched_models() -> list[dict[str, Any]]:
    """Records of the real models (``tools/fetch_models.py --json``: path, input_shapes, calib)."""
    cmd = [sys.executable, str(REPO / "tools" / "fetch_models.py"), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"tools/fetch_models.py failed:\n{done.stderr[-2000:]}")
    records: list[dict[str, Any]] = json.loads(done.stdout)
    return records


def export_arch(name: str, image: int | None = None) -> Path:
    """Export a test architecture (``ARCHS`` or ``LARGE_ARCHS``), seeded, cached by name/size.

    ``image`` overrides the input side of a small architecture (square NCHW input).
    """
    from onnxprune.testing.archs import ArchSpec, get_spec
    from onnxprune.testing.export import export_onnx

    spec = get_spec(name)
    if image is not None:
        spec = ArchSpec(spec.name, spec.build, (*spec.input_shape[:2], image, image))
    path = cache_dir("archs") / f"{name}_{spec.input_shape[-1]}.onnx"
    if not path.exists():
        export_onnx(spec.build(), spec.input_shape, path, dynamo=False)
    return path


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "n/a" if value is None else str(value)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
