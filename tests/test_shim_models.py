"""Small torch modules exported with both exporters: shim == onnxruntime (and == torch)."""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onnxprune.shim import Shim
from onnxprune.shim.testing import (
    assert_matches_ort,
    free_batch,
    run_ort,
    run_shim,
)
from onnxprune.testing import ARCH_CASES, get_spec
from onnxprune.testing.export import export_onnx

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


class SEBlock(nn.Module):
    def __init__(self, c: int, hard: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 4, 1)
        self.fc2 = nn.Conv2d(c // 4, c, 1)
        self.gate = nn.Hardsigmoid() if hard else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(F.relu(self.fc1(s))))


class ResNetSE(nn.Module):
    """Conv-BN-ReLU stem, a residual block with SE, BN, max-pool, GAP + Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.c1 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(16)
        self.se = SEBlock(16)
        self.post = nn.BatchNorm2d(16)  # after an Add: not folded into a Conv by the exporters
        self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.se(self.b2(self.c2(F.relu(self.b1(self.c1(x))))))
        x = F.max_pool2d(self.post(F.relu(x + y)), 2)
        x = F.relu(self.down(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class UNetish(nn.Module):
    """Strided encoder, ConvTranspose + Concat skip, bilinear and nearest upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.e1 = nn.Conv2d(3, 8, 3, padding=1)
        self.e2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.e3 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.up1 = nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.d1 = nn.Conv2d(32, 8, 3, padding=1)
        self.d2 = nn.Conv2d(16, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.e1(x))
        b = F.relu(self.e2(a))
        c = F.relu(self.e3(b))
        u = torch.cat([self.up1(c), b], dim=1)
        u = F.leaky_relu(self.d1(u), 0.1)
        u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False)
        v = self.d2(torch.cat([u, a], dim=1))
        return v + F.interpolate(F.avg_pool2d(v, 2), scale_factor=2, mode="nearest")


class FlattenHead(nn.Module):
    """Conv features flattened (C*H*W) into a two-layer MLP with dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(6 * 8 * 8, 32)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x)).flatten(1)
        return torch.log_softmax(self.fc2(self.drop(F.gelu(self.fc1(x)))), dim=-1)


class ChannelLayerNorm(nn.Module):
    """ConvNeXt-like: depthwise conv, LayerNorm over channels (permuted and by hand), MLP."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, stride=4)
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.ln = nn.LayerNorm(c, eps=1e-6)
        self.pw1 = nn.Linear(c, 4 * c)
        self.pw2 = nn.Linear(4 * c, c)
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, c))
        self.b = nn.Parameter(torch.linspace(-0.2, 0.2, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.ln(self.dw(x).permute(0, 2, 3, 1))
        y = self.pw2(F.gelu(self.pw1(y))).permute(0, 3, 1, 2)
        x = x + y
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + 1e-6)
        return self.w[:, None, None] * x + self.b[:, None, None]


class CSPish(nn.Module):
    """YOLO/Paddle-like: SiLU, chunk + bottleneck + concat, HardSwish SE, nearest upsample."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.m = nn.Conv2d(8, 8, 3, padding=1)
        self.c2 = nn.Conv2d(24, 16, 1)
        self.se = SEBlock(16, hard=True)
        self.c3 = nn.Conv2d(16, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.c1(x))
        a, b = x.chunk(2, dim=1)
        x = F.hardswish(self.c2(torch.cat([a, b, F.silu(self.m(b))], dim=1)))
        x = self.se(x)
        return F.interpolate(self.c3(x), scale_factor=2.0, mode="nearest")


MODULES = {
    "resnet-se": ResNetSE,
    "unet": UNetish,
    "flatten-head": FlattenHead,
    "channel-layernorm": ChannelLayerNorm,
    "csp": CSPish,
}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    module = MODULES[name]()
    for m in module.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return module.eval()


@functools.cache
def exported(name: str, exporter: str) -> onnx.ModelProto:
    module = build(name)
    x = torch.randn(2, 3, 16, 16)
    if exporter == "legacy":
        buf = io.BytesIO()
        torch.onnx.export(
            module,
            (x,),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
        return onnx.load_from_string(buf.getvalue())
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.onnx.export(
        module,
        (x,),
        dynamo=True,
        opset_version=18,
        input_names=["x"],
        output_names=["y"],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    return program.model_proto


CASES = [(n, e, b) for n in MODULES for e in ("legacy", "dynamo") for b in (1, 4)]


@pytest.mark.parametrize(
    ("name", "exporter", "batch"), CASES, ids=[f"{n}-{e}-b{b}" for n, e, b in CASES]
)
def test_exported_module_matches_onnxruntime(name: str, exporter: str, batch: int) -> None:
    model = exported(name, exporter)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)
    assert_matches_ort(model, {"x": x}, rtol=1e-4, atol=1e-4, relative_to_max=True, optimize=True)
    with torch.no_grad():
        ref = build(name)(torch.from_numpy(x)).numpy()
        got = Shim(model)({"x": x})[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


# -- every test architecture of onnxprune.testing, both exporters, batch 1 and 4 -----------



def at_batch(path: Path, name: str, exporter: str, batch: int, folder: Path
             ) -> onnx.ModelProto:
    """The architecture as a model that runs ``batch`` samples in onnxruntime.

    A batch-1 export with a symbolic batch dim (``free_batch``) when onnxruntime runs it;
    exports that hard-code the batch elsewhere (the dynamo exporter's Reshape to
    ``[1, C]``) are exported again at this batch instead, so every case is run, none
    skipped.
    """
    model = onnx.load(path)
    if batch == 1:
        return model
    freed = free_batch(model)
    x = np.zeros((batch, *get_spec(name).input_shape[1:]), np.float32)
    try:
        run_ort(freed, {"input": x})
    except Exception:  # noqa: BLE001 - onnxruntime raises its own exception types
        spec = get_spec(name)
        again = export_onnx(spec.build(), (batch, *spec.input_shape[1:]),
                            folder / f"{name}_{exporter}_b{batch}.onnx",
                            dynamo=exporter == "dynamo")
        return onnx.load(again)
    return freed


@pytest.mark.parametrize("batch", [1, 4], ids=["b1", "b4"])
@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_test_architecture_matches_onnxruntime(
    arch_model: Callable[[str, str], Path], name: str, exporter: str, batch: int,
    tmp_path: Path,
) -> None:
    """Shim == onnxruntime within 1e-4 of each output's largest magnitude, at batch 1 and 4.

    The exports have a static batch of 1; for batch 4 see :func:`at_batch` (no case is
    skipped).
    """
    model = at_batch(arch_model(name, exporter), name, exporter, batch, tmp_path)
    shape = (batch, *get_spec(name).input_shape[1:])
    x = np.random.default_rng(batch).standard_normal(shape).astype(np.float32)
    ref = run_ort(model, {"input": x})
    got = run_shim(model, {"input": x})
    assert len(got) == len(ref)
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert g.shape == r.shape and g.dtype == r.dtype, i
        err = float(np.abs(g - r).max()) / float(np.abs(r).max())
        assert err <= 1e-4, f"output {i}: max error {err:.2e} of max |output|"
