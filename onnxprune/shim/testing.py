"""Helpers that compare the shim with onnxruntime (used by the tests and by ``verify``)."""

from __future__ import annotations

import copy
import functools
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from onnxprune import ir
from onnxprune.shim.module import Shim

__all__ = [
    "OpCase",
    "assert_matches_ort",
    "assert_op_case",
    "case_feeds",
    "describe_ort_error",
    "free_batch",
    "model_from_text",
    "ort_saturates_u8s8",
    "run_ort",
    "run_reference",
    "run_shim",
]


def model_from_text(opset: int, inputs: str, outputs: str, body: str) -> ir.ModelProto:
    """Build a one-graph model from ONNX text syntax (output shapes left to inference).

    Args:
        opset: default-domain opset.
        inputs: the graph's input list, e.g. ``"float[1,3,8,8] X"``.
        outputs: the graph's output list, e.g. ``"float Y"``.
        body: the node lines.

    Returns:
        The parsed model.

    """
    ir_version = 8 if opset <= 18 else (9 if opset <= 20 else 10)
    text = (
        f'<ir_version: {ir_version}, opset_import: ["" : {opset}]>\n'
        f"g ({inputs}) => ({outputs}) {{\n{body}\n}}"
    )
    model = ir.parse_model(text)
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    return model


def free_batch(model: ir.ModelProto) -> ir.ModelProto:
    """Return a copy of ``model`` whose graph inputs take any batch size (axis 0 symbolic).

    Output shapes and ``value_info`` are dropped, since they may state the old batch. A graph
    that hard-codes its batch elsewhere (a Reshape to ``[1, -1]``) still fails to run.
    """
    out = copy.deepcopy(model)
    weights = {t.name for t in out.graph.initializer}
    for value in out.graph.input:
        dims = value.type.tensor_type.shape.dim
        if len(dims) and value.name not in weights:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    del out.graph.value_info[:]
    for value in out.graph.output:
        value.type.tensor_type.ClearField("shape")
    return out


def describe_ort_error(e: Exception) -> str:
    """Summarise an onnxruntime error on one line: the failing node and the shapes."""
    text = " ".join(str(e).split())
    node = re.search(r"Name:'([^']*)'", text)
    shapes = re.search(r"(Input shape:.*|Dimension mismatch.*)$", text)
    where = f"node {node.group(1)}: " if node else ""
    return where + (shapes.group(1) if shapes else text[-200:])


def run_ort(
    model: ir.ModelProto, feeds: Mapping[str, np.ndarray], *, optimize: bool = False
) -> list[np.ndarray]:
    """Run ``model`` in onnxruntime (CPU, one thread) and return its outputs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return list(sess.run(None, dict(feeds)))


def run_shim(model: ir.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``model`` through a fresh ``Shim`` without gradients and return numpy outputs."""
    shim = Shim(model)
    with torch.no_grad():
        outs = shim(feeds)
    return [o.detach().cpu().numpy() for o in outs]


def assert_matches_ort(
    model: ir.ModelProto,
    feeds: Mapping[str, np.ndarray],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    relative_to_max: bool = False,
    optimize: bool = False,
) -> float:
    """Assert the shim reproduces onnxruntime on ``feeds``; return the largest abs error.

    Args:
        model: the model.
        feeds: inputs.
        rtol: relative tolerance per element.
        atol: absolute tolerance per element (times ``max|ref|`` if ``relative_to_max``).
        relative_to_max: scale ``atol`` by each output's largest magnitude.
        optimize: let onnxruntime optimize the graph (as a deployment would).

    Returns:
        The largest absolute difference over all outputs.

    Raises:
        AssertionError: an output differs in dtype, shape or value.

    """
    ref = run_ort(model, feeds, optimize=optimize)
    got = run_shim(model, feeds)
    assert len(ref) == len(got), f"{len(got)} outputs, onnxruntime gives {len(ref)}"
    worst = 0.0
    for i, (r, g) in enumerate(zip(ref, got, strict=True)):
        assert g.shape == r.shape, f"output {i}: shape {g.shape} != onnxruntime {r.shape}"
        assert g.dtype == r.dtype, f"output {i}: dtype {g.dtype} != onnxruntime {r.dtype}"
        scale = float(np.abs(r).max()) if relative_to_max and r.size else 1.0
        np.testing.assert_allclose(
            g, r, rtol=rtol, atol=atol * max(scale, 1e-30), err_msg=f"output {i}"
        )
        if r.size and r.dtype != np.bool_:
            worst = max(worst, float(np.abs(g.astype(np.float64) - r.astype(np.float64)).max()))
    return worst


@dataclass(frozen=True)
class OpCase:
    """A one-graph test case in ONNX text syntax (see ``model_from_text``).

    Float inputs not given in ``feeds`` are drawn from a normal distribution seeded by ``id``
    (made positive if ``positive``).
    """

    id: str
    opset: int
    inputs: str
    outputs: str
    body: str
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    positive: bool = False
    tol: float = 1e-5


def case_feeds(model: ir.ModelProto, case: OpCase) -> dict[str, np.ndarray]:
    """The feeds ``assert_op_case`` runs ``case`` on: its own, then seeded normal floats."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    feeds = dict(case.feeds)
    for v in model.graph.input:
        if v.name in feeds:
            continue
        shape = [d.dim_value for d in v.type.tensor_type.shape.dim]
        x = rng.standard_normal(shape).astype(np.float32)
        feeds[v.name] = np.abs(x) + 0.1 if case.positive else x
    return feeds


def assert_op_case(case: OpCase) -> float:
    """Assert the shim matches onnxruntime on ``case`` within ``case.tol``; return the error."""
    model = model_from_text(case.opset, case.inputs, case.outputs, case.body)
    return assert_matches_ort(model, case_feeds(model, case), rtol=case.tol, atol=case.tol)


@functools.cache
def ort_saturates_u8s8() -> bool:
    """Whether onnxruntime's uint8 x int8 integer kernels clip to int16 on this CPU.

    Without VNNI, onnxruntime's MLAS multiplies uint8 by int8 with ``vpmaddubsw``, which
    saturates each sum of two neighbouring products to int16 (255*127 + 255*127 comes back as
    32767, not 64770); its quantisation docs recommend ``reduce_range`` (7-bit weights) on such
    CPUs. The shim computes the ONNX spec's exact int32 sums, so where this returns True
    onnxruntime is not an oracle for MatMulInteger, ConvInteger, QLinearConv or QLinearMatMul
    with int8 weights: compare with :func:`run_reference` instead.
    """
    model = model_from_text(10, "uint8[4,8] A, int8[8,4] B", "int32 Y", "Y = MatMulInteger(A, B)")
    feeds = {"A": np.full((4, 8), 255, np.uint8), "B": np.full((8, 4), 127, np.int8)}
    (y,) = run_ort(model, feeds)
    return not np.all(y == 255 * 127 * 8)


def run_reference(model: ir.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``model`` with ONNX's reference evaluator: the spec's arithmetic, slow, for tests."""
    return ir.run_reference(model, dict(feeds))
