"""Per-op checks (conv, matmul, norm, pool): the shim against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.shim.testing import OpCase as Case
from onnxprune.shim.testing import assert_op_case

X4 = "float[2,3,5,6] X"
I64 = np.int64


def conv(
    id_: str,
    attrs: str,
    x: str = "float[2,4,9,10] X",
    w: str = "float[6,4,3,3] W",
    bias: bool = True,
    opset: int = 13,
    op: str = "Conv",
) -> Case:
    ins = f"{x}, {w}" + (", float[6] B" if bias else "")
    args = "X, W, B" if bias else "X, W"
    return Case(
        f"{op}-{id_}",
        opset,
        ins,
        "float Y",
        f"Y = {op}<{attrs}>({args})" if attrs else f"Y = {op}({args})",
    )


CONV = [
    conv("plain", ""),
    conv("no-bias", "", bias=False),
    conv("pads-sym", "pads=[1,1,1,1]"),
    conv("pads-asym", "pads=[0,1,2,0]"),
    conv("stride-dilation", "strides=[2,1], dilations=[2,3], pads=[2,1,1,2]"),
    conv("group2", "group=2", w="float[6,2,3,3] W"),
    conv("depthwise", "group=4, pads=[1,1,1,1]", w="float[4,1,3,3] W", bias=False),
    conv("same-upper-s2", 'auto_pad="SAME_UPPER", strides=[2,2]'),
    conv("same-lower-s2", 'auto_pad="SAME_LOWER", strides=[2,2]'),
    conv("same-upper-k4", 'auto_pad="SAME_UPPER"', w="float[6,4,4,4] W"),
    conv("same-lower-k4", 'auto_pad="SAME_LOWER"', w="float[6,4,4,4] W"),
    conv("valid", 'auto_pad="VALID", strides=[2,3]'),
    conv("1d", "pads=[1,2], strides=[2]", x="float[2,4,11] X", w="float[6,4,3] W"),
    conv("3d", "pads=[1,0,1,1,1,0]", x="float[1,4,5,6,7] X", w="float[6,4,3,2,3] W"),
    conv("kernel-shape", "kernel_shape=[3,3], pads=[1,1,1,1]"),
]

CONV_T = [
    conv("s2", "strides=[2,2]", w="float[4,6,3,3] W", op="ConvTranspose"),
    conv("pads", "strides=[2,2], pads=[1,0,0,1]", w="float[4,6,3,3] W", op="ConvTranspose"),
    conv(
        "output-padding",
        "strides=[2,3], pads=[1,1,1,1], output_padding=[1,2]",
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv(
        "output-padding-no-pads",
        "strides=[2,2], output_padding=[1,1]",
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv("group", "strides=[2,2], group=2", w="float[4,3,3,3] W", op="ConvTranspose"),
    conv(
        "dilation",
        "strides=[2,1], dilations=[2,2], pads=[1,2,1,0]",
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv(
        "output-shape-odd",
        "strides=[2,2], output_shape=[18,21]",
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv(
        "output-shape-same-upper",
        'strides=[2,2], output_shape=[18,21], auto_pad="SAME_UPPER"',
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv(
        "output-shape-big",
        "strides=[2,2], output_shape=[20,22]",
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv(
        "same-upper",
        'strides=[2,2], auto_pad="SAME_UPPER"',
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv(
        "same-lower",
        'strides=[2,2], auto_pad="SAME_LOWER"',
        w="float[4,6,3,3] W",
        op="ConvTranspose",
    ),
    conv(
        "same-upper-k4",
        'strides=[2,2], auto_pad="SAME_UPPER"',
        w="float[4,6,4,4] W",
        op="ConvTranspose",
    ),
    conv(
        "1d", "strides=[3], pads=[1,2]", x="float[2,4,7] X", w="float[4,6,4] W", op="ConvTranspose"
    ),
    conv("no-bias", "strides=[2,2]", w="float[4,6,2,2] W", bias=False, op="ConvTranspose"),
]

MATMUL = [
    Case(
        "Gemm-plain", 13, "float[4,5] A, float[5,3] B, float[4,3] C", "float Y", "Y = Gemm(A, B, C)"
    ),
    Case(
        "Gemm-transB-bias-vec",
        13,
        "float[4,5] A, float[3,5] B, float[3] C",
        "float Y",
        "Y = Gemm<transB=1>(A, B, C)",
    ),
    Case(
        "Gemm-transA-alpha-beta",
        13,
        "float[5,4] A, float[5,3] B, float[1,3] C",
        "float Y",
        "Y = Gemm<transA=1, alpha=0.5, beta=2.0>(A, B, C)",
    ),
    Case(
        "Gemm-no-C",
        13,
        "float[4,5] A, float[3,5] B",
        "float Y",
        "Y = Gemm<transA=0, transB=1>(A, B)",
    ),
    Case("MatMul-2d", 13, "float[4,5] A, float[5,3] B", "float Y", "Y = MatMul(A, B)"),
    Case("MatMul-batched", 13, "float[2,3,4,5] A, float[5,6] B", "float Y", "Y = MatMul(A, B)"),
    Case("MatMul-broadcast", 13, "float[2,1,4,5] A, float[3,5,6] B", "float Y", "Y = MatMul(A, B)"),
    Case("MatMul-vec", 13, "float[5] A, float[2,5,3] B", "float Y", "Y = MatMul(A, B)"),
    Case(
        "Einsum",
        12,
        "float[2,3,4] A, float[2,4,5] B",
        "float Y",
        'Y = Einsum<equation="bij,bjk->bik">(A, B)',
    ),
]

NORM = [
    Case(
        "BatchNormalization-v9",
        9,
        f"{X4}, float[3] S, float[3] B, float[3] M, float[3] V",
        "float Y",
        "Y = BatchNormalization<epsilon=0.001>(X, S, B, M, V)",
        feeds={"V": np.array([0.5, 1.0, 2.0], np.float32)},
    ),
    Case(
        "BatchNormalization-v15",
        15,
        f"{X4}, float[3] S, float[3] B, float[3] M, float[3] V",
        "float Y",
        "Y = BatchNormalization(X, S, B, M, V)",
        feeds={"V": np.array([0.5, 1.0, 2.0], np.float32)},
    ),
    Case(
        "BatchNormalization-v7-spatial0",
        7,
        "float[2,3,4] X, float[3,4] S, float[3,4] B, float[3,4] M, float[3,4] V",
        "float Y",
        "Y = BatchNormalization<spatial=0>(X, S, B, M, V)",
        feeds={"V": np.full((3, 4), 0.7, np.float32)},
    ),
    Case(
        "InstanceNormalization",
        13,
        f"{X4}, float[3] S, float[3] B",
        "float Y",
        "Y = InstanceNormalization<epsilon=0.01>(X, S, B)",
    ),
    Case(
        "LayerNormalization-last",
        17,
        f"{X4}, float[6] S, float[6] B",
        "float Y",
        "Y = LayerNormalization(X, S, B)",
    ),
    Case(
        "LayerNormalization-axis1-3-outputs",
        17,
        f"{X4}, float[3,5,6] S",
        "float Y, float M, float I",
        "Y, M, I = LayerNormalization<axis=1, epsilon=0.001>(X, S)",
    ),
    Case(
        "LayerNormalization-broadcast-scale",
        17,
        f"{X4}, float[1,6] S, float[6] B",
        "float Y",
        "Y = LayerNormalization<axis=-2>(X, S, B)",
    ),
    Case(
        "GroupNormalization-v18",
        18,
        "float[2,6,4,5] X, float[3] S, float[3] B",
        "float Y",
        "Y = GroupNormalization<num_groups=3>(X, S, B)",
    ),
    Case(
        "GroupNormalization-v21",
        21,
        "float[2,6,4,5] X, float[6] S, float[6] B",
        "float Y",
        "Y = GroupNormalization<num_groups=2, epsilon=0.01>(X, S, B)",
    ),
    Case("LRN-size3", 13, "float[2,6,4,5] X", "float Y", "Y = LRN<size=3, alpha=0.01>(X)"),
    Case("LRN-size5", 13, "float[2,6,4,5] X", "float Y", "Y = LRN<size=5, bias=2.0, beta=0.5>(X)"),
    Case("LpNormalization", 13, X4, "float Y", "Y = LpNormalization<axis=1>(X)"),
]


def pool(
    id_: str,
    op: str,
    attrs: str,
    x: str = "float[2,3,9,10] X",
    opset: int = 13,
    outputs: str = "float Y",
    lhs: str = "Y",
) -> Case:
    return Case(f"{op}-{id_}", opset, x, outputs, f"{lhs} = {op}<{attrs}>(X)")


POOL = [
    pool("k3s2p1", "MaxPool", "kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]"),
    pool("ceil", "MaxPool", "kernel_shape=[3,3], strides=[2,2], ceil_mode=1"),
    pool("ceil-pads", "MaxPool", "kernel_shape=[2,2], strides=[2,2], pads=[1,1,1,1], ceil_mode=1"),
    pool("dilation", "MaxPool", "kernel_shape=[2,3], dilations=[2,2], pads=[1,1,0,2]"),
    pool("asym-pads", "MaxPool", "kernel_shape=[3,3], pads=[0,1,2,0]"),
    pool("big-pads", "MaxPool", "kernel_shape=[5,5], pads=[2,2,2,2]"),
    pool("same-upper", "MaxPool", 'kernel_shape=[3,2], strides=[2,2], auto_pad="SAME_UPPER"'),
    pool("same-lower", "MaxPool", 'kernel_shape=[3,2], strides=[2,2], auto_pad="SAME_LOWER"'),
    pool("storage-order", "MaxPool", "kernel_shape=[2,2], storage_order=1"),
    pool("1d", "MaxPool", "kernel_shape=[3], strides=[2], pads=[1,1]", x="float[2,3,11] X"),
    pool("3d", "MaxPool", "kernel_shape=[2,2,2], strides=[2,2,2]", x="float[1,2,4,5,6] X"),
    pool(
        "indices",
        "MaxPool",
        "kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]",
        outputs="float Y, int64 I",
        lhs="Y, I",
    ),
    pool(
        "indices-col",
        "MaxPool",
        "kernel_shape=[2,2], strides=[2,2], storage_order=1",
        outputs="float Y, int64 I",
        lhs="Y, I",
    ),
    pool("exclude-pad", "AveragePool", "kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]"),
    pool(
        "include-pad",
        "AveragePool",
        "kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1], count_include_pad=1",
    ),
    pool("ceil-exclude", "AveragePool", "kernel_shape=[3,3], strides=[2,2], ceil_mode=1"),
    pool(
        "ceil-include",
        "AveragePool",
        "kernel_shape=[3,3], strides=[2,2], pads=[1,0,1,0], ceil_mode=1, count_include_pad=1",
    ),
    pool("asym-include", "AveragePool", "kernel_shape=[2,3], pads=[0,1,1,2], count_include_pad=1"),
    pool("same-upper", "AveragePool", 'kernel_shape=[3,3], strides=[2,2], auto_pad="SAME_UPPER"'),
    pool(
        "dilation", "AveragePool", "kernel_shape=[2,2], dilations=[2,2], pads=[1,1,1,1]", opset=19
    ),
    pool(
        "1d",
        "AveragePool",
        "kernel_shape=[3], strides=[2], pads=[1,1], count_include_pad=1",
        x="float[2,3,11] X",
    ),
    Case("GlobalAveragePool", 13, X4, "float Y", "Y = GlobalAveragePool(X)"),
    Case("GlobalMaxPool", 13, X4, "float Y", "Y = GlobalMaxPool(X)"),
]


@pytest.mark.parametrize("case", CONV + CONV_T + MATMUL, ids=lambda c: c.id)
def test_conv_and_matmul(case: Case) -> None:
    assert_op_case(case)


@pytest.mark.parametrize("case", NORM + POOL, ids=lambda c: c.id)
def test_norm_and_pool(case: Case) -> None:
    assert_op_case(case)
