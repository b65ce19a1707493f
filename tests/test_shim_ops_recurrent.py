"""LSTM, GRU and RNN kernels against onnxruntime: text-syntax graphs and torch exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onnxprune.shim.testing import OpCase as Case
from onnxprune.shim.testing import (
    assert_matches_ort,
    assert_op_case,
    model_from_text,
    run_ort,
    run_shim,
)
from onnxprune.testing.export import export_onnx

T, N, IN, H = 5, 3, 4, 3  # steps, batch, input size, hidden size
TOL = 1e-4
SEQ = {"L": np.array([5, 2, 3], dtype=np.int32)}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def rec(
    op: str,
    id_: str,
    attrs: str = "",
    *,
    dirs: int = 1,
    layout: int = 0,
    bias: bool = True,
    seq: bool = False,
    init: bool = False,
    peep: bool = False,
) -> Case:
    """One recurrent node with all optional inputs chosen, every output returned."""
    g = GATES[op]
    x = f"float[{N},{T},{IN}] X" if layout else f"float[{T},{N},{IN}] X"
    state = f"[{N},{dirs},{H}]" if layout else f"[{dirs},{N},{H}]"
    ins = [x, f"float[{dirs},{g * H},{IN}] W", f"float[{dirs},{g * H},{H}] R"]
    args = ["X", "W", "R", "B" if bias else "", "L" if seq else "", "h0" if init else ""]
    if bias:
        ins.append(f"float[{dirs},{2 * g * H}] B")
    if seq:
        ins.append(f"int32[{N}] L")
    if init:
        ins.append(f"float{state} h0")
    outs = "float Y, float Yh"
    if op == "LSTM":
        args += ["c0" if init else "", "P" if peep else ""]
        ins += [f"float{state} c0"] if init else []
        ins += [f"float[{dirs},{3 * H}] P"] if peep else []
        outs += ", float Yc"
    while args[-1] == "":
        args.pop()
    full = f"hidden_size={H}" + (f", layout={layout}" if layout else "") + (
        f", {attrs}" if attrs else ""
    )
    body = f"{outs.replace('float ', '')} = {op}<{full}>({', '.join(args)})"
    feeds = dict(SEQ) if seq else {}
    return Case(f"{op}-{id_}", 14, ", ".join(ins), outs, body, feeds=feeds, tol=TOL)


BIDI = 'direction="bidirectional"'
REV = 'direction="reverse"'
CASES = [
    case
    for op in ("LSTM", "GRU", "RNN")
    for case in (
        rec(op, "plain"),
        rec(op, "no-bias", bias=False),
        rec(op, "reverse", REV, seq=True, init=True),
        rec(op, "bidi", BIDI, dirs=2),
        rec(op, "bidi-seq-init", BIDI, dirs=2, seq=True, init=True),
        rec(op, "clip", "clip=0.5", init=True),
    )
] + [
    rec("LSTM", "peepholes", BIDI, dirs=2, peep=True, init=True, seq=True),
    rec("LSTM", "input-forget", "input_forget=1", peep=True),
    rec(
        "LSTM",
        "activations",
        'activations=["HardSigmoid", "LeakyRelu", "ScaledTanh"], '
        "activation_alpha=[0.3, 0.2, 1.5], activation_beta=[0.4, 0.7]",
        init=True,
    ),
    rec(
        "LSTM",
        "activations-bidi",
        BIDI + ', activations=["Sigmoid", "Tanh", "Softsign", "HardSigmoid", "Elu", "Affine"], '
        "activation_alpha=[0.1, 0.9, 1.3], activation_beta=[0.2, 0.1]",
        dirs=2,
    ),
    rec("GRU", "linear-before-reset", "linear_before_reset=1", seq=True, init=True),
    rec("GRU", "lbr-bidi", BIDI + ", linear_before_reset=1", dirs=2, init=True),
    rec("GRU", "activations", 'activations=["Softsign", "Relu"]', init=True),
    rec("RNN", "relu", 'activations=["Relu"]', init=True),
    rec("RNN", "affine-bidi", BIDI + ', activations=["Affine", "ThresholdedRelu"], '
        "activation_alpha=[0.5, 0.1], activation_beta=[0.2]", dirs=2),
    rec("RNN", "softplus", 'activations=["Softplus"]'),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_recurrent_matches_onnxruntime(case: Case) -> None:
    assert assert_op_case(case) <= TOL * 10


def _layout0_reference(case: Case) -> str:
    """The body of ``case`` (layout 1) rewritten as Transposes around a layout-0 node."""
    outs = ["Y", "Yh", "Yc"][: case.outputs.count("float")]
    lines = ["X0 = Transpose<perm=[1,0,2]>(X)", "h00 = Transpose<perm=[1,0,2]>(h0)"]
    if "Yc" in outs:
        lines.append("c00 = Transpose<perm=[1,0,2]>(c0)")
    node = case.body.replace(", layout=1", "").replace("(X,", "(X0,")
    node = node.replace("h0", "h00").replace("c0", "c00")
    node = node.split(" = ", 1)[1]
    lines.append(f"{', '.join(o + '0' for o in outs)} = {node}")
    lines.append("Y = Transpose<perm=[2,0,1,3]>(Y0)")
    lines += [f"{o} = Transpose<perm=[1,0,2]>({o}0)" for o in outs[1:]]
    return "\n".join(lines)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout1_equals_transposed_layout0(op: str) -> None:
    # onnxruntime refuses layout=1 on CPU, so the reference is the layout-0 graph in Transposes.
    case = rec(op, "layout1", BIDI, dirs=2, layout=1, seq=True, init=True)
    model = model_from_text(case.opset, case.inputs, case.outputs, case.body)
    ref = model_from_text(case.opset, case.inputs, case.outputs, _layout0_reference(case))
    rng = np.random.default_rng(3)
    feeds = {
        v.name: rng.standard_normal([d.dim_value for d in v.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for v in model.graph.input
        if v.name != "L"
    }
    feeds.update(SEQ)
    want = run_ort(ref, feeds)
    got = run_shim(model, feeds)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("opset", [7, 14, 22])
def test_lstm_every_opset_without_layout(opset: int) -> None:
    case = rec("LSTM", f"opset{opset}", BIDI, dirs=2, seq=True, init=True)
    assert assert_op_case(Case(case.id, opset, case.inputs, case.outputs, case.body,
                               feeds=case.feeds, tol=TOL)) <= TOL * 10


class _Seq(nn.Module):
    """A recurrent layer whose outputs are all returned (sequence and final states)."""

    def __init__(self, cls: type[nn.Module], **kw: object) -> None:
        super().__init__()
        self.rnn = cls(IN, H, **kw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, state = self.rnn(x)
        states = state if isinstance(state, tuple) else (state,)
        return (y, *states)


TORCH = [
    (nn.LSTM, {}),
    (nn.LSTM, {"bidirectional": True}),
    (nn.LSTM, {"bidirectional": True, "num_layers": 2}),
    (nn.LSTM, {"batch_first": True}),
    (nn.GRU, {}),
    (nn.GRU, {"bidirectional": True}),
    (nn.RNN, {"nonlinearity": "relu"}),
    (nn.RNN, {"bidirectional": True}),
]


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize(
    ("cls", "kw"), TORCH, ids=[f"{c.__name__}-{'-'.join(k) or 'plain'}" for c, k in TORCH]
)
def test_torch_export_matches_onnxruntime(
    tmp_path, cls: type[nn.Module], kw: dict[str, object], dynamo: bool
) -> None:
    import onnx

    torch.manual_seed(0)
    module = _Seq(cls, **kw)
    shape = (N, T, IN) if kw.get("batch_first") else (T, N, IN)
    model = onnx.load(export_onnx(module, shape, tmp_path / "m.onnx", dynamo=dynamo))
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    assert assert_matches_ort(model, {"input": x}, rtol=TOL, atol=TOL) <= TOL * 10
