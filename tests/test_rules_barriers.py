"""Barriers: ops that block on purpose, ops without rules, graph inputs and outputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import onnxprune
from onnxprune.channels.rules.barriers import REASONS
from onnxprune.testing.graphs import build, structure

# -- tests -----------------------------------------------------------------------------------

BETWEEN_CONVS = """
g (float[1,3,4,4] x) => (float[1,4,{side},{side}] y) {{
  [conv1] a = Conv (x, w1)
  {body}
  [conv2] y = Conv (b, w2)
}}"""


@pytest.mark.parametrize(
    ("op", "body", "opset", "c_next", "extra"),
    [
        pytest.param("LRN", "[op] b = LRN <size=3> (a)", 13, 8, {}, id="LRN"),
        pytest.param(
            "DepthToSpace", "[op] b = DepthToSpace <blocksize=2> (a)", 13, 2, {}, id="DepthToSpace"
        ),
        pytest.param(
            "SpaceToDepth", "[op] b = SpaceToDepth <blocksize=2> (a)", 13, 32, {}, id="SpaceToDepth"
        ),
        pytest.param(
            "CumSum",
            "[op] b = CumSum (a, axis)",
            13,
            8,
            {"axis": np.array(1, np.int64)},
            id="CumSum",
        ),
        pytest.param(
            "TopK",
            "[op] b, idx = TopK <axis=1> (a, k)",
            13,
            3,
            {"k": np.array([3], np.int64)},
            id="TopK",
        ),
        pytest.param(
            "Einsum",
            '[op] b = Einsum <equation="bchw,oc->bohw"> (a, we)',
            13,
            5,
            {"we": (5, 8)},
            id="Einsum",
        ),
    ],
)
def test_barrier_op_blocks_with_its_reason(
    op: str, body: str, opset: int, c_next: int, extra: dict[str, object]
) -> None:
    weights = {"w1": (8, 3, 1, 1), "w2": (4, c_next, 1, 1)} | extra
    side = {"DepthToSpace": 8, "SpaceToDepth": 2}.get(op, 4)
    model = build(BETWEEN_CONVS.format(body=body, side=side), weights, opset=opset)
    first = model.groups.groups[0]
    assert (first.root_nodes, first.size, first.prunable) == (("conv1",), 8, False)
    assert first.barriers == (f"node 'op' ({op}): {REASONS[op]}",)


def test_integer_op_quantised_conv_is_a_barrier_naming_the_fix() -> None:
    # quantize_dynamic / QOperator models: QLinearConv reads and writes integers.
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [q] q = QuantizeLinear (x, s, z)
          [qconv] c = QLinearConv (q, s, z, wq, ws, z, s, z)
          [dq] d = DequantizeLinear (c, s, z)
          [conv2] y = Conv (d, w2)
        }""",
        {
            "s": np.array(0.05, np.float32), "z": np.array(0, np.int8),
            "wq": np.ones((8, 3, 1, 1), np.int8), "ws": np.array(0.1, np.float32),
            "w2": (4, 8, 1, 1),
        },  # fmt: skip
    )
    first = model.groups.groups[0]
    assert (first.root_nodes, first.prunable) == (("qconv",), False)
    assert first.barriers == (f"node 'qconv' (QLinearConv): {REASONS['QLinearConv']}",)
    assert "quantise in QDQ format" in first.barriers[0]


def test_channels_reaching_a_graph_output_are_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y, float z) {
          [conv1] a = Conv (x, w1)
          [relu] z = Relu (a)
          [conv2] y = Conv (a, w2)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == ("channels reach graph output 'z'",)


def test_graph_input_added_to_conv_output_is_a_barrier() -> None:
    model = build(
        """
        g (float[1,3,4,4] x, float[1,8,4,4] skip) => (float y) {
          [conv1] a = Conv (x, w1)
          [add] s = Add (a, skip)
          [conv2] y = Conv (s, w2)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == ("channels come from graph input 'skip'",)


def test_op_without_a_rule_is_a_barrier_naming_it() -> None:
    model = build(
        BETWEEN_CONVS.format(body="[op] b = Shrink <lambd=0.2> (a)", side=4),
        {"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == ("node 'op' (Shrink): no channel rule for op Shrink",)


def _load_unchecked(text: str, **extra: tuple[int, ...]) -> onnxprune.Model:
    """Load a graph the ONNX checker can't check (custom domain, function-op bugs)."""
    proto = onnx.parser.parse_model(text)
    rng = np.random.default_rng(0)
    for name, shape in ({"w1": (8, 3, 1, 1), "w2": (4, 8, 1, 1)} | extra).items():
        value = rng.standard_normal(shape).astype(np.float32)
        proto.graph.initializer.append(numpy_helper.from_array(value, name))
    return onnxprune.load(proto)


def test_custom_domain_op_is_a_barrier_naming_it() -> None:
    model = _load_unchecked("""
    <ir_version: 8, opset_import: ["" : 13, "com.example" : 1]>
    g (float[1,3,4,4] x) => (float[1,4,4,4] y) {
      [conv1] a = Conv (x, w1)
      [op] b = com.example.Relu (a)
      [conv2] y = Conv (b, w2)
    }""")
    first = model.groups.groups[0]
    assert (first.root_nodes, first.size, first.prunable) == (("conv1",), 8, False)
    assert first.barriers == (
        "node 'op' (Relu): no channel rule for op Relu of domain 'com.example'",
    )


@pytest.mark.parametrize(
    ("op", "opset", "node"),
    [
        pytest.param("MeanVarianceNormalization", 13, "MeanVarianceNormalization (a)", id="MVN"),
        pytest.param(
            "GroupNormalization",
            21,
            "GroupNormalization <num_groups=2> (a, gamma, beta)",
            id="GroupNormalization",
        ),
    ],
)
def test_function_op_barrier(op: str, opset: int, node: str) -> None:
    # onnx 1.23's checker / strict inference trip over these ops' function bodies: no `build`.
    model = _load_unchecked(
        f"""
    <ir_version: 10, opset_import: ["" : {opset}]>
    g (float[1,3,4,4] x) => (float[1,4,4,4] y) {{
      [conv1] a = Conv (x, w1)
      [op] b = {node}
      [conv2] y = Conv (b, w2)
    }}""",
        gamma=(8,),
        beta=(8,),
    )
    assert structure(model) == [(8, False), (4, False)]
    assert model.groups.groups[0].barriers == (f"node 'op' ({op}): {REASONS[op]}",)
