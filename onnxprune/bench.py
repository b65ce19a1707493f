"""Benchmark and compare models with onnxruntime: latency, cost, memory, fidelity, accuracy.

With two models, timed runs alternate A, B, A, B, ... so that machine drift (frequency scaling,
other processes) hits both alike and cancels in the ratios.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from onnxprune import ir, metrics
from onnxprune.data import Dataset, load_data
from onnxprune.errors import InputError

log = logging.getLogger(__name__)

OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
RANDOM_SAMPLES = 32
MEMORY_METHOD = (
    "host RSS high-water (Linux VmHWM, reset via /proc/self/clear_refs) minus RSS before "
    "session creation + one run per batch size, in a fresh process per model after a warm-up "
    "session; about +-10% run to run"
)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
_WARMUP_MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
warmup (float[1] x) => (float[1] y) { y = Identity(x) }
"""
_ORT_ERRORS = (
    RuntimeError,
    ValueError,
    _ort_state.Fail,
    _ort_state.InvalidArgument,
    _ort_state.InvalidGraph,
    _ort_state.NoSuchFile,
    _ort_state.NotImplemented,
    _ort_state.RuntimeException,
    _ort_state.EPFail,
)


@dataclass(frozen=True)
class OutputFidelity:
    """How closely one output of the pruned model follows the original's.

    ``cosine`` is the mean over samples of the per-sample cosine similarity, ``cosine_min`` the
    worst sample; ``top1_agreement`` is set for class-score outputs ([N, K], K > 1).
    """

    name: str
    cosine: float
    cosine_min: float
    max_abs: float
    top1_agreement: float | None


@dataclass(frozen=True)
class FidelityReport:
    """Output fidelity of a pruned model on a dataset, and both models' accuracy if labelled."""

    outputs: tuple[OutputFidelity, ...]
    samples: int
    source: str
    accuracy_original: float | None = None
    accuracy_pruned: float | None = None

    @property
    def cosine_min(self) -> float:
        """The worst per-sample cosine over all outputs."""
        return min(o.cosine_min for o in self.outputs)

    @property
    def max_abs(self) -> float:
        """The largest absolute difference over all outputs."""
        return max(o.max_abs for o in self.outputs)


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
class Latency:
    """Latency percentiles (ms per batch) and p50 throughput (samples/s), one entry per model."""

    batch: int
    p50_ms: tuple[float, ...]
    p90_ms: tuple[float, ...]
    throughput: tuple[float, ...]


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
        """Return the report as plain JSON-compatible data."""
        return asdict(self)

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


def bench(
    model: str | Path,
    pruned: str | Path | None = None,
    *,
    data: str | Path | Dataset | None = None,
    labels: str | Path | np.ndarray | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    threads: int = 1,
    batches: Sequence[int] = (1,),
    warmup: int = 10,
    iterations: int = 50,
    optimization: str = "all",
    provider: str = "cpu",
    seed: int = 0,
    measure_memory: bool = True,
) -> BenchReport:
    """Measure one model, or compare a pruned model with its original, in onnxruntime.

    Args:
        model: the original ``.onnx`` file.
        pruned: the pruned ``.onnx`` file to compare with it.
        data: a data file/folder (see ``onnxprune.data.load_data``) or a ``Dataset``; random
            inputs (and a warning) when omitted.
        labels: integer class ids for accuracy.
        input_shapes: shapes for dynamic input dims; taken from the data when omitted.
        threads: onnxruntime intra-op threads (inter-op is 1, execution sequential).
        batches: batch sizes to time.
        warmup: untimed runs per model and batch size.
        iterations: timed runs per model and batch size.
        optimization: graph optimisation level, one of ``OPTIMIZATION``.
        provider: ``cpu`` or ``cuda``.
        seed: seed of the random inputs.
        measure_memory: measure each session's peak memory (a subprocess per model, ~1 s).

    Returns:
        The report.

    Raises:
        InputError: bad options, models with different inputs/outputs, or data that does not fit.

    """
    _check_options(threads, batches, warmup, iterations, optimization, provider)
    paths = [Path(model)] + ([Path(pruned)] if pruned is not None else [])
    protos = [ir.load_model(p) for p in paths]
    if len(protos) == 2:
        check_compatible(protos[0], protos[1])
    _check_batches(protos[0], batches)
    shapes, dataset = _prepare(protos[0], input_shapes, data, labels, max(batches), seed)
    feeds = {b: _feeds(dataset, b) for b in batches}
    session_options = {"threads": threads, "optimization": optimization, "provider": provider}
    sessions = [
        make_session(p, threads=threads, optimization=optimization, provider=provider)
        for p in paths
    ]
    memory = [
        _peak_memory(p, list(feeds.values()), session_options) if measure_memory else None
        for p in paths
    ]
    fid = _fidelity(sessions[0], sessions[1], dataset) if len(sessions) == 2 else None
    accuracy = _accuracies(sessions, dataset, fid)
    stats = tuple(
        _stats(*args, shapes) for args in zip(protos, paths, memory, accuracy, strict=True)
    )
    latency = tuple(_latency(sessions, b, feeds[b], warmup, iterations) for b in batches)
    method = MEMORY_METHOD if memory[0] is not None else "not measured"
    settings = BenchSettings(
        threads=threads,
        optimization=optimization,
        provider=provider,
        warmup=warmup,
        iterations=iterations,
        data=dataset.source,
        samples=len(dataset),
        input_shapes=shapes,
        memory_method=method,
    )
    return BenchReport(stats, latency, fid, settings)


