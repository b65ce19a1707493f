"""Quantisation kernels against onnxruntime (exact integers), and their straight-through grads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onnxprune.shim.module import Shim
from onnxprune.shim.testing import OpCase as Case
from onnxprune.shim.testing import (
    assert_op_case,
    case_feeds,
    model_from_text,
    ort_saturates_u8s8,
    run_ort,
    run_reference,
    run_shim,
)

RNG = np.random.default_rng(0)
U8 = RNG.integers(0, 256, (2, 4, 6, 6)).astype(np.uint8)
I8W = RNG.integers(-128, 128, (5, 4, 3, 3)).astype(np.int8)
U8A = RNG.integers(0, 256, (3, 7)).astype(np.uint8)
I8B = RNG.integers(-128, 128, (7, 5)).astype(np.int8)
U8B = RNG.integers(0, 256, (7, 5)).astype(np.uint8)
I32 = RNG.integers(-5000, 5000, (2, 5)).astype(np.int32)
X = "float[2,5,4] X"


def c(name: str, dtype: str, values: list[float]) -> str:
    """A Constant node line: 1-D when several values, a scalar otherwise."""
    shape = f"[{len(values)}]" if len(values) > 1 else ""
    return f"{name} = Constant<value={dtype}{shape} {{{', '.join(map(str, values))}}}>()"


CASES = [
    Case("Q-uint8-no-zp", 13, X, "uint8 Y",
         c("s", "float", [0.02]) + "\nY = QuantizeLinear(X, s)"),
    Case("Q-int8-zp", 13, X, "int8 Y",
         c("s", "float", [0.013]) + "\n" + c("z", "int8", [3]) + "\nY = QuantizeLinear(X, s, z)"),
    Case("Q-per-axis", 13, X, "int8 Y",
         c("s", "float", [0.01, 0.02, 0.05, 0.003, 0.1]) + "\n"
         + c("z", "int8", [0, 1, -2, 3, 4]) + "\nY = QuantizeLinear<axis=1>(X, s, z)"),
    Case("Q-per-last-axis-opset19", 19, X, "uint8 Y",
         c("s", "float", [0.01, 0.02, 0.05, 0.003]) + "\n"
         + c("z", "uint8", [128, 120, 130, 127]) + "\nY = QuantizeLinear<axis=-1>(X, s, z)"),
    Case("Q-saturates", 13, X, "int8 Y",
         c("s", "float", [0.001]) + "\n" + c("z", "int8", [0]) + "\nY = QuantizeLinear(X, s, z)"),
    Case("QDQ", 13, X, "float Y",
         c("s", "float", [0.021]) + "\n" + c("z", "uint8", [128])
         + "\nq = QuantizeLinear(X, s, z)\nY = DequantizeLinear(q, s, z)"),
    Case("QDQ-per-axis", 13, X, "float Y",
         c("s", "float", [0.01, 0.02, 0.05, 0.003, 0.1]) + "\n" + c("z", "int8", [0, 1, -2, 3, 4])
         + "\nq = QuantizeLinear<axis=1>(X, s, z)\nY = DequantizeLinear<axis=1>(q, s, z)"),
    Case("DQ-int32-bias", 13, "int32[2,5] B", "float Y",
         c("s", "float", [0.001, 0.002, 0.0005, 0.01, 0.003])
         + "\nY = DequantizeLinear<axis=1>(B, s)",
         feeds={"B": I32}),
    Case("DQ-uint8", 13, "uint8[2,4,6,6] A", "float Y",
         c("s", "float", [0.07]) + "\n" + c("z", "uint8", [17]) + "\nY = DequantizeLinear(A, s, z)",
         feeds={"A": U8}),
    Case("DynamicQuantizeLinear", 11, X, "uint8 Y, float S, uint8 Z",
         "Y, S, Z = DynamicQuantizeLinear(X)"),
    Case("ConvInteger", 10, "uint8[2,4,6,6] A, int8[5,4,3,3] W", "int32 Y",
         c("za", "uint8", [120]) + "\nY = ConvInteger<pads=[1,1,1,1]>(A, W, za)",
         feeds={"A": U8, "W": I8W}),
    Case("ConvInteger-no-zp", 10, "uint8[2,4,6,6] A, int8[5,4,3,3] W", "int32 Y",
         "Y = ConvInteger<strides=[2,2]>(A, W)", feeds={"A": U8, "W": I8W}),
    Case("MatMulInteger", 10, "uint8[3,7] A, int8[7,5] B", "int32 Y",
         c("za", "uint8", [100]) + "\n" + c("zb", "int8", [1, -2, 3, 0, 5])
         + "\nY = MatMulInteger(A, B, za, zb)", feeds={"A": U8A, "B": I8B}),
    Case("MatMulInteger-uint8", 10, "uint8[3,7] A, uint8[7,5] B", "int32 Y",
         c("za", "uint8", [100]) + "\n" + c("zb", "uint8", [128])
         + "\nY = MatMulInteger(A, B, za, zb)", feeds={"A": U8A, "B": U8B}),
    Case("QLinearConv-per-channel", 10, "uint8[2,4,6,6] A, int8[5,4,3,3] W, int32[5] B", "uint8 Y",
         c("sa", "float", [0.05]) + "\n" + c("za", "uint8", [128]) + "\n"
         + c("sw", "float", [0.01, 0.02, 0.005, 0.03, 0.001]) + "\n"
         + c("zw", "int8", [0, 0, 0, 0, 0]) + "\n" + c("sy", "float", [0.9]) + "\n"
         + c("zy", "uint8", [120])
         + "\nY = QLinearConv<pads=[1,1,1,1]>(A, sa, za, W, sw, zw, sy, zy, B)",
         feeds={"A": U8, "W": I8W, "B": RNG.integers(-3000, 3000, 5).astype(np.int32)}),
    Case("QLinearConv-per-tensor", 10, "uint8[2,4,6,6] A, int8[5,4,3,3] W", "uint8 Y",
         c("sa", "float", [0.05]) + "\n" + c("za", "uint8", [128]) + "\n"
         + c("sw", "float", [0.01]) + "\n" + c("zw", "int8", [0]) + "\n"
         + c("sy", "float", [0.7]) + "\n" + c("zy", "uint8", [100])
         + "\nY = QLinearConv<strides=[2,2]>(A, sa, za, W, sw, zw, sy, zy)",
         feeds={"A": U8, "W": I8W}),
    Case("QLinearMatMul", 10, "uint8[3,7] A, uint8[7,5] B", "uint8 Y",
         c("sa", "float", [0.05]) + "\n" + c("za", "uint8", [128]) + "\n"
         + c("sb", "float", [0.02]) + "\n" + c("zb", "uint8", [100]) + "\n"
         + c("sy", "float", [0.3]) + "\n" + c("zy", "uint8", [110])
         + "\nY = QLinearMatMul(A, sa, za, B, sb, zb, sy, zy)", feeds={"A": U8A, "B": U8B}),
]  # fmt: skip


# Integer kernels with int8 weights: onnxruntime clips their uint8 x int8 pair sums to int16 on
# CPUs without VNNI (``ort_saturates_u8s8``), so the ONNX spec is their oracle.
U8S8_IDS = {"ConvInteger", "ConvInteger-no-zp", "MatMulInteger", "QLinearConv-per-channel",
            "QLinearConv-per-tensor"}
U8S8 = [c for c in CASES if c.id in U8S8_IDS]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_quant_op_matches_onnxruntime_exactly(case: Case) -> None:
    # Integer outputs must be equal; float outputs within float rounding.
    exact = Case(case.id, case.opset, case.inputs, case.outputs, case.body, feeds=case.feeds,
                 tol=1e-6)
    if case.id in U8S8_IDS and ort_saturates_u8s8():
        model = model_from_text(case.opset, case.inputs, case.outputs, case.body)
        feeds = case_feeds(model, case)
        if all(np.array_equal(a, b) for a, b in zip(run_ort(model, feeds),
                                                    run_reference(model, feeds), strict=True)):
            assert assert_op_case(exact) <= 1e-5
        else:
            pytest.skip("onnxruntime clips uint8 x int8 sums to int16 on this CPU (no VNNI): "
                        "test_integer_kernel_matches_the_onnx_spec_exactly checks the shim")
    else:
        assert assert_op_case(exact) <= 1e-5


@pytest.mark.parametrize("case", U8S8, ids=lambda c: c.id)
def test_integer_kernel_matches_the_onnx_spec_exactly(case: Case) -> None:
    # The spec's int32 sums never saturate: ONNX's reference evaluator, on any CPU.
    model = model_from_text(case.opset, case.inputs, case.outputs, case.body)
    feeds = case_feeds(model, case)
    for got, want in zip(run_shim(model, feeds), run_reference(model, feeds), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_the_saturation_probe_agrees_with_onnxruntime_on_a_full_range_case() -> None:
    # 255*127 per product: exact sums only where onnxruntime does not clip.
    model = model_from_text(10, "uint8[3,7] A, int8[7,5] B", "int32 Y", "Y = MatMulInteger(A, B)")
    feeds = {"A": np.full((3, 7), 255, np.uint8), "B": np.full((7, 5), 127, np.int8)}
    (y,) = run_ort(model, feeds)
    assert bool(np.any(y != 255 * 127 * 7)) == ort_saturates_u8s8()


def test_qdq_gradient_is_straight_through() -> None:
    model = model_from_text(13, X, "float Y", CASES[5].body)
    shim = Shim(model)
    x = torch.randn(2, 5, 4, requires_grad=True)
    (y,) = shim({"X": x})
    (g,) = torch.autograd.grad(y.sum(), x)
    inside = (x.detach() / 0.021).abs() < 120  # not saturated
    assert torch.equal(g[inside], torch.ones_like(g[inside]))
    assert float((y - x).detach().abs()[inside].max()) <= 0.021 / 2 + 1e-6
