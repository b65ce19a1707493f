"""Training through the shim: frozen statistics, Adam steps, write-back matches onnxruntime."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from onnxprune.shim import Shim
from onnxprune.shim.testing import model_from_text, run_ort

STATS = {"bn.running_mean", "bn.running_var"}



class ConvBnNet(nn.Module):
    """Conv → ReLU → BN (after the ReLU, so no exporter folds it) → Conv → ReLU → Gemm."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c2(self.bn(F.relu(self.c1(x)))))
        return self.fc(h.flatten(1))


def export(module: nn.Module) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (torch.randn(2, 3, 8, 8),),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
    )
    return onnx.load_from_string(buf.getvalue())


@pytest.fixture(scope="module")
def bn_model() -> onnx.ModelProto:
    torch.manual_seed(0)
    net = ConvBnNet()
    with torch.no_grad():  # trained-looking statistics (distinct from the affine params)
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.3, 0.3)
    model = export(net)
    assert "BatchNormalization" in {n.op_type for n in model.graph.node}
    return model


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_batchnorm_statistics_are_frozen(bn_model: onnx.ModelProto) -> None:
    shim = Shim(bn_model)
    trainable = {k for k, p in shim.params.items() if p.requires_grad}
    assert shim.frozen == STATS
    assert trainable == set(initializers(bn_model)) - STATS
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    shim({"x": x})[0].square().sum().backward()  # F.batch_norm refuses stats that need grad
    assert all(shim.params[k].grad is None for k in STATS)
    assert all(shim.params[k].grad is not None for k in trainable)


def test_replaced_statistic_stays_frozen(bn_model: onnx.ModelProto) -> None:
    shim = Shim(bn_model)
    shim.params["bn.running_var"] = nn.Parameter(torch.ones(8))
    shim.params["bn.weight"] = nn.Parameter(torch.ones(8))
    assert not shim.params["bn.running_var"].requires_grad
    assert shim.params["bn.weight"].requires_grad


def test_adam_steps_then_write_back_match_onnxruntime(bn_model: onnx.ModelProto) -> None:
    """Distillation-style: Adam on the trainable params, to_onnx, onnxruntime == shim."""
    torch.manual_seed(1)
    shim = Shim(bn_model)
    before = {k: p.detach().clone() for k, p in shim.params.items()}
    x = torch.from_numpy(RNG.standard_normal((8, 3, 8, 8)).astype(np.float32))
    target = torch.from_numpy(RNG.standard_normal((8, 6)).astype(np.float32))
    opt = torch.optim.Adam([p for p in shim.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = F.mse_loss(shim({"x": x})[0], target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    for name, p in shim.params.items():
        changed = not torch.equal(p.detach(), before[name])
        assert changed == (name not in STATS), name
    written = shim.to_onnx(bn_model)
    onnx.checker.check_model(written, full_check=True)
    old, new = initializers(bn_model), initializers(written)
    for name in STATS:
        assert new[name].tobytes() == old[name].tobytes()
    xe = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        mine = shim({"x": xe})[0].numpy()
    got = run_ort(written, {"x": xe})[0]
    np.testing.assert_allclose(got, mine, rtol=1e-5, atol=1e-5 * float(np.abs(mine).max()))
    assert float(np.abs(got - run_ort(bn_model, {"x": xe})[0]).max()) > 1e-3


def test_statistic_shared_with_a_weight_is_frozen() -> None:
    """An untrained BN exports its ones/zeros once (stats are Identity of scale/bias)."""
    torch.manual_seed(0)
    model = export(ConvBnNet())
    shim = Shim(model)
    tied = {n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    assert tied and tied <= shim.frozen
    assert not any(shim.params[k].requires_grad for k in tied)
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    shim({"x": x})[0].sum().backward()
    assert shim.params["c1.weight"].grad is not None


def test_resize_scales_are_frozen() -> None:
    model = model_from_text(
        13,
        "float[1,2,3,3] X",
        "float Y",
        "r = Constant<value = float[0] {}>()\n"
        "s = Constant<value = float[4] {1.0, 1.0, 2.0, 2.0}>()\n"
        "w = Constant<value = float[2,2,1,1] {1.0, 2.0, 3.0, 4.0}>()\n"
        'c = Conv(X, w)\nY = Resize<mode = "nearest">(c, r, s)',
    )
    shim = Shim(model)
    assert shim.frozen == {"r", "s"}  # roi and scales
    assert shim.params["w"].requires_grad and not shim.params["s"].requires_grad
    x = RNG.standard_normal((1, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(
        shim({"X": x})[0].detach().numpy(), run_ort(model, {"X": x})[0], rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("retain", [True, False])
def test_watch_retain_grad_switch(bn_model: onnx.ModelProto, retain: bool) -> None:
    shim = Shim(bn_model)
    name = next(n.output[0] for n in bn_model.graph.node if n.op_type == "BatchNormalization")
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with shim.watch([name], retain_grad=retain) as kept:
        out = shim({"x": x})[0]
    seen = []
    kept[name].register_hook(seen.append)
    out.sum().backward()
    assert len(seen) == 1 and tuple(seen[0].shape) == (2, 8, 8, 8)
    assert kept[name].retains_grad == retain
    if retain:
        torch.testing.assert_close(kept[name].grad, seen[0])


RNG = np.random.default_rng(0)
