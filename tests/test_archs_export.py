from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from onnxprune.testing import ARCH_CASES, ARCHS, EXPORTERS, LARGE_ARCHS, example_input
from onnxprune.testing.export import DYNAMO_OPSET, LEGACY_OPSET

REL_TOL = 1e-4


def _ort_outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})


def _torch_outputs(name: str, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = ARCHS[name].build()(x)
    outs = out if isinstance(out, tuple | list) else [out]
    return [o.numpy() for o in outs]


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_export_matches_torch(
    name: str, exporter: str, arch_model: Callable[[str, str], Path]
) -> None:
    x = example_input(ARCHS[name])
    got = _ort_outputs(arch_model(name, exporter), x.numpy())
    want = _torch_outputs(name, x)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        scale = max(float(np.abs(w).max()), 1e-6)
        assert float(np.abs(g - w).max()) <= REL_TOL * scale


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_export_interface(name: str, exporter: str, arch_model: Callable[[str, str], Path]) -> None:
    model = onnx.load(arch_model(name, exporter))
    onnx.checker.check_model(model, full_check=True)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == (DYNAMO_OPSET if exporter == "dynamo" else LEGACY_OPSET)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == ARCHS[name].input_shape


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_build_is_deterministic(name: str) -> None:
    a, b = ARCHS[name].build(), ARCHS[name].build()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        assert torch.equal(va, vb)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_norms_are_not_identities(name: str) -> None:
    model = ARCHS[name].build()
    assert not model.training
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d | torch.nn.LayerNorm)]
    assert norms
    for norm in norms:
        state = {k: v.detach() for k, v in norm.state_dict().items()}
        assert float((state["weight"] - 1).abs().max()) > 0.05
        assert float(state["bias"].abs().max()) > 1e-3
        if isinstance(norm, torch.nn.BatchNorm2d):
            assert float((state["running_var"] - 1).abs().max()) > 0.05
            assert float(state["running_mean"].abs().max()) > 1e-3


@pytest.mark.parametrize(
    ("name", "params"), [("resnet50", 25_557_032), ("mobilenetv2_full", 3_504_872)]
)
def test_large_archs_match_torchvision_sizes(name: str, params: int) -> None:
    model = LARGE_ARCHS[name].build()
    assert sum(p.numel() for p in model.parameters()) == params
    assert LARGE_ARCHS[name].input_shape == (1, 3, 224, 224)


def test_registries() -> None:
    assert set(EXPORTERS) == {"legacy", "dynamo"}
    assert len(ARCH_CASES) == len(ARCHS) * len(EXPORTERS)
    assert set(LARGE_ARCHS) == {"resnet50", "mobilenetv2_full"}
    assert not set(LARGE_ARCHS) & set(ARCHS)
