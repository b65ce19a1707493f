"""Elementwise channel rules: unary ops pass, broadcasting decides what couples or is sliced."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.channels.rules import elementwise
from onnxprune.testing.graphs import build, const_input, original, prune_exact, structure

# -- tests -----------------------------------------------------------------------------------

UNARY_GRAPH = """
g (float[1,3,5,5] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  {body}
  [conv2] y = Conv(b, w2)
}}"""

# Every op of elementwise.UNARY as one node `b = op(p)`; `p` is the conv output, squashed into
# (0, 1) for ops whose domain is positive. Bool-valued ops are cast back and added.
POSITIVE = "[pre] p = Sigmoid(a)"
PLAIN = "[pre] p = Identity(a)"
UNARY_CASES = {
    "Relu": "[op] b = Relu(p)",
    "LeakyRelu": "[op] b = LeakyRelu <alpha=0.2> (p)",
    "Clip": "[op] b = Clip(p, lo, hi)",
    "Sigmoid": "[op] b = Sigmoid(p)",
    "HardSigmoid": "[op] b = HardSigmoid <alpha=0.3, beta=0.4> (p)",
    "HardSwish": "[op] b = HardSwish(p)",
    "Tanh": "[op] b = Tanh(p)",
    "Elu": "[op] b = Elu <alpha=0.5> (p)",
    "Selu": "[op] b = Selu(p)",
    "Celu": "[op] b = Celu <alpha=1.5> (p)",
    "Gelu": '[op] b = Gelu <approximate="tanh"> (p)',
    "Erf": "[op] b = Erf(p)",
    "Softplus": "[op] b = Softplus(p)",
    "Softsign": "[op] b = Softsign(p)",
    "Mish": "[op] b = Mish(p)",
    "ThresholdedRelu": "[op] b = ThresholdedRelu <alpha=0.5> (p)",
    "Identity": "[op] b = Identity(p)",
    "Dropout": "[op] b = Dropout(p)",
    "Cast": "[op] b = Cast <to=1> (p)",
    "Sqrt": "[op] b = Sqrt(p)",
    "Exp": "[op] b = Exp(p)",
    "Log": "[op] b = Log(p)",
    "Neg": "[op] b = Neg(p)",
    "Abs": "[op] b = Abs(p)",
    "Reciprocal": "[op] b = Reciprocal(p)",
    "Floor": "[op] b = Floor(p)",
    "Ceil": "[op] b = Ceil(p)",
    "Round": "[op] b = Round(p)",
    "Sign": "[op] b = Sign(p)",
    "Sin": "[op] b = Sin(p)",
    "Cos": "[op] b = Cos(p)",
    "Not": "[gt] m = Greater(p, zero)\n [op] n = Not(m)\n [cast] c = Cast <to=1> (n)\n"
    " [mul] b = Mul(p, c)",
    "IsNaN": "[op] m = IsNaN(p)\n [cast] c = Cast <to=1> (m)\n [add] b = Add(p, c)",
    "IsInf": "[op] m = IsInf(p)\n [cast] c = Cast <to=1> (m)\n [add] b = Add(p, c)",
}
NEEDS_POSITIVE = {"Sqrt", "Log", "Reciprocal"}


def test_unary_cases_cover_the_rule_list() -> None:
    assert sorted(UNARY_CASES) == sorted(elementwise.UNARY)


@pytest.mark.parametrize("op", sorted(UNARY_CASES))
def test_unary_op_passes_channels(op: str) -> None:
    body = (POSITIVE if op in NEEDS_POSITIVE else PLAIN) + "\n  " + UNARY_CASES[op]
    weights = {
        "w1": (8, 3, 1, 1),
        "w2": (4, 8, 1, 1),
        "lo": np.array(-0.5, np.float32),
        "hi": np.array(0.7, np.float32),
        "zero": np.array(0.0, np.float32),
    }
    used = {k: v for k, v in weights.items() if k in body or k.startswith("w")}
    model = build(UNARY_GRAPH.format(body=body), used, opset=20)
    assert structure(model) == [(8, True), (4, False)]
    assert "op" in model.groups.groups[0].nodes
    keep = [0, 2, 3, 6]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "conv2", 1), original(model, "w2")[:, keep])


PER_CHANNEL = """
g (float[1,3,4,4] x) => (float y) {{
  [conv1] a = Conv (x, w1)
  [op] b = {op}({args})
  [conv2] y = Conv(b, w2)
}}"""


@pytest.mark.parametrize(
    ("op", "args", "shape"),
    [
        pytest.param("Add", "a, k", (1, 8, 1, 1), id="Add-1C11"),
        pytest.param("Mul", "a, k", (1, 8, 1, 1), id="Mul-1C11"),
        pytest.param("Sub", "k, a", (1, 8, 1, 1), id="Sub-const-first-1C11"),
        pytest.param("Div", "a, k", (8, 1, 1), id="Div-C11"),
        pytest.param("Max", "a, k", (8, 1, 1), id="Max-C11"),
        pytest.param("Min", "k, a", (1, 8, 1, 1), id="Min-const-first-1C11"),
        pytest.param("Add", "a, k", (8, 4, 4), id="Add-full-CHW"),
        pytest.param("Mul", "a, k", (), id="Mul-scalar"),
        pytest.param("Add", "a, k", (1,), id="Add-1"),
        pytest.param("Pow", "a, k", (), id="Pow-scalar"),
        pytest.param("PRelu", "a, k", (8, 1, 1), id="PRelu-C11"),
        pytest.param("PRelu", "a, k", (1, 8, 1, 1), id="PRelu-1C11"),
        pytest.param("PRelu", "a, k", (1,), id="PRelu-1"),
        pytest.param("PRelu", "a, k", (1, 1, 1), id="PRelu-111"),
    ],
)
def test_per_channel_constant_is_sliced(op: str, args: str, shape: tuple[int, ...]) -> None:
    k = np.random.default_rng(3).uniform(0.5, 1.5, shape).astype(np.float32)
    if op == "Pow":
        k = np.array(2.0, np.float32)
    model = build(
        PER_CHANNEL.format(op=op, args=args), {"w1": (8, 3, 1, 1), "k": k, "w2": (4, 8, 1, 1)}
    )
    assert structure(model) == [(8, True), (4, False)]
    keep = [1, 2, 4, 5, 7]
    pruned = prune_exact(model, {0: keep})
    got = const_input(pruned, "op", args.split(", ").index("k"))
    if 8 in shape:
        axis = shape.index(8)
        np.testing.assert_array_equal(got, np.take(k, keep, axis=axis))
    else:
        np.testing.assert_array_equal(got, k)


def test_channels_last_vectors_after_transpose() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [to_nhwc] t = Transpose <perm=[0,2,3,1]> (a)
          [scale] s = Mul(t, gamma)
          [shift] h = Add(s, beta)
          [to_nchw] u = Transpose <perm=[0,3,1,2]> (h)
          [conv2] y = Conv(u, w2)
        }""",
        {"w1": (8, 3, 1, 1), "gamma": (8,), "beta": (8,), "w2": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (4, False)]
    keep = [0, 3, 4, 5]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "scale", 1), original(model, "gamma")[keep])
    np.testing.assert_array_equal(const_input(pruned, "shift", 1), original(model, "beta")[keep])


