"""The shim's API: params, gates and gradients, watch, write-back, errors and the op table."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from onnxprune.errors import InputError, OnnxPruneError, UnsupportedOpError
from onnxprune.shim import Shim, lookup, op, registered
from onnxprune.shim.testing import model_from_text, run_ort

RNG = np.random.default_rng(0)


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.c1(x))
        b = F.relu(self.c2(F.max_pool2d(a, 2)) + F.max_pool2d(a, 2))
        return self.fc(b.flatten(1))


def small_net() -> SmallNet:
    torch.manual_seed(0)
    return SmallNet().eval()


@pytest.fixture(scope="module")
def net_model() -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(
        small_net(),
        (torch.randn(2, 3, 8, 8),),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}},
    )
    return onnx.load_from_string(buf.getvalue())


def conv_output(model: onnx.ModelProto, weight: str) -> str:
    return next(
        n.output[0] for n in model.graph.node if n.op_type == "Conv" and n.input[1] == weight
    )


def test_gate_and_weight_gradients_match_torch(net_model: onnx.ModelProto) -> None:
    """Gate, activation and every weight gradient equal those of the exported torch module."""
    shim = Shim(net_model)
    x = torch.from_numpy(RNG.standard_normal((4, 3, 8, 8)).astype(np.float32))
    direction = torch.from_numpy(RNG.standard_normal((4, 5)).astype(np.float32))
    gate = torch.linspace(0.5, 1.5, 8).requires_grad_()
    tensor = conv_output(net_model, "c1.weight")
    shim.set_gate(tensor, 1, gate)
    with shim.watch([tensor]):
        (shim({"x": x})[0] * direction).sum().backward()
    net = small_net()
    ref_gate = torch.linspace(0.5, 1.5, 8).requires_grad_()
    kept: list[torch.Tensor] = []

    def gated(_m: nn.Module, _i: tuple, out: torch.Tensor) -> torch.Tensor:
        out = out * ref_gate.reshape(1, -1, 1, 1)
        out.retain_grad()
        kept.append(out)
        return out

    net.c1.register_forward_hook(gated)
    (net(x) * direction).sum().backward()
    torch.testing.assert_close(gate.grad, ref_gate.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shim.watched[tensor].grad, kept[0].grad, rtol=1e-5, atol=1e-6)
    grads = {k: p.grad for k, p in net.named_parameters()}
    assert set(grads) == {k for k, p in shim.params.items() if p.requires_grad}
    for name, want in grads.items():
        assert want is not None and float(want.abs().max()) > 0, name
        torch.testing.assert_close(shim.params[name].grad, want, rtol=1e-5, atol=1e-6)


def test_gate_zero_removes_channels_and_none_restores(net_model: onnx.ModelProto) -> None:
    shim = Shim(net_model)
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    tensor = conv_output(net_model, "c1.weight")
    base = shim({"x": x})[0].detach()
    gate = torch.ones(8)
    gate[3] = 0
    shim.set_gate(tensor, -3, gate)
    with torch.no_grad():
        shim.params["c1.weight"][3] = 0  # the same as removing channel 3 by its weights
        shim.params["c1.bias"][3] = 0
    gated = shim({"x": x})[0].detach()
    shim.set_gate(tensor, 1, None)
    torch.testing.assert_close(shim({"x": x})[0].detach(), gated, rtol=1e-6, atol=1e-6)
    assert float((gated - base).abs().max()) > 1e-3


def test_watch_keeps_intermediates_only_inside_block(net_model: onnx.ModelProto) -> None:
    shim = Shim(net_model)
    tensor = conv_output(net_model, "c1.weight")
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with shim.watch([tensor]) as kept:
        shim({"x": x})
    assert tuple(kept[tensor].shape) == (2, 8, 8, 8)
    shim.watched.clear()
    shim({"x": x})
    assert shim.watched == {}


def test_params_are_float_initializers(net_model: onnx.ModelProto) -> None:
    shim = Shim(net_model)
    floats = {t.name for t in net_model.graph.initializer if t.data_type == TensorProto.FLOAT}
    assert set(shim.params) >= floats
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in shim.params.values())
    assert sum(p.numel() for p in shim.parameters()) == sum(p.numel() for p in shim.params.values())


def test_to_onnx_round_trip(net_model: onnx.ModelProto) -> None:
    shim = Shim(net_model)
    with torch.no_grad():
        shim.params["c1.weight"].mul_(0.5)
    shim.params["fc.bias"] = nn.Parameter(torch.arange(5, dtype=torch.float32))
    written = shim.to_onnx(net_model)
    onnx.checker.check_model(written, full_check=True)
    x = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        mine = shim({"x": x})[0].numpy()
    np.testing.assert_allclose(run_ort(written, {"x": x})[0], mine, rtol=1e-5, atol=1e-5)
    assert [t.name for t in written.graph.initializer] == [
        t.name for t in net_model.graph.initializer
    ]
    assert net_model.graph.initializer[0].raw_data != b""  # the input model is untouched
    assert any(p is shim.params["fc.bias"] for p in shim.parameters())


def test_to_onnx_keeps_dtype_and_writes_new_shape() -> None:
    model = model_from_text(13, "float[2,4] X", "float Y", "w = Cast<to=1>(h)\nY = MatMul(X, w)")
    model.graph.initializer.append(numpy_helper.from_array(np.ones((4, 3), np.float16), "h"))
    shim = Shim(model)
    assert shim.params["h"].dtype == torch.float16
    shim.params["h"] = nn.Parameter(torch.full((4, 5), 0.25, dtype=torch.float16))
    written = shim.to_onnx(model)
    tensor = written.graph.initializer[0]
    assert tensor.data_type == TensorProto.FLOAT16 and list(tensor.dims) == [4, 5]
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(
        run_ort(written, {"X": x})[0], shim({"X": x})[0].detach().numpy(), rtol=1e-6, atol=1e-6
    )


def constant_node_model() -> onnx.ModelProto:
    """Weights held by Constant nodes (tensor, value_floats, value_float), shape by value_ints."""
    w = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["B"], value_floats=[0.1, -0.2, 0.3, 0.0]),
        helper.make_node("Constant", [], ["k"], value_float=1.5),
        helper.make_node("Constant", [], ["shape"], value_ints=[0, -1]),
        helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "k"], ["m"]),
        helper.make_node("Reshape", ["m", "shape"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 5, 5])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_constant_nodes_become_params_and_are_written_back() -> None:
    model = constant_node_model()
    shim = Shim(model)
    assert set(shim.params) == {"W", "B", "k"}
    assert set(shim.consts) == {"shape"} and shim.consts["shape"].dtype == torch.int64
    assert shim.params["W"].requires_grad and not shim.params["k"].requires_grad
    x = RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(
        shim({"X": x})[0].detach().numpy(), run_ort(model, {"X": x})[0], rtol=1e-5, atol=1e-5
    )
    with torch.no_grad():
        shim.params["W"].mul_(-1)
        shim.params["B"].add_(1)
        shim.params["k"].fill_(2.0)
    written = shim.to_onnx(model)
    np.testing.assert_allclose(
        run_ort(written, {"X": x})[0], shim({"X": x})[0].detach().numpy(), rtol=1e-5, atol=1e-5
    )
    attrs = {
        n.output[0]: n.attribute[0].name for n in written.graph.node if n.op_type == "Constant"
    }
    assert attrs == {"W": "value", "B": "value_floats", "k": "value_float", "shape": "value_ints"}


@pytest.mark.parametrize(
    ("op_type", "domain", "opset", "expected"),
    [
        ("FancyOp", "", 13, ["FancyOp", "ai.onnx", "opset 13"]),
        ("MyOp", "com.example", 2, ["MyOp", "com.example", "opset 2"]),
        ("Gelu", "", 19, ["Gelu", "ai.onnx", "opset 19"]),  # Gelu exists from opset 20
    ],
)
def test_missing_op_names_op_domain_and_opset(
    op_type: str, domain: str, opset: int, expected: list[str]
) -> None:
    node = helper.make_node(op_type, ["X"], ["Y"], domain=domain, name="the_node")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", 1, [2])],
        [helper.make_tensor_value_info("Y", 1, [2])],
    )
    imports = [helper.make_opsetid("", 13 if domain else opset)]
    if domain:
        imports.append(helper.make_opsetid(domain, opset))
    with pytest.raises(UnsupportedOpError) as info:
        Shim(helper.make_model(graph, opset_imports=imports))
    for word in [*expected, "the_node"]:
        assert word in str(info.value)


def test_unknown_attribute_is_unsupported() -> None:
    model = model_from_text(13, "float[2] X", "float Y", "Y = Relu<bogus=1>(X)")
    with pytest.raises(UnsupportedOpError, match="bogus"):
        Shim(model)


@pytest.mark.parametrize(
    ("feeds", "match"),
    [
        ({}, "missing"),
        ({"X": np.zeros(2, np.float32), "Z": np.zeros(2, np.float32)}, "unknown"),
        ({"X": np.zeros(2, np.bool_)}, "expects"),
    ],
)
def test_bad_feeds_raise_input_error(feeds: dict, match: str) -> None:
    shim = Shim(model_from_text(13, "float[2] X", "float Y", "Y = Relu(X)"))
    with pytest.raises(InputError, match=match):
        shim(feeds)


def test_float64_feed_is_cast_to_the_declared_dtype() -> None:
    shim = Shim(model_from_text(13, "float[2] X", "float Y", "Y = Relu(X)"))
    out = shim({"X": np.array([-1.0, 2.0])})[0]
    assert out.dtype == torch.float32 and out.tolist() == [0.0, 2.0]


@pytest.mark.parametrize(
    ("tensor", "axis", "gate", "match"),
    [
        ("nope", 0, torch.ones(3), "not a tensor"),
        ("Y", 1, torch.ones(2, 2), "1-D"),
        ("Y", 1, torch.ones(4), "has 3"),
        ("Y", 5, torch.ones(3), "axis 5"),
    ],
)
def test_bad_gates_raise_input_error(
    tensor: str, axis: int, gate: torch.Tensor, match: str
) -> None:
    shim = Shim(model_from_text(13, "float[2,3] X", "float Z", "Y = Relu(X)\nZ = Neg(Y)"))
    with pytest.raises(InputError, match=match):
        shim.set_gate(tensor, axis, gate)
        shim({"X": np.ones((2, 3), np.float32)})


def test_gate_on_graph_input_and_initializer() -> None:
    model = model_from_text(13, "float[2,3] X, float[3] B", "float Y", "Y = Add(X, B)")
    model.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "B"))
    shim = Shim(model)
    shim.set_gate("X", 1, torch.tensor([1.0, 0.0, 2.0]))
    shim.set_gate("B", 0, torch.tensor([0.0, 1.0, 1.0]))
    out = shim({"X": np.ones((2, 3), np.float32)})[0]
    assert out.tolist() == [[1.0, 1.0, 3.0]] * 2


def test_kernel_errors_name_the_node() -> None:
    model = model_from_text(13, "float[2,3] X, int64[2] S", "float Y", "Y = Reshape(X, S)")
    with pytest.raises(OnnxPruneError, match="node 'Reshape#0' \\(Reshape, opset 13\\)"):
        Shim(model)({"X": np.ones((2, 3), np.float32), "S": np.array([4, 4])})


def test_registering_a_key_twice_fails() -> None:
    with pytest.raises(OnnxPruneError, match="registered twice"):
        op("Relu", 6)(lambda X: X)


def _probe_v1(X: torch.Tensor) -> torch.Tensor:
    """Probe kernel, version 1."""
    return X


def _probe_v5(X: torch.Tensor) -> torch.Tensor:
    """Probe kernel, version 5."""
    return X


def test_lookup_picks_highest_version_not_above_opset() -> None:
    domain = "test.onnxprune.lookup"
    if not any(k.domain == domain for k in registered()):
        op("Probe", 1, domain=domain)(_probe_v1)
        op("Probe", 5, domain=domain)(_probe_v5)
    assert lookup(domain, "Probe", 4).fn is _probe_v1
    assert lookup(domain, "Probe", 5).fn is _probe_v5
    assert lookup(domain, "Probe", 30).since_version == 5
    with pytest.raises(UnsupportedOpError):
        lookup(domain, "Probe", 0)


@pytest.mark.parametrize(
    "kernel",
    [k for k in registered() if k.domain == ""],
    ids=lambda k: f"{k.op_type}-{k.since_version}",
)
def test_every_kernel_is_named_after_its_op_and_documented(kernel) -> None:  # noqa: ANN001
    assert kernel.fn.__name__.split("_v")[0] == kernel.op_type
    assert kernel.fn.__doc__ and "\n" not in kernel.fn.__doc__.strip()


REQUIRED_OPS = """Conv ConvTranspose Gemm MatMul BatchNormalization InstanceNormalization
LayerNormalization GroupNormalization PRelu Relu LeakyRelu Clip Sigmoid HardSigmoid HardSwish Tanh
Elu Selu Gelu Erf Softplus Mish Identity Dropout Cast Sqrt Exp Log Neg Abs Reciprocal Floor Ceil
Round Sign Add Sub Mul Div Max Min Pow Sum Mean Equal Less Greater LessOrEqual GreaterOrEqual Not
And Or Where Concat Split Slice Gather GatherElements Transpose Reshape Flatten Squeeze Unsqueeze
Expand Tile Shape Size Range ConstantOfShape Constant MaxPool AveragePool GlobalAveragePool
GlobalMaxPool ReduceMean ReduceMax ReduceMin ReduceSum ReduceProd ReduceL2 Softmax LogSoftmax
ArgMax TopK Resize Upsample Pad DepthToSpace SpaceToDepth Einsum CumSum""".split()


def schema_opsets(op_type: str) -> list[int]:
    """Opsets 7..23 at which a new version of ``op_type`` starts (and 7 if it exists there)."""
    versions = {
        s.since_version
        for s in onnx.defs.get_all_schemas_with_history()
        if s.name == op_type and s.domain == "" and not s.deprecated
    }
    opsets = {v for v in versions if 7 < v <= 23}
    if any(v <= 7 for v in versions):
        opsets.add(7)
    return sorted(opsets)


@pytest.mark.parametrize("op_type", REQUIRED_OPS)
def test_required_op_has_a_kernel_for_every_schema_version(op_type: str) -> None:
    opsets = schema_opsets(op_type)
    assert opsets
    for opset in opsets:
        assert lookup("", op_type, opset).op_type == op_type


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(net_model: onnx.ModelProto) -> None:
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = Shim(net_model, device="cuda")({"x": x})[0]
    assert out.device.type == "cuda"
    np.testing.assert_allclose(
        out.detach().cpu().numpy(), run_ort(net_model, {"x": x})[0], rtol=1e-4, atol=1e-4
    )


def test_initializer_listed_as_input_is_an_optional_feed() -> None:
    model = model_from_text(13, "float[3] X, float[3] B", "float Y", "Y = Add(X, B)")
    model.graph.initializer.append(numpy_helper.from_array(np.full(3, 2.0, np.float32), "B"))
    shim = Shim(model)
    x = np.ones(3, np.float32)
    assert shim({"X": x})[0].tolist() == [3.0, 3.0, 3.0]
    assert shim({"X": x, "B": np.zeros(3, np.float32)})[0].tolist() == [1.0, 1.0, 1.0]


def test_nodes_out_of_order_are_sorted() -> None:
    model = model_from_text(13, "float[3] X", "float Y", "Y = Neg(a)\na = Relu(X)")
    assert [s.op_type for s in Shim(model).plan.steps] == ["Relu", "Neg"]


def test_tensor_never_produced_is_an_input_error() -> None:
    model = model_from_text(13, "float[3] X", "float Y", "Y = Add(X, ghost)")
    with pytest.raises(InputError, match="ghost"):
        Shim(model)
