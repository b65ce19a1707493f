"""Shared helpers of the digits benchmarks (``digits_compare.py``, ``quality_curves.py``).

Benchmark-only code: onnxruntime evaluation and interleaved latency, the plainly trained
digits CNN (cached under ``~/.cache/onnxprune``), and the Torch-Pruning side of the comparison
(torch modules rebuilt from the ONNX initializers, pruning to a MACs target, distillation).
Torch and Torch-Pruning are imported lazily; the package itself never imports this file.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
CALIB = MODELS / "digits_calib.npz"
TEST = MODELS / "digits_test.npz"
CACHE = Path(os.environ.get("ONNXPRUNE_CACHE", Path.home() / ".cache" / "onnxprune"))
INPUT_SHAPE = (1, 1, 8, 8)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- data and onnxruntime


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (input, labels) of a digits npz."""
    with np.load(path) as z:
        return z["input"].astype(np.float32), z["labels"].astype(np.int64)


def session(model: onnx.ModelProto | str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU onnxruntime session: ``threads`` intra-op threads, sequential, all optimisations."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def logits(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


def accuracy(sess: ort.InferenceSession, x: np.ndarray, y: np.ndarray) -> float:
    return float((logits(sess, x).argmax(1) == y).mean())


def interleaved_latency(
    sessions: Mapping[str, ort.InferenceSession],
    x: np.ndarray,
    *,
    warmup: int = 20,
    iterations: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """p50 latency in ms per model; every round runs each model once, in a shuffled order.

    Interleaving makes machine drift (other processes on the shared cores, frequency changes)
    hit every model alike, so the medians are comparable within one call.
    """
    names = list(sessions)
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    times: dict[str, list[float]] = {k: [] for k in names}
    rng = np.random.default_rng(seed)
    for i in range(warmup + iterations):
        for j in rng.permutation(len(names)):
            k = names[j]
            t0 = time.perf_counter()
            sessions[k].run(None, feeds[k])
            dt = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                times[k].append(dt)
    return {k: float(np.median(v)) for k, v in times.items()}


def cost(model: onnx.ModelProto | str | Path, shape: Sequence[int] = INPUT_SHAPE):
    """onnxprune's cost (MACs of Conv/Gemm/MatMul, params) at batch 1."""
    import onnxprune

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    name = proto.graph.input[0].name
    return onnxprune.load(proto, input_shapes={name: tuple(shape)}).cost


# --------------------------------------------------------------------------- training tool


def make_digits_module():
    """Import ``tools/make_digits_models.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        "make_digits_models", ROOT / "tools" / "make_digits_models.py"
    )
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def plain_cnn(seed: int = 0, epochs: int | None = None, log: Callable[[str], None] = print) -> Path:
    """The digits CNN trained *without* the L1 slimming penalty (SLIM=0), cached by seed/epochs.

    Same data split, architecture, optimiser and schedule as ``models/digits_cnn.onnx``; only
    the penalty differs. Exported with BN folded (legacy exporter), checked against torch.
    """
    import torch

    mdm = make_digits_module()
    epochs = epochs or mdm.EPOCHS["digits_cnn"]
    path = CACHE / f"digits_cnn_plain_seed{seed}_ep{epochs}.onnx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    try:
        torch.use_deterministic_algorithms(True)
    except Exception:  # pragma: no cover
        pass
    data = mdm.load_data()
    mdm.set_seed(seed)
    model = mdm.build_models()["digits_cnn"]()
    t0 = time.perf_counter()
    mdm.train(model, data, epochs, seed, slim=0.0)
    tmp = path.with_name(path.name + ".part.onnx")
    mdm.export(model, tmp)
    tl = mdm.torch_logits(model, data["test_x"])
    ol = logits(session(tmp), data["test_x"])
    diff = float(np.abs(tl - ol).max())
    if diff > 1e-4:
        raise RuntimeError(f"plain CNN: onnxruntime differs from torch by {diff:.2e}")
    os.replace(tmp, path)
    acc = float((ol.argmax(1) == data["test_y"]).mean())
    log(
        f"trained plain digits CNN (SLIM=0, seed {seed}, {epochs} epochs) in "
        f"{time.perf_counter() - t0:.1f}s: test acc {acc:.4f}, max|torch-ort| {diff:.1e} -> {path}"
    )
    return path


# --------------------------------------------------------------------------- torch side


def _module_path(node_name: str) -> str:
    """'/layer2/layer2.0/shortcut/shortcut.0/Conv' -> 'layer2.0.shortcut.0'."""
    parts = node_name.strip("/").split("/")[:-1]
    return ".".join(p.split(".")[-1] for p in parts)


def torch_from_onnx(arch: str, onnx_path: str | Path, check: np.ndarray | None = None):
    """Rebuild the torch architecture ``arch`` computing exactly the (BN-folded) ONNX model.

    Every ``BatchNorm2d`` becomes ``Identity`` and every Conv gets a bias (the folded BN
    shift); ``Dropout`` becomes ``Identity`` (the ONNX graph has none). Weights come from the
    ONNX initializers, matched by the exporter's node scope names. With ``check`` given, the
    torch logits must match onnxruntime's within 1e-4 (returns the max abs difference too).
    """
    import torch
    from torch import nn

    mdm = make_digits_module()
    model = mdm.build_models()[arch]()
    # Replace BN / Dropout by Identity, give convs a bias.
    for mod in list(model.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, (nn.BatchNorm2d, nn.Dropout)):
                setattr(mod, child_name, nn.Identity())
            elif isinstance(child, nn.Conv2d) and child.bias is None:
                child.bias = nn.Parameter(torch.zeros(child.out_channels))
    proto = onnx.load(str(onnx_path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    modules = dict(model.named_modules())
    loaded = set()
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        path = _module_path(node.name)
        mod = modules[path]
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs.get("transB", 0) == 1 and attrs.get("transA", 0) == 0
            assert attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        w, b = inits[node.input[1]], inits[node.input[2]]
        assert tuple(mod.weight.shape) == w.shape, (path, mod.weight.shape, w.shape)
        with torch.no_grad():
            mod.weight.copy_(torch.from_numpy(w.copy()))
            mod.bias.copy_(torch.from_numpy(b.copy()))
        loaded.add(path)
    expected = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert loaded == expected, loaded ^ expected
    model.eval()
    if check is None:
        return model, None
    with torch.no_grad():
        tl = model(torch.from_numpy(check)).numpy()
    diff = float(np.abs(tl - logits(session(onnx_path), check)).max())
    if diff > 1e-4:
        raise RuntimeError(f"{arch}: torch rebuild differs from onnxruntime by {diff:.2e}")
    return model, diff


def tp_macs(model) -> tuple[int, int]:
    import torch
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, torch.zeros(*INPUT_SHAPE))
    return int(macs), int(params)


def _tp_prune_once(base, ratio: float, importance: str, x: np.ndarray, y: np.ndarray):
    import torch
    import torch_pruning as tp
    from torch import nn

    model = copy.deepcopy(base)
    model.eval()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]  # the 10-class head
    if importance == "magnitude":
        imp = tp.importance.MagnitudeImportance(p=1)
    elif importance == "taylor":
        imp = tp.importance.TaylorImportance()
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
    else:
        raise ValueError(importance)
    pruner = tp.pruner.MetaPruner(
        model,
        torch.zeros(*INPUT_SHAPE),
        importance=imp,
        pruning_ratio=ratio,
        ignored_layers=[last],
    )
    pruner.step()
    model.zero_grad(set_to_none=True)
    return model


def tp_prune(
    base, target_macs: float, importance: str, x: np.ndarray, y: np.ndarray, tol: float = 0.01
):
    """Prune a copy of ``base`` with Torch-Pruning's MetaPruner to ``target_macs`` kept.

    MACs are counted with ``tp.utils.count_ops_and_params``; ``pruning_ratio`` is bisected
    until the kept fraction is within ``tol`` of the target (or the closest found).
    Taylor importance uses the gradients of the cross-entropy on the calibration set.
    Returns (model, ratio, kept fraction by Torch-Pruning's count).
    """
    base_macs, _ = tp_macs(base)
    lo, hi = 0.0, 0.99
    best = None
    for _ in range(30):
        r = (lo + hi) / 2
        m = _tp_prune_once(base, r, importance, x, y)
        kept = tp_macs(m)[0] / base_macs
        if best is None or abs(kept - target_macs) < abs(best[2] - target_macs):
            best = (m, r, kept)
        if abs(kept - target_macs) <= tol / 2:
            break
        if kept > target_macs:
            lo = r
        else:
            hi = r
    assert best is not None
    return best


def train_split() -> np.ndarray:
    """The 1257 normalised training images the digits models were trained on (no labels)."""
    return make_digits_module().load_data()["train_x"]


def distill_torch(
    student, teacher, x: np.ndarray, epochs: int, seed: int = 0, lr: float = 1e-4, batch: int = 32
):
    """The fine-tuning budget shared with onnxprune's distillation.

    Adam(lr), batch 32, seeded shuffle, MSE between student and teacher outputs, ``epochs``
    passes over the calibration inputs, no labels, and - like onnxprune - the weights of the
    epoch with the lowest loss on the calibration inputs are kept (the starting ones included).
    Eval mode (no BN/Dropout left anyway).
    """
    import torch

    if epochs <= 0:
        return student
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xs = torch.from_numpy(x)
    teacher.eval()
    with torch.no_grad():
        target = teacher(xs)
    student.eval()
    opt = torch.optim.Adam(student.parameters(), lr=lr)

    def full_loss() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(student(xs), target))

    best, state = full_loss(), {k: v.clone() for k, v in student.state_dict().items()}
    for _ in range(epochs):
        perm = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), batch):
            b = perm[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(student(xs[b]), target[b])
            loss.backward()
            opt.step()
        now = full_loss()
        if now < best:
            best, state = now, {k: v.clone() for k, v in student.state_dict().items()}
    student.load_state_dict(state)
    student.eval()
    return student


def export_torch(model, path: Path) -> onnx.ModelProto:
    """Export exactly as the bundled models were (``tools/make_digits_models.export``)."""
    model.eval()
    make_digits_module().export(model, Path(path))
    return onnx.load(str(path))