def fidelity(
    original: onnx.ModelProto, pruned: onnx.ModelProto, dataset: Dataset, *, batch_size: int = 32
) -> FidelityReport:
    """Compare the outputs of ``pruned`` with those of ``original`` on ``dataset``.

    Args:
        original: the reference model.
        pruned: the model to check; same input and output names, dtypes and shapes.
        dataset: the inputs (and optional labels for accuracy).
        batch_size: samples per run (a model with a fixed batch dim uses that instead).

    Returns:
        Per-output cosine / max-abs / top-1 agreement, and accuracies when labelled.

    Raises:
        InputError: the models do not have the same interface, or the data does not fit.

    """
    check_compatible(original, pruned)
    a, b = make_session(original), make_session(pruned)
    return _fidelity(a, b, dataset, batch_size=batch_size)


def make_session(
    model: onnx.ModelProto | str | Path,
    *,
    threads: int = 1,
    optimization: str = "all",
    provider: str = "cpu",
) -> ort.InferenceSession:
    """Create an onnxruntime session with explicit threads, optimisation level and provider.

    Raises:
        InputError: the provider is not available or onnxruntime cannot load the model.

    """
    _check_session_options(threads, optimization, provider)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPTIMIZATION[optimization]
    providers = list(dict.fromkeys([PROVIDERS[provider], PROVIDERS["cpu"]]))
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        return ort.InferenceSession(source, so, providers=providers)
    except _ORT_ERRORS as e:
        name = "model" if isinstance(model, onnx.ModelProto) else str(model)
        raise InputError(f"{name}: onnxruntime cannot load it ({_first_line(e)})") from e


def _has_provider(provider: str) -> bool:
    return provider not in PROVIDERS or PROVIDERS[provider] in ort.get_available_providers()


def check_compatible(original: onnx.ModelProto, pruned: onnx.ModelProto) -> None:
    """Check that ``pruned`` has ``original``'s input names/dtypes and output names/shapes.

    Raises:
        InputError: naming the first difference.

    """
    ins = [{s.name: str(s.dtype) for s in ir.io_specs(m)} for m in (original, pruned)]
    if ins[0] != ins[1]:
        raise InputError(
            f"the models have different inputs: {ins[0]} vs {ins[1]}; compare a pruned model "
            "with the original it was made from"
        )
    outs = [{s.name: s for s in ir.io_specs(m, outputs=True)} for m in (original, pruned)]
    if list(outs[0]) != list(outs[1]):
        raise InputError(
            f"the models have different outputs: {list(outs[0])} vs {list(outs[1])}; compare "
            "a pruned model with the original it was made from"
        )
    for name, a in outs[0].items():
        b = outs[1][name]
        fixed = [
            x != y
            for x, y in zip(a.shape, b.shape, strict=False)
            if isinstance(x, int) and isinstance(y, int)
        ]
        if len(a.shape) != len(b.shape) or any(fixed) or a.dtype != b.dtype:
            raise InputError(
                f"output '{name}' is {b.dtype} {list(b.shape)} in the pruned model but "
                f"{a.dtype} {list(a.shape)} in the original; graph outputs must keep their shapes"
            )


