"""Weights the tool writes hold no subnormal floats (they make x86 inference many times slower)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
import torch

from onnxprune import ir
from onnxprune.channels.context import Context
from onnxprune.numerics import flush_subnormals
from onnxprune.shim.writeback import write_back
from onnxprune.testing.graphs import build

TINY = np.finfo(np.float32).tiny


def test_flush_zeroes_only_subnormals() -> None:
    a = np.array([0.0, TINY / 4, -TINY / 3, TINY, -TINY, 1e-30, 3.0, np.inf, np.nan],
                 dtype=np.float32)
    b = flush_subnormals(a)
    assert b is not a and a[1] != 0  # the input is not modified
    np.testing.assert_array_equal(b[:3], 0.0)
    np.testing.assert_array_equal(b[3:8], a[3:8])
    assert np.isnan(b[8])
    f16 = np.array([np.finfo(np.float16).tiny / 2, 1.0], dtype=np.float16)
    assert flush_subnormals(f16)[0] == 0 and flush_subnormals(f16)[1] == 1
    ints = np.array([0, 1], dtype=np.int64)
    assert flush_subnormals(ints) is ints
    clean = np.ones(3, np.float32)
    assert flush_subnormals(clean) is clean  # nothing to flush: no copy


def _conv() -> ir.ModelProto:
    return build(
        """
        g (float[1, 2, 4, 4] x) => (float[1, 3, 4, 4] y) {
            y = Conv(x, w)
        }
        """,
        {"w": np.ones((3, 2, 1, 1), np.float32)},
    ).proto


def test_surgery_edits_write_no_subnormals() -> None:
    model = _conv()
    graph = gs.import_onnx(model)
    ctx = Context(graph, {}, 13)
    node = next(n for n in graph.nodes if n.op == "Conv")
    w = np.full((3, 2, 1, 1), TINY / 8, np.float32)
    w[0, 0] = 0.5
    ctx.set_input_const(node, 1, w)
    got = node.inputs[1].values
    assert got[0, 0, 0, 0] == 0.5 and np.count_nonzero(got) == 1


def test_write_back_writes_no_subnormals() -> None:
    model = _conv()
    name = model.graph.initializer[0].name
    value = torch.full((3, 2, 1, 1), 1e-41, dtype=torch.float64)
    value[1, 1] = 2.0
    out = write_back(model, {name: value})
    arr = ir.to_array(out.graph.initializer[0])
    assert arr[1, 1, 0, 0] == 2.0 and np.count_nonzero(arr) == 1
