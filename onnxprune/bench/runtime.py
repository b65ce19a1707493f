"""onnxprune sessions with explicit settings, guarded runs, and interleaved latency timing."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from onnxprune import ir
from onnxprune.errors import InputError
from onnxprune.progress import track

OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
ORT_ERRORS = (
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
class Latency:
    """Latency percentiles (ms per batch) and p50 throughput (samples/s), one entry per model."""

    batch: int
    p50_ms: tuple[float, ...]
    p90_ms: tuple[float, ...]
    throughput: tuple[float, ...]


def make_session(
    model: ir.ModelProto | str | Path,
    *,
    threads: int = 1,
    optimization: str = "all",
    provider: str = "cpu",
) -> ort.InferenceSession:
    """Create an onnxruntime session with explicit threads, optimisation level and provider.

    With several threads the intra-op pool does not spin after a run: models are timed
    interleaved (A, B, A, B), and A's spinning workers steal the cores from B's run. Measured
    on this 2-core machine, a model against itself at 2 threads: pair ratio 0.90 with
    spinning (p90 65x the p50), 1.01 without.

    Raises:
        InputError: the provider is not available or onnxruntime cannot load the model.

    """
    check_session_options(threads, optimization, provider)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if threads > 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPTIMIZATION[optimization]
    providers = list(dict.fromkeys([PROVIDERS[provider], PROVIDERS["cpu"]]))
    try:
        if isinstance(model, ir.ModelProto) and ir.heavy(model):
            return _session_via_file(model, so, providers)  # type: ignore[arg-type]
        source = model.SerializeToString() if isinstance(model, ir.ModelProto) else str(model)
        return ort.InferenceSession(source, so, providers=providers)
    except ORT_ERRORS as e:
        name = "model" if isinstance(model, ir.ModelProto) else str(model)
        raise InputError(f"{name}: onnxruntime cannot load it ({first_line(e)})") from e


def _session_via_file(model: ir.ModelProto, so: ort.SessionOptions, providers: list[str]
                      ) -> ort.InferenceSession:
    """Open a large in-memory model from a temporary copy with its weights in a data file.

    The copy is streamed tensor by tensor (no serialised copy of the weights in memory), and
    onnxruntime reads external weights with less transient memory than a model given as bytes
    (a 0.45 GB conv stack at full optimisation: 2x its size above the session, against 3x
    from the file with the weights inline, plus the bytes). It also takes models over
    protobuf's 2 GB limit. The folder goes once the session is open (on Linux a mapped data
    file outlives its name).
    """
    with tempfile.TemporaryDirectory(prefix="onnxprune-session-",
                                     ignore_cleanup_errors=True) as folder:
        path = ir.save_external(model, Path(folder) / "model.onnx")
        return ort.InferenceSession(str(path), so, providers=providers)


def has_provider(provider: str) -> bool:
    """Tell whether this onnxruntime offers ``provider`` (unknown names pass, checked elsewhere)."""
    return provider not in PROVIDERS or PROVIDERS[provider] in ort.get_available_providers()


def check_session_options(threads: int, opt: str, provider: str) -> None:
    """Raise ``InputError`` naming the first bad session option."""
    checks = (
        (threads >= 1, f"threads {threads}: use 1 or more"),
        (opt in OPTIMIZATION, f"optimization '{opt}': use one of {list(OPTIMIZATION)}"),
        (provider in PROVIDERS, f"provider '{provider}': use one of {list(PROVIDERS)}"),
        (
            has_provider(provider),
            f"provider '{provider}' is not available in this onnxruntime (has "
            f"{ort.get_available_providers()}); install onnxruntime-gpu or use --provider cpu",
        ),
    )
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def run(sess: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``sess`` on ``feeds``; an onnxruntime failure becomes an ``InputError``."""
    try:
        return [np.asarray(y) for y in sess.run(None, dict(feeds))]
    except ORT_ERRORS as e:
        raise InputError(
            f"onnxruntime cannot run the model on this data ({first_line(e)}); check the "
            "data's shapes and dtypes against the model inputs"
        ) from e


def first_line(e: BaseException) -> str:
    """Return the first line of an exception's message, shortened in the middle if very long."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    # onnxruntime puts a long C++ signature in the middle and the reason at the end
    return line if len(line) <= 300 else f"{line[:80]} ... {line[-200:]}"


def latency(
    sessions: Sequence[ort.InferenceSession],
    batch: int,
    feeds: Mapping[str, np.ndarray],
    warmup: int,
    iterations: int,
) -> Latency:
    """Time every session on ``feeds``, alternating A, B, A, B, ... run by run."""
    times: list[list[float]] = [[] for _ in sessions]
    runs = track(range(warmup + iterations), what=f"latency b={batch}", unit="run")
    for i in runs:
        for k, sess in enumerate(sessions):  # interleaved: drift hits every model alike
            t0 = time.perf_counter()
            sess.run(None, feeds)
            if i >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    p50 = tuple(float(np.percentile(t, 50)) for t in times)
    p90 = tuple(float(np.percentile(t, 90)) for t in times)
    return Latency(batch, p50, p90, tuple(batch * 1e3 / p for p in p50))