def _check_options(
    threads: int, batches: Sequence[int], warmup: int, iterations: int, opt: str, provider: str
) -> None:
    _check_session_options(threads, opt, provider)
    if not batches or min(batches) < 1:
        raise InputError(f"batch sizes {list(batches)}: use positive ints, e.g. --batch 1,8")
    if warmup < 0 or iterations < 1:
        raise InputError(f"warmup {warmup}, iterations {iterations}: use >= 0 and >= 1")


def _check_session_options(threads: int, opt: str, provider: str) -> None:
    checks = (
        (threads >= 1, f"threads {threads}: use 1 or more"),
        (opt in OPTIMIZATION, f"optimization '{opt}': use one of {list(OPTIMIZATION)}"),
        (provider in PROVIDERS, f"provider '{provider}': use one of {list(PROVIDERS)}"),
        (
            _has_provider(provider),
            f"provider '{provider}' is not available in this onnxruntime (has "
            f"{ort.get_available_providers()}); install onnxruntime-gpu or use --provider cpu",
        ),
    )
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def _prepare(
    model: onnx.ModelProto,
    given: Mapping[str, Sequence[int]] | None,
    data: str | Path | Dataset | None,
    labels: str | Path | np.ndarray | None,
    max_batch: int,
    seed: int,
) -> tuple[dict[str, tuple[int, ...]], Dataset]:
    specs = ir.io_specs(model)
    given_shapes = {k: tuple(int(d) for d in v) for k, v in (given or {}).items()}
    try:
        shapes = ir.resolve_input_shapes(model, given_shapes)
    except InputError:
        if data is None:
            raise
        shapes = given_shapes  # dynamic dims come from the data below
    if data is None:
        if labels is not None:
            raise InputError("labels were given without data; pass --data with the labels")
        n = max(RANDOM_SAMPLES, max_batch)
        dataset = load_data(None, specs, shapes, random_samples=n, seed=seed)
    elif isinstance(data, Dataset):
        missing = [s.name for s in specs if s.name not in data.inputs]
        if missing or labels is not None:
            raise InputError(
                f"dataset {data.source}: lacks inputs {missing} or labels were given beside it; "
                "build the Dataset with every input and its labels (onnxprune.data.load_data)"
            )
        dataset = data
    else:
        dataset = load_data(data, specs, shapes, labels=labels)
    from_data = {
        s.name: (
            s.shape[0] if isinstance(s.shape[0], int) and s.shape[0] > 0 else 1,
            *dataset.inputs[s.name].shape[1:],
        )
        for s in specs
        if s.shape and s.name in dataset.inputs
    }
    return ir.resolve_input_shapes(model, {**from_data, **given_shapes}), dataset


def _fixed_batch(sess: ort.InferenceSession) -> int | None:
    dim = sess.get_inputs()[0].shape[0] if sess.get_inputs()[0].shape else None
    return dim if isinstance(dim, int) and dim > 0 else None


def _check_batches(model: onnx.ModelProto, batches: Sequence[int]) -> None:
    for s in ir.io_specs(model):
        fixed = s.shape[0] if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0 else None
        wrong = [b for b in batches if fixed and b != fixed]
        if wrong:
            raise InputError(
                f"input '{s.name}' has a fixed batch of {fixed}; batch size {wrong[0]} needs a "
                f"model exported with a dynamic batch dim (or use --batch {fixed})"
            )


def _feeds(dataset: Dataset, batch: int) -> dict[str, np.ndarray]:
    index = np.arange(batch) % len(dataset)  # repeat samples when the data is smaller
    return {k: np.ascontiguousarray(v[index]) for k, v in dataset.inputs.items()}


def _run(sess: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    try:
        return [np.asarray(y) for y in sess.run(None, dict(feeds))]
    except _ORT_ERRORS as e:
        raise InputError(
            f"onnxruntime cannot run the model on this data ({_first_line(e)}); check the "
            "data's shapes and dtypes against the model inputs"
        ) from e


def _first_line(e: BaseException) -> str:
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    # onnxruntime puts a long C++ signature in the middle and the reason at the end
    return line if len(line) <= 300 else f"{line[:80]} ... {line[-200:]}"


def _proc_kb(key: str) -> int | None:
    try:
        found = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
    except OSError:
        return False
    return True


def _peak_memory(
    path: Path, feeds: Sequence[Mapping[str, np.ndarray]], options: Mapping[str, object]
) -> int | None:
    # A fresh process per model: in one process the first session pays onnxruntime's one-time
    # set-up and later ones reuse freed pages, which made identical models differ by 40%.
    if _proc_kb("VmHWM") is None:
        return None
    names = list(feeds[0])
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "feeds.npz"
        np.savez(npz, *[f[n] for f in feeds for n in names])
        cmd = [sys.executable, "-c", "from onnxprune.bench import _probe; _probe()"]
        cmd += [str(path), str(npz), json.dumps({"names": names, **options})]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([_PACKAGE_ROOT, *sys.path])}
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            return int(done.stdout.split()[-1])
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as e:
            log.warning("peak memory not measured for %s: %s", path, _first_line(e))
            return None


