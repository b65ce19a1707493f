"""Per-op checks (elementwise, activation): the shim against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.shim.testing import OpCase as Case
from onnxprune.shim.testing import assert_op_case

X4 = "float[2,3,5,6] X"
I64 = np.int64


def unary(op: str, opset: int = 13, positive: bool = False, attrs: str = "") -> Case:
    name = op + (attrs and f"<{attrs}>")
    return Case(
        name, opset, X4, "float Y", f"Y = {op}{attrs and f'<{attrs}>'}(X)", positive=positive
    )


ELEMENTWISE = [
    Case("Add-broadcast", 13, f"{X4}, float[3,1,6] B", "float Y", "Y = Add(X, B)"),
    Case("Sub", 13, f"{X4}, float[6] B", "float Y", "Y = Sub(X, B)"),
    Case("Mul", 13, f"{X4}, float[1,3,1,1] B", "float Y", "Y = Mul(X, B)"),
    Case("Div", 13, f"{X4}, float[3,1,1] B", "float Y", "Y = Div(X, B)", positive=True),
    Case(
        "Div-int-trunc",
        13,
        "int64[4] A, int64[4] B",
        "int64 Y",
        "Y = Div(A, B)",
        feeds={"A": np.array([7, -7, 7, -7], I64), "B": np.array([2, 2, -2, -2], I64)},
    ),
    Case("Pow-float", 13, f"{X4}, float[6] B", "float Y", "Y = Pow(X, B)", positive=True),
    Case("Pow-int-exponent", 15, X4, "float Y", "e = Constant<value=int64 {3}>()\nY = Pow(X, e)"),
    Case(
        "Mod-int",
        13,
        "int64[4] A, int64[4] B",
        "int64 Y",
        "Y = Mod(A, B)",
        feeds={"A": np.array([7, -7, 7, -7], I64), "B": np.array([3, 3, -3, -3], I64)},
    ),
    Case(
        "Mod-fmod",
        13,
        f"{X4}",
        "float Y",
        "b = Constant<value=float {0.7}>()\nY = Mod<fmod=1>(X, b)",
    ),
    Case("Max-variadic", 13, f"{X4}, float[5,6] B, float[6] C", "float Y", "Y = Max(X, B, C)"),
    Case("Min-variadic", 13, f"{X4}, float[5,6] B, float[6] C", "float Y", "Y = Min(X, B, C)"),
    Case("Sum-variadic", 13, f"{X4}, float[5,6] B, float[6] C", "float Y", "Y = Sum(X, B, C)"),
    Case("Mean-variadic", 13, f"{X4}, float[5,6] B", "float Y", "Y = Mean(X, B)"),
    unary("Neg"),
    unary("Abs"),
    unary("Reciprocal", positive=True),
    unary("Floor"),
    unary("Ceil"),
    unary("Sign"),
    unary("Sqrt", positive=True),
    unary("Exp"),
    unary("Log", positive=True),
    unary("Erf"),
    unary("Sin"),
    unary("Cos"),
    Case(
        "Round-half-even",
        13,
        "float[6] X",
        "float Y",
        "Y = Round(X)",
        feeds={"X": np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.6], np.float32)},
    ),
    Case(
        "Compare-logic",
        13,
        f"{X4}, float[6] B",
        "bool Y, bool Z, bool W",
        "lt = Less(X, B)\ngt = Greater(X, B)\nle = LessOrEqual(X, B)\nge = GreaterOrEqual(X, B)\n"
        "eq = Equal(X, X)\nY = And(lt, eq)\nnle = Not(le)\nZ = Or(nle, gt)\nW = Xor(ge, lt)",
    ),
    Case("Where", 13, f"{X4}, float[6] B", "float Y", "c = Greater(X, B)\nY = Where(c, X, B)"),
    Case(
        "Cast-float-int-bool",
        13,
        X4,
        "int64 Y, bool Z, float W",
        "s = Mul(X, k)\nk = Constant<value=float {3.0}>()\nY = Cast<to=7>(s)\nZ = Cast<to=9>(Y)\n"
        "W = Cast<to=1>(Y)",
    ),
    Case(
        "CastLike",
        15,
        f"{X4}, int64[1] T",
        "int64 Y",
        "Y = CastLike(X, T)",
        feeds={"T": np.array([1], I64)},
    ),
    Case(
        "IsNaN-IsInf",
        13,
        "float[4] X",
        "bool Y, bool Z",
        "Y = IsNaN(X)\nZ = IsInf<detect_negative=0>(X)",
        feeds={"X": np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)},
    ),
]

ACTIVATION = [
    unary("Relu"),
    unary("LeakyRelu", attrs="alpha=0.2"),
    unary("LeakyRelu"),
    Case("PRelu-channel", 13, f"{X4}, float[3,1,1] S", "float Y", "Y = PRelu(X, S)"),
    Case("PRelu-scalar", 13, f"{X4}, float[1] S", "float Y", "Y = PRelu(X, S)"),
    unary("Sigmoid"),
    unary("HardSigmoid"),
    unary("HardSigmoid", attrs="alpha=0.1667, beta=0.4"),
    unary("HardSwish", 14),
    unary("Tanh"),
    unary("Elu", attrs="alpha=0.5"),
    unary("Selu"),
    unary("Celu", attrs="alpha=2.0"),
    unary("Softsign"),
    unary("ThresholdedRelu", attrs="alpha=0.3"),
    unary("Gelu", 20),
    unary("Gelu", 20, attrs='approximate="tanh"'),
    unary("Softplus"),
    unary("Mish", 18),
    Case("Clip-v6-attrs", 6, X4, "float Y", "Y = Clip<min=-0.5, max=0.7>(X)"),
    Case("Clip-v6-default", 6, X4, "float Y", "Y = Clip(X)"),
    Case(
        "Clip-v11-both",
        11,
        X4,
        "float Y",
        "lo = Constant<value=float {-0.5}>()\n"
        "hi = Constant<value=float {0.7}>()\n"
        "Y = Clip(X, lo, hi)",
    ),
    Case(
        "Clip-v13-min-only",
        13,
        X4,
        "float Y",
        "lo = Constant<value=float {0.0}>()\nY = Clip(X, lo)",
    ),
    Case(
        "Clip-v13-max-only",
        13,
        X4,
        "float Y",
        "hi = Constant<value=float {6.0}>()\nY = Clip(X, , hi)",
        feeds={},
    ),
    Case("Clip-v13-none", 13, X4, "float Y", "Y = Clip(X)"),
    Case("Softmax-v11-axis1-coerced", 11, X4, "float Y", "Y = Softmax<axis=1>(X)"),
    Case("Softmax-v11-default", 11, X4, "float Y", "Y = Softmax(X)"),
    Case("Softmax-v11-axis-neg", 11, X4, "float Y", "Y = Softmax<axis=-1>(X)"),
    Case("Softmax-v13-axis1", 13, X4, "float Y", "Y = Softmax<axis=1>(X)"),
    Case("Softmax-v13-default", 13, X4, "float Y", "Y = Softmax(X)"),
    Case("LogSoftmax-v11-axis2", 11, X4, "float Y", "Y = LogSoftmax<axis=2>(X)"),
    Case("LogSoftmax-v13-axis2", 13, X4, "float Y", "Y = LogSoftmax<axis=2>(X)"),
]


@pytest.mark.parametrize("case", ELEMENTWISE + ACTIVATION, ids=lambda c: c.id)
def test_elementwise_and_activation(case: Case) -> None:
    assert_op_case(case)
