"""Build the bundled example models in ``models/`` from real data.

Trains two small, deliberately over-wide CNNs on ``sklearn.datasets.load_digits``
(the UCI "Optical Recognition of Handwritten Digits" test set: 1797 8x8 grayscale
images, 10 classes) with SGD + an L1 penalty on BatchNorm scales (no augmentation),
exports them to ONNX with the legacy TorchScript exporter,
checks that onnxruntime reproduces the torch outputs, and writes:

    models/digits_cnn.onnx      VGG-like CNN (Conv/BN/ReLU x4, 2x MaxPool, Flatten->Gemm x2)
    models/digits_resnet.onnx   small ResNet (basic blocks, 1x1 projection shortcut, GAP)
    models/digits.npz           calib_x, calib_y, test_x, test_y, mean, std
    models/digits_calib.npz     input, labels   (256 calibration samples, for --data/--labels)
    models/digits_test.npz      input, labels   (540 held-out test samples)

Everything is seeded; running it twice gives the same weights and accuracies.

Usage: python tools/make_digits_models.py [--out models] [--threads 1]

Epochs per model are fixed (EPOCHS below) so the published hashes are reproducible.
One thread is the default: on a small shared machine more threads were much slower.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

SEED = 0
N_TEST = 540
N_CALIB = 256
BATCH = 64
LR = 0.05
WD = 5e-4
EPOCHS = {"digits_cnn": 30, "digits_resnet": 20}
# L1 penalty on BatchNorm scales ("network slimming", Liu et al., ICCV 2017). It makes the
# over-wide models concentrate on fewer channels, so there is real, measurable redundancy
# for a one-shot weight-norm pruner to find (BN is folded into Conv on export, so a small
# BN scale shows up as a small-norm filter). Set to 0.0 for plain training.
SLIM = 0.02


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_data() -> dict[str, np.ndarray | float]:
    """Load digits, split (stratified, seeded), normalise with train-set statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]  # N x 1 x 8 x 8, in [0, 1]
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(
        idx, test_size=N_TEST, stratify=y, random_state=SEED, shuffle=True
    )
    # Calibration subset: a stratified 256-sample subset of the training split.
    _, calib_idx = train_test_split(
        train_idx, test_size=N_CALIB, stratify=y[train_idx], random_state=SEED, shuffle=True
    )
    # Fixed normalisation constants, from the training split, rounded so they are
    # easy to quote and re-apply: x_norm = (pixel / 16 - mean) / std.
    mean = float(np.round(x[train_idx].mean(), 4))
    std = float(np.round(x[train_idx].std(), 4))

    def norm(a: np.ndarray) -> np.ndarray:
        return ((a - np.float32(mean)) / np.float32(std)).astype(np.float32)

    return {
        "train_x": norm(x[train_idx]),
        "train_y": y[train_idx],
        "test_x": norm(x[test_idx]),
        "test_y": y[test_idx],
        "calib_x": norm(x[calib_idx]),
        "calib_y": y[calib_idx],
        "mean": mean,
        "std": std,
    }