def _probe() -> None:
    """Child-process side of ``_peak_memory``: print the session's peak RSS growth in bytes."""
    path, npz, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    names = options.pop("names")
    with np.load(npz) as z:
        arrays = [z[f"arr_{i}"] for i in range(len(z.files))]
    feeds = [
        dict(zip(names, arrays[i : i + len(names)], strict=True))
        for i in range(0, len(arrays), len(names))
    ]
    warm = make_session(onnx.parser.parse_model(_WARMUP_MODEL))  # onnxruntime's globals
    warm.run(None, {"x": np.ones(1, np.float32)})
    _reset_peak()
    before = _proc_kb("VmRSS") or 0
    sess = make_session(path, **options)
    for f in feeds:
        sess.run(None, f)
    sys.stdout.write(f"{max(0, (_proc_kb('VmHWM') or 0) - before) * 1024}\n")


def _latency(
    sessions: Sequence[ort.InferenceSession],
    batch: int,
    feeds: Mapping[str, np.ndarray],
    warmup: int,
    iterations: int,
) -> Latency:
    times: list[list[float]] = [[] for _ in sessions]
    for i in range(warmup + iterations):
        for k, sess in enumerate(sessions):  # interleaved: drift hits every model alike
            t0 = time.perf_counter()
            sess.run(None, feeds)
            if i >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    p50 = tuple(float(np.percentile(t, 50)) for t in times)
    p90 = tuple(float(np.percentile(t, 90)) for t in times)
    return Latency(batch, p50, p90, tuple(batch * 1e3 / p for p in p50))


def _outputs(
    sessions: Sequence[ort.InferenceSession], dataset: Dataset, batch_size: int
) -> Iterator[tuple[list[list[np.ndarray]], np.ndarray | None]]:
    fixed = _fixed_batch(sessions[0])
    for inputs, labels in dataset.batches(fixed or batch_size):
        n = len(next(iter(inputs.values())))
        if fixed and n < fixed:  # pad the last batch of a fixed-batch model, trim after
            inputs = {k: v[np.arange(fixed) % n] for k, v in inputs.items()}
        fed = len(next(iter(inputs.values())))
        yield [[_rows_of(y, fed, n) for y in _run(s, inputs)] for s in sessions], labels


def _rows_of(y: np.ndarray, fed: int, n: int) -> np.ndarray:
    # Outputs batched like the input keep one row per sample (padding trimmed); any other
    # output (a scalar, a fixed-size tensor) counts as one row per run.
    return y[:n] if y.ndim and y.shape[0] == fed else y.reshape(1, -1)


def _class_index(outputs: Sequence[np.ndarray]) -> int | None:
    return next((i for i, y in enumerate(outputs) if y.ndim == 2 and y.shape[1] > 1), None)


def _correct(outputs: Sequence[np.ndarray], labels: np.ndarray) -> int:
    k = _class_index(outputs)
    if k is None:
        raise InputError(
            "labels were given but no output looks like class scores [N, K]; drop --labels"
        )
    if labels.min() < 0 or labels.max() >= outputs[k].shape[1]:
        raise InputError(
            f"labels range {labels.min()}..{labels.max()} but output has "
            f"{outputs[k].shape[1]} classes; labels must be class indices 0..K-1"
        )
    return int((outputs[k].argmax(axis=1) == labels).sum())


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = (x.reshape(len(x), -1).astype(np.float64) for x in (a, b))
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, dot / np.maximum(na * nb, np.finfo(np.float64).tiny))


