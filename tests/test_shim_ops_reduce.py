"""Per-op checks (reductions, arg-reductions, top-k): the shim against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.shim.testing import OpCase as Case
from onnxprune.shim.testing import assert_op_case

X4 = "float[2,3,5,6] X"


def ints_const(name: str, values: list[int]) -> str:
    return f"{name} = Constant<value=int64[{len(values)}] {{{', '.join(map(str, values))}}}>()"


def reduce_case(id_: str, op: str, opset: int, body: str) -> Case:
    return Case(f"{op}-{id_}", opset, X4, "float Y", body, positive=op == "ReduceLogSum")


def reduce_cases() -> list[Case]:
    cases = []
    for op in (
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceSum",
        "ReduceProd",
        "ReduceL2",
        "ReduceL1",
        "ReduceSumSquare",
        "ReduceLogSumExp",
        "ReduceLogSum",
    ):
        old = 11 if op == "ReduceSum" else 13
        cases += [
            reduce_case(f"v{old}-attr-axes", op, old, f"Y = {op}<axes=[1,-1]>(X)"),
            reduce_case(f"v{old}-all-keepdims0", op, old, f"Y = {op}<keepdims=0>(X)"),
            reduce_case(
                "v18-input-axes", op, 18, ints_const("a", [2, 1]) + f"\nY = {op}<keepdims=0>(X, a)"
            ),
            reduce_case("v18-noop", op, 18, f"Y = {op}<noop_with_empty_axes=1>(X)"),
            reduce_case("v18-empty-axes-all", op, 18, f"Y = {op}(X)"),
        ]
    return cases


ARG = [
    Case("ArgMax", 13, X4, "int64 Y", "Y = ArgMax<axis=1>(X)"),
    Case("ArgMax-keepdims0", 13, X4, "int64 Y", "Y = ArgMax<axis=-1, keepdims=0>(X)"),
    Case(
        "ArgMax-select-last",
        13,
        "float[6] X",
        "int64 Y",
        "Y = ArgMax<select_last_index=1>(X)",
        feeds={"X": np.array([1, 3, 2, 3, 0, 3], np.float32)},
    ),
    Case(
        "ArgMin-select-first",
        13,
        "float[6] X",
        "int64 Y",
        "Y = ArgMin(X)",
        feeds={"X": np.array([1, 0, 2, 0, 0, 3], np.float32)},
    ),
    Case(
        "TopK-largest",
        13,
        X4,
        "float V, int64 I",
        "k = Constant<value=int64[1] {3}>()\nV, I = TopK<axis=3>(X, k)",
    ),
    Case(
        "TopK-smallest",
        13,
        X4,
        "float V, int64 I",
        "k = Constant<value=int64[1] {2}>()\nV, I = TopK<axis=1, largest=0>(X, k)",
    ),
    Case("TopK-v1", 1 + 8, X4, "float V, int64 I", "V, I = TopK<k=2>(X)"),
]


@pytest.mark.parametrize("case", reduce_cases() + ARG, ids=lambda c: c.id)
def test_reduce(case: Case) -> None:
    assert_op_case(case)