@pytest.mark.parametrize(
    ("op", "n"),
    [
        pytest.param("Add", 2, id="Add"),
        pytest.param("Mul", 2, id="Mul"),
        pytest.param("Max", 2, id="Max"),
        pytest.param("Sub", 2, id="Sub"),
        pytest.param("Sum", 3, id="Sum-3"),
        pytest.param("Mean", 3, id="Mean-3"),
        pytest.param("Min", 3, id="Min-3"),
    ],
)
def test_two_feature_maps_couple_their_convs(op: str, n: int) -> None:
    convs = "\n".join(f"  [conv{i}] a{i} = Conv (x, w{i})" for i in range(1, n + 1))
    args = ", ".join(f"a{i}" for i in range(1, n + 1))
    graph = f"""
    g (float[1,3,4,4] x) => (float y) {{
    {convs}
      [op] b = {op}({args})
      [head] y = Conv(b, wh)
    }}"""
    weights = {f"w{i}": (8, 3, 1, 1) for i in range(1, n + 1)} | {"wh": (4, 8, 1, 1)}
    model = build(graph, weights)
    assert structure(model) == [(8, True), (4, False)]
    assert model.groups.groups[0].root_nodes == tuple(f"conv{i}" for i in range(1, n + 1))
    keep = [0, 1, 5, 6]
    pruned = prune_exact(model, {0: keep})
    for i in range(1, n + 1):
        np.testing.assert_array_equal(
            const_input(pruned, f"conv{i}", 1), original(model, f"w{i}")[keep]
        )


def test_where_couples_condition_and_branches() -> None:
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [conv2] c = Conv (x, w2)
          [gt] m = Greater(c, zero)
          [where] b = Where(m, a, k)
          [head] y = Conv(b, wh)
        }""",
        {
            "w1": (8, 3, 1, 1),
            "w2": (8, 3, 1, 1),
            "zero": np.array(0.0, np.float32),
            "k": (1, 8, 1, 1),
            "wh": (4, 8, 1, 1),
        },
    )
    assert structure(model) == [(8, True), (4, False)]
    assert model.groups.groups[0].root_nodes == ("conv1", "conv2")
    keep = [1, 2, 3, 7]
    pruned = prune_exact(model, {0: keep})
    np.testing.assert_array_equal(const_input(pruned, "where", 2), original(model, "k")[:, keep])


def test_spatial_map_broadcast_over_channels_passes() -> None:
    # A [1,1,H,W] run-time tensor (a spatial attention map) broadcasts over the channels.
    model = build(
        """
        g (float[1,3,4,4] x) => (float y) {
          [conv1] a = Conv (x, w1)
          [conv2] m = Conv (x, w2)
          [att] s = Sigmoid(m)
          [mul] b = Mul(a, s)
          [head] y = Conv(b, wh)
        }""",
        {"w1": (8, 3, 1, 1), "w2": (1, 3, 1, 1), "wh": (4, 8, 1, 1)},
    )
    assert structure(model) == [(8, True), (1, False), (4, False)]
    prune_exact(model, {0: [0, 2, 4, 6]})