def build_models():
    import torch
    from torch import nn

    def cbr(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    class DigitsCNN(nn.Module):
        """VGG-like, over-wide for 8x8 inputs."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                *cbr(1, 32),
                *cbr(32, 64),
                nn.MaxPool2d(2),  # 8x8 -> 4x4
                *cbr(64, 64),
                *cbr(64, 128),
                nn.MaxPool2d(2),  # 4x4 -> 2x2
            )
            self.classifier = nn.Sequential(
                nn.Flatten(),  # 128 * 2 * 2 = 512, channel-major
                nn.Linear(128 * 2 * 2, 128),
                nn.ReLU(inplace=True),
                nn.Dropout(0.3),
                nn.Linear(128, 10),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut: nn.Module
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )
            else:
                self.shortcut = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + self.shortcut(x))

    class DigitsResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(*cbr(1, 32))
            self.layer1 = nn.Sequential(BasicBlock(32, 32), BasicBlock(32, 32))
            self.layer2 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.layer2(self.layer1(self.stem(x)))
            return self.fc(torch.flatten(self.pool(x), 1))

    return {"digits_cnn": DigitsCNN, "digits_resnet": DigitsResNet}


def train(model, data: dict, epochs: int, seed: int, slim: float = 0.0) -> None:
    import torch
    from torch import nn

    set_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xs = torch.from_numpy(data["train_x"])
    ys = torch.from_numpy(data["train_y"])
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=WD)
    steps_per_epoch = (len(xs) + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    gammas = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), BATCH):
            b = perm[i : i + BATCH]
            if len(b) < 2:  # BatchNorm needs >1 sample
                continue
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xs[b]), ys[b])
            loss.backward()
            if slim:  # L1 subgradient on BN scales (network slimming)
                for g in gammas:
                    g.grad.add_(g.detach().sign(), alpha=slim)
            opt.step()
            sched.step()
    model.eval()


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def export(model, path: Path) -> None:
    import torch

    dummy = torch.zeros(1, 1, 8, 8, dtype=torch.float32)
    tmp = path.with_suffix(".onnx.tmp")
    torch.onnx.export(
        model,
        (dummy,),
        str(tmp),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    os.replace(tmp, path)


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_npz(path: Path, **arrays) -> None:
    # np.savez writes zip entries with a fixed timestamp, so the bytes are reproducible.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    import onnx
    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.use_deterministic_algorithms(True)
    except Exception as e:  # pragma: no cover - best effort
        print(f"warning: deterministic algorithms unavailable: {e}", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data()
    print(
        f"digits: train={len(data['train_y'])} test={len(data['test_y'])} "
        f"calib={len(data['calib_y'])} mean={data['mean']:.4f} std={data['std']:.4f}"
    )

    save_npz(
        args.out / "digits.npz",
        calib_x=data["calib_x"],
        calib_y=data["calib_y"],
        test_x=data["test_x"],
        test_y=data["test_y"],
        mean=np.float32(data["mean"]),
        std=np.float32(data["std"]),
    )
    save_npz(args.out / "digits_calib.npz", input=data["calib_x"], labels=data["calib_y"])
    save_npz(args.out / "digits_test.npz", input=data["test_x"], labels=data["test_y"])

    rows = []
    ok = True
    for i, (name, cls) in enumerate(build_models().items()):
        set_seed(SEED + i)
        model = cls()
        n_params = sum(p.numel() for p in model.parameters())
        t = time.perf_counter()
        train(model, data, EPOCHS[name], SEED + i, slim=SLIM)
        train_s = time.perf_counter() - t
        path = args.out / f"{name}.onnx"
        export(model, path)
        onnx.checker.check_model(str(path), full_check=True)

        tl = torch_logits(model, data["test_x"])
        ol = ort_logits(path, data["test_x"])
        acc_t = float((tl.argmax(1) == data["test_y"]).mean())
        acc_o = float((ol.argmax(1) == data["test_y"]).mean())
        max_diff = float(np.abs(tl - ol).max())
        if max_diff > 1e-4 or acc_t != acc_o:
            print(
                f"ERROR {name}: onnxruntime mismatch max|diff|={max_diff:.2e} "
                f"acc torch={acc_t:.4f} ort={acc_o:.4f}",
                file=sys.stderr,
            )
            ok = False
        ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
        rows.append((name, n_params, acc_t, acc_o, max_diff, path.stat().st_size, train_s, ops))

    print()
    print(
        f"{'model':<15} {'params':>8} {'acc(torch)':>10} {'acc(ort)':>9} "
        f"{'max|diff|':>9} {'size(B)':>9} {'train(s)':>8}"
    )
    for name, n, at, ao, d, size, ts, _ in rows:
        print(f"{name:<15} {n:>8} {at:>10.4f} {ao:>9.4f} {d:>9.1e} {size:>9} {ts:>8.1f}")
    print()
    for name, *_, ops in rows:
        print(f"{name} ops: {', '.join(ops)}")
    print()
    for p in sorted(args.out.glob("digits*")):
        if p.suffix in (".onnx", ".npz"):
            print(f"{sha256(p)}  {p.name}")
    print(f"\ntotal time: {time.perf_counter() - t0:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