def _fidelity(
    a: ort.InferenceSession, b: ort.InferenceSession, dataset: Dataset, *, batch_size: int = 32
) -> FidelityReport:
    names = [o.name for o in a.get_outputs()]
    cos: dict[str, list[np.ndarray]] = {n: [] for n in names}
    max_abs = dict.fromkeys(names, 0.0)
    agree: dict[str, list[int]] = {}  # output -> [agreeing rows, rows]; class scores only
    correct = [0, 0]
    for (ya, yb), labels in _outputs([a, b], dataset, batch_size):
        for name, x, y in zip(names, ya, yb, strict=True):
            if x.shape != y.shape:
                raise InputError(
                    f"output '{name}' has shape {list(y.shape)} in the pruned model but "
                    f"{list(x.shape)} in the original on this data; outputs must keep shapes"
                )
            cos[name].append(_cosines(x, y))
            diff = float(np.abs(x.astype(np.float64) - y).max(initial=0.0))
            max_abs[name] = max(max_abs[name], diff)
            if _class_index([x]) == 0:
                same = int((x.argmax(axis=1) == y.argmax(axis=1)).sum())
                count = agree.setdefault(name, [0, 0])
                count[0], count[1] = count[0] + same, count[1] + len(x)
        if labels is not None:
            correct = [c + _correct(y, labels) for c, y in zip(correct, (ya, yb), strict=True)]
    n = len(dataset)
    outputs = tuple(
        OutputFidelity(
            name,
            float(np.concatenate(cos[name]).mean()),
            float(np.concatenate(cos[name]).min()),
            max_abs[name],
            agree[name][0] / agree[name][1] if name in agree else None,
        )
        for name in names
    )
    acc = (correct[0] / n, correct[1] / n) if dataset.labels is not None else (None, None)
    return FidelityReport(outputs, n, dataset.source, *acc)


def _accuracies(
    sessions: Sequence[ort.InferenceSession], dataset: Dataset, fid: FidelityReport | None
) -> list[float | None]:
    if dataset.labels is None:
        return [None] * len(sessions)
    if fid is not None:
        return [fid.accuracy_original, fid.accuracy_pruned]
    correct = sum(
        _correct(ys[0], lab) for ys, lab in _outputs(sessions, dataset, 32) if lab is not None
    )
    return [correct / len(dataset)]


def _stats(
    model: onnx.ModelProto,
    path: Path,
    memory: int | None,
    accuracy: float | None,
    shapes: Mapping[str, tuple[int, ...]],
) -> ModelStats:
    cost = metrics.cost(ir.with_input_shapes(model, shapes))
    batch = next(iter(shapes.values()))[0] if shapes else 1  # MACs are reported per sample
    # size of the model as given (weights included), not of the shape-resolved copy
    size = ir.model_bytes(model)
    return ModelStats(str(path), cost.params, cost.macs // max(1, batch), size, memory, accuracy)


def _si(x: float, unit: str = "") -> str:
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
        row("MACs / sample", [m.macs for m in models], _si),
        row("size", [m.size_bytes for m in models], lambda v: _si(v, "B")),
        row("peak memory", [m.peak_memory_bytes for m in models], lambda v: _si(v, "B")),
    ]
    for lat in report.latency:
        rows.append(row(f"p50 latency b={lat.batch}", list(lat.p50_ms), lambda v: f"{v:.3f} ms"))
        rows.append(row(f"p90 latency b={lat.batch}", list(lat.p90_ms), lambda v: f"{v:.3f} ms"))
        if lat.batch > 1:
            rows.append(
                row(f"throughput b={lat.batch}", list(lat.throughput), lambda v: f"{v:,.1f}/s")
            )
    if any(m.accuracy is not None for m in models):
        rows.append(row("accuracy", [m.accuracy for m in models], lambda v: f"{v:.4f}", False))
    for o in report.fidelity.outputs if report.fidelity else ():
        rows.append([f"cosine {o.name} (mean/min)", "", f"{o.cosine:.6f}/{o.cosine_min:.6f}", ""])
        rows.append([f"max abs error {o.name}", "", f"{o.max_abs:.3g}", ""])
        if o.top1_agreement is not None:
            rows.append([f"top-1 agreement {o.name}", "", f"{o.top1_agreement:.4f}", ""])
    st = report.settings
    shapes = " ".join(f"{k}:{','.join(map(str, v))}" for k, v in st.input_shapes.items())
    note = (
        f"threads={st.threads} optimization={st.optimization} provider={st.provider} "
        f"warmup={st.warmup} iterations={st.iterations} shapes={shapes}; data: {st.data} "
        f"({st.samples} samples); peak memory: {st.memory_method}"
        + ("; ratio = pruned/original, runs interleaved" if two else "")
    )
    return header, rows, note
