"""Per-op checks (shape, tensor, pad, reduce): the shim against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.shim.testing import OpCase as Case
from onnxprune.shim.testing import assert_op_case

X4 = "float[2,3,5,6] X"
I64 = np.int64


def ints_const(name: str, values: list[int]) -> str:
    return f"{name} = Constant<value=int64[{len(values)}] {{{', '.join(map(str, values))}}}>()"


SHAPE = [
    Case(
        "Shape-Gather-Concat-Reshape",
        13,
        X4,
        "float Y",
        "s = Shape(X)\ni = Constant<value=int64 {0}>()\nn = Gather(s, i)\nn1 = Unsqueeze(n, ax)\n"
        + ints_const("ax", [0])
        + "\n"
        + ints_const("m", [-1])
        + "\nt = Concat<axis=0>(n1, m)\n"
        "Y = Reshape(X, t)",
    ),
    Case(
        "Shape-start-end",
        15,
        X4,
        "int64 Y, int64 Z",
        "Y = Shape<start=1, end=-1>(X)\nZ = Shape<start=-2>(X)",
    ),
    Case("Size", 13, X4, "int64 Y", "Y = Size(X)"),
    Case(
        "Range-int",
        13,
        "",
        "int64 Y",
        "a = Constant<value=int64 {10}>()\nb = Constant<value=int64 {-3}>()\n"
        "d = Constant<value=int64 {-4}>()\nY = Range(a, b, d)",
    ),
    Case(
        "Range-float",
        13,
        "",
        "float Y",
        "a = Constant<value=float {0.5}>()\nb = Constant<value=float {3.7}>()\n"
        "d = Constant<value=float {0.3}>()\nY = Range(a, b, d)",
    ),
    Case("ConstantOfShape-default", 13, X4, "float Y", "s = Shape(X)\nY = ConstantOfShape(s)"),
    Case(
        "ConstantOfShape-int",
        13,
        "",
        "int64 Y",
        ints_const("s", [2, 3]) + "\nY = ConstantOfShape<value=int64[1] {7}>(s)",
    ),
    Case(
        "Reshape-zero-minus1",
        13,
        X4,
        "float Y",
        ints_const("s", [0, -1, 6]) + "\nY = Reshape(X, s)",
    ),
    Case(
        "Reshape-allowzero",
        14,
        X4,
        "float Y",
        ints_const("s", [2, 3, 30]) + "\nY = Reshape<allowzero=1>(X, s)",
    ),
    Case("Flatten-axis0", 13, X4, "float Y", "Y = Flatten<axis=0>(X)"),
    Case("Flatten-axis2", 13, X4, "float Y", "Y = Flatten<axis=2>(X)"),
    Case("Flatten-axis-neg", 13, X4, "float Y", "Y = Flatten<axis=-1>(X)"),
    Case("Squeeze-v11-attr", 11, "float[2,1,5,1] X", "float Y", "Y = Squeeze<axes=[1,-1]>(X)"),
    Case(
        "Squeeze-v13-input",
        13,
        "float[2,1,5,1] X",
        "float Y",
        ints_const("a", [-1]) + "\nY = Squeeze(X, a)",
    ),
    Case("Squeeze-all", 13, "float[2,1,5,1] X", "float Y", "Y = Squeeze(X)"),
    Case("Unsqueeze-v11-attr", 11, X4, "float Y", "Y = Unsqueeze<axes=[0,-1]>(X)"),
    Case(
        "Unsqueeze-v13-input", 13, X4, "float Y", ints_const("a", [5, 1]) + "\nY = Unsqueeze(X, a)"
    ),
    Case(
        "Expand",
        13,
        "float[3,1,6] X",
        "float Y",
        ints_const("s", [2, 1, 4, 1]) + "\nY = Expand(X, s)",
    ),
    Case("Identity", 13, X4, "float Y", "Y = Identity(X)"),
    Case("Dropout-mask", 13, X4, "float Y, bool M", "Y, M = Dropout(X)"),
    Case("Dropout-v7", 7, X4, "float Y", "Y = Dropout<ratio=0.3>(X)"),
    Case("NonZero", 13, X4, "int64 Y", "Y = NonZero(X)"),
]

TENSOR = [
    Case("Concat-neg-axis", 13, f"{X4}, float[2,3,5,2] B", "float Y", "Y = Concat<axis=-1>(X, B)"),
    Case("Split-v11-attr", 11, X4, "float A, float B", "A, B = Split<axis=1, split=[1,2]>(X)"),
    Case("Split-v11-equal", 11, X4, "float A, float B, float C", "A, B, C = Split<axis=-1>(X)"),
    Case(
        "Split-v13-input",
        13,
        X4,
        "float A, float B",
        ints_const("s", [4, 2]) + "\nA, B = Split<axis=3>(X, s)",
    ),
    Case("Split-v13-equal", 13, X4, "float A, float B, float C", "A, B, C = Split<axis=1>(X)"),
    Case(
        "Split-v18-num-outputs-uneven",
        18,
        X4,
        "float A, float B",
        "A, B = Split<axis=2, num_outputs=2>(X)",
    ),
    Case(
        "Split-v18-input",
        18,
        X4,
        "float A, float B",
        ints_const("s", [1, 2]) + "\nA, B = Split<axis=1>(X, s)",
    ),
    Case(
        "Slice-v9-attrs", 9, X4, "float Y", "Y = Slice<starts=[1,-4], ends=[100,-1], axes=[1,3]>(X)"
    ),
    Case("Slice-v9-no-axes", 9, X4, "float Y", "Y = Slice<starts=[1,0,2], ends=[2,2,4]>(X)"),
    Case(
        "Slice-v13-steps",
        13,
        X4,
        "float Y",
        "\n".join(
            [
                ints_const("s", [0, 1]),
                ints_const("e", [5, 100]),
                ints_const("a", [2, 3]),
                ints_const("p", [2, 3]),
                "Y = Slice(X, s, e, a, p)",
            ]
        ),
    ),
    Case(
        "Slice-v13-negative-steps",
        13,
        X4,
        "float Y",
        "\n".join(
            [
                ints_const("s", [-1, 4]),
                ints_const("e", [-9223372036854775807, 0]),
                ints_const("a", [3, 2]),
                ints_const("p", [-1, -2]),
                "Y = Slice(X, s, e, a, p)",
            ]
        ),
    ),
    Case(
        "Slice-v13-negative-step-clamped",
        13,
        X4,
        "float Y",
        "\n".join(
            [
                ints_const("s", [100]),
                ints_const("e", [-100]),
                ints_const("a", [-1]),
                ints_const("p", [-3]),
                "Y = Slice(X, s, e, a, p)",
            ]
        ),
    ),
    Case(
        "Slice-v13-empty",
        13,
        X4,
        "float Y",
        "\n".join(
            [
                ints_const("s", [3]),
                ints_const("e", [1]),
                ints_const("a", [1]),
                "Y = Slice(X, s, e, a)",
            ]
        ),
    ),
    Case(
        "Gather-axis1-neg",
        13,
        X4,
        "float Y",
        ints_const("i", [2, -1, 0]) + "\nY = Gather<axis=1>(X, i)",
    ),
    Case(
        "Gather-2d-indices",
        13,
        X4,
        "float Y",
        "i = Constant<value=int64[2,2] {0, 4, -2, 1}>()\nY = Gather<axis=2>(X, i)",
    ),
    Case(
        "Gather-scalar",
        13,
        X4,
        "float Y",
        "i = Constant<value=int64 {-1}>()\nY = Gather<axis=3>(X, i)",
    ),
    Case(
        "GatherElements",
        13,
        "float[3,4] X",
        "float Y",
        "i = Constant<value=int64[2,4] {0, 2, -1, 1, 2, 0, 1, -3}>()\n"
        "Y = GatherElements<axis=0>(X, i)",
    ),
    Case(
        "GatherND",
        13,
        "float[2,3,4] X",
        "float Y",
        "i = Constant<value=int64[2,2] {0, 2, 1, -1}>()\nY = GatherND(X, i)",
    ),
    Case(
        "GatherND-batch",
        13,
        "float[2,3,4] X",
        "float Y",
        "i = Constant<value=int64[2,1] {2, 0}>()\nY = GatherND<batch_dims=1>(X, i)",
    ),
    Case(
        "ScatterND",
        13,
        "float[4,3] X, float[2,3] U",
        "float Y",
        "i = Constant<value=int64[2,1] {3, 0}>()\nY = ScatterND(X, i, U)",
    ),
    Case(
        "ScatterND-add",
        16,
        "float[4,3] X, float[2] U",
        "float Y",
        'i = Constant<value=int64[2,2] {3, 1, 0, 2}>()\nY = ScatterND<reduction="add">(X, i, U)',
    ),
    Case(
        "ScatterElements",
        13,
        "float[3,4] X, float[2,2] U",
        "float Y",
        "i = Constant<value=int64[2,2] {1, 3, 0, -1}>()\nY = ScatterElements<axis=1>(X, i, U)",
    ),
    Case("Transpose-default", 13, X4, "float Y", "Y = Transpose(X)"),
    Case("Transpose-perm", 13, X4, "float Y", "Y = Transpose<perm=[0,2,3,1]>(X)"),
    Case("Tile", 13, X4, "float Y", ints_const("r", [1, 2, 1, 3]) + "\nY = Tile(X, r)"),
    Case("DepthToSpace-DCR", 13, "float[2,8,3,4] X", "float Y", "Y = DepthToSpace<blocksize=2>(X)"),
    Case(
        "DepthToSpace-CRD",
        13,
        "float[2,8,3,4] X",
        "float Y",
        'Y = DepthToSpace<blocksize=2, mode="CRD">(X)',
    ),
    Case("SpaceToDepth", 13, "float[2,3,4,6] X", "float Y", "Y = SpaceToDepth<blocksize=2>(X)"),
    Case("CumSum", 13, X4, "float Y", "a = Constant<value=int64 {2}>()\nY = CumSum(X, a)"),
    Case(
        "CumSum-exclusive-reverse",
        13,
        X4,
        "float Y",
        "a = Constant<value=int32 {-1}>()\nY = CumSum<exclusive=1, reverse=1>(X, a)",
    ),
    Case("Trilu-upper", 14, X4, "float Y", "k = Constant<value=int64 {1}>()\nY = Trilu(X, k)"),
    Case("Trilu-lower", 14, X4, "float Y", "Y = Trilu<upper=0>(X)"),
]

PAD = [
    Case("Pad-v2-attrs", 2, X4, "float Y", "Y = Pad<pads=[0,0,1,2,0,1,0,3], value=1.5>(X)"),
    Case("Pad-v2-reflect", 2, X4, "float Y", 'Y = Pad<pads=[0,0,1,2,0,0,2,3], mode="reflect">(X)'),
    Case(
        "Pad-constant-value",
        13,
        X4,
        "float Y",
        ints_const("p", [0, 0, 1, 2, 0, 1, 0, 3]) + "\nv = Constant<value=float {-2.0}>()\n"
        "Y = Pad(X, p, v)",
    ),
    Case(
        "Pad-constant-default",
        13,
        X4,
        "float Y",
        ints_const("p", [0, 1, 1, 2, 0, 1, 0, 3]) + "\nY = Pad(X, p)",
    ),
    Case(
        "Pad-negative-crop",
        13,
        X4,
        "float Y",
        ints_const("p", [0, 0, -1, 2, 0, 0, 1, -2]) + "\nY = Pad(X, p)",
    ),
    Case(
        "Pad-reflect",
        13,
        X4,
        "float Y",
        ints_const("p", [0, 0, 2, 4, 0, 0, 3, 5]) + '\nY = Pad<mode="reflect">(X, p)',
    ),
    Case(
        "Pad-edge",
        13,
        X4,
        "float Y",
        ints_const("p", [0, 1, 2, 7, 0, 0, 3, 5]) + '\nY = Pad<mode="edge">(X, p)',
    ),
    Case(
        "Pad-wrap",
        19,
        X4,
        "float Y",
        ints_const("p", [0, 0, 2, 4, 0, 0, 3, 5]) + '\nY = Pad<mode="wrap">(X, p)',
    ),
    Case(
        "Pad-axes",
        18,
        X4,
        "float Y",
        ints_const("p", [1, 2, 3, 0]) + "\n" + ints_const("a", [-1, 1]) + "\nY = Pad(X, p, , a)",
    ),
    Case(
        "Pad-axes-reflect",
        18,
        X4,
        "float Y",
        ints_const("p", [1, 2, 3, 1])
        + "\n"
        + ints_const("a", [2, 3])
        + '\nY = Pad<mode="reflect">(X, p, , a)',
    ),
]


@pytest.mark.parametrize("case", SHAPE + TENSOR + PAD, ids=lambda c: c.id)
def test_shape_and_tensor(case: Case) -> None:
    assert_op_case(case)
