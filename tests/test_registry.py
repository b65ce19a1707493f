"""The channel-rule registry: one rule per op, loaded whole, matched by shim kernels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import onnxprune.shim.ops  # noqa: F401 - registers every shim kernel
from onnxprune.channels import rules
from onnxprune.channels.rules import RULE_MODULES, register, registry, rule_for, weight_op
from onnxprune.channels.rules.barriers import REASONS, BarrierRule
from onnxprune.channels.rules.base import Rule, WeightOp
from onnxprune.channels.rules.elementwise import NARY, UNARY, ElementwiseRule
from onnxprune.metrics import node_macs
from onnxprune.shim import registered

RULES_DIR = Path(rules.__file__).parent
TESTS_DIR = Path(__file__).parent
SHIM_OPS = {k.op_type for k in registered() if k.domain == ""}
# Ops with a channel rule whose shim kernel is still missing (remove an entry once it exists).
KNOWN_MISSING_KERNELS = {"GlobalLpPool", "LpPool", "Hardmax"}


def test_registering_an_op_twice_raises() -> None:
    registry()
    with pytest.raises(RuntimeError, match="channel rule for Relu registered twice"):
        register("Relu")(type("AnotherRelu", (Rule,), {}))


def test_failed_registration_leaves_the_registry_unchanged() -> None:
    before = dict(registry())
    with pytest.raises(RuntimeError, match="registered twice"):
        register("NotAnOnnxOp", "Conv")(type("Clash", (Rule,), {}))
    assert registry() == before


def test_registry_is_complete_after_importing_one_rule_module_first() -> None:
    # Importing a rule module for its op lists must not leave the other modules unloaded.
    code = (
        "import onnxprune.channels.rules.barriers\n"
        "from onnxprune.channels.rules import registry\n"
        "print(sorted(registry()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(registry()))


@pytest.mark.parametrize("op", sorted(REASONS))
def test_barrier_ops_use_the_barrier_rule(op: str) -> None:
    assert isinstance(rule_for(op), BarrierRule)


@pytest.mark.parametrize("op", sorted({*UNARY, *NARY}))
def test_elementwise_ops_use_the_elementwise_rule(op: str) -> None:
    assert isinstance(rule_for(op), ElementwiseRule)


@pytest.mark.parametrize("domain", ["com.microsoft", "com.example"])
def test_other_domains_have_no_rule(domain: str) -> None:
    assert rule_for("Conv", domain) is None
    assert rule_for("Conv", "ai.onnx") is rule_for("Conv", "")


def _kernel_cases() -> list[object]:
    cases = []
    for op in sorted(set(registry()) - set(REASONS)):
        marks = ()
        if op in KNOWN_MISSING_KERNELS:
            marks = (pytest.mark.xfail(strict=True, reason="shim kernel not written yet"),)
        cases.append(pytest.param(op, id=op, marks=marks))
    return cases


@pytest.mark.parametrize("op", _kernel_cases())
def test_every_op_with_a_channel_rule_has_a_shim_kernel(op: str) -> None:
    assert op in SHIM_OPS


def test_rule_modules_match_the_rule_files() -> None:
    files = {p.stem for p in RULES_DIR.glob("*.py")} - {"__init__", "base"}
    assert files == set(RULE_MODULES)


@pytest.mark.parametrize("module", RULE_MODULES)
def test_rule_file_is_small(module: str) -> None:
    lines = (RULES_DIR / f"{module}.py").read_text().count("\n")
    assert lines <= 200


@pytest.mark.parametrize("module", RULE_MODULES)
def test_rule_file_has_its_test_file(module: str) -> None:
    assert (TESTS_DIR / f"test_rules_{module}.py").is_file()


# What the parallel op lists said before the ops' meaning moved onto their rules (issue 14).
MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN",
           "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul"}
COST_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN"}
TRAINABLE = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (0, 1),
    "BatchNormalization": (1, 2), "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2), "GroupNormalization": (1, 2), "PRelu": (1,),
}


def _weight_ops() -> dict[str, WeightOp]:
    return {op: w for op in registry() if (w := weight_op(op)) is not None}


@pytest.mark.parametrize("op", sorted(_weight_ops()))
def test_every_op_with_a_weight_description_has_a_shim_kernel(op: str) -> None:
    assert op in SHIM_OPS


@pytest.mark.parametrize("op", sorted(_weight_ops()))
def test_costed_or_analysed_ops_have_a_macs_function(op: str) -> None:
    w = _weight_ops()[op]
    if w.axes is not None or w.gradient is not None:
        assert w.macs is not None


def test_ops_with_macs_are_the_former_mac_ops() -> None:
    assert {op for op, w in _weight_ops().items() if w.macs is not None} == MAC_OPS


def test_ops_in_the_cost_model_are_the_former_cost_ops() -> None:
    assert {op for op, w in _weight_ops().items() if w.axes is not None} == COST_OPS


def test_trainable_inputs_are_the_former_table() -> None:
    got = {op: w.trainable for op, w in _weight_ops().items() if w.trainable}
    assert got == TRAINABLE


@pytest.mark.parametrize(("op", "rank", "group", "kind"), [
    ("Conv", 4, 1, "unfold"), ("Conv", 3, 1, "unfold"), ("Conv", 5, 1, "grouped"),
    ("Conv", 4, 2, None), ("ConvTranspose", 4, 1, "grouped"), ("ConvTranspose", 4, 2, None),
    ("Gemm", 2, 1, "gemm"), ("MatMul", 2, 1, "matmul"), ("MatMul", 3, 1, None),
    ("LSTM", 3, 1, "recurrent"), ("GRU", 3, 1, "recurrent"), ("RNN", 3, 1, "recurrent"),
])  # fmt: skip
def test_gradient_kind_comes_from_the_rule(op: str, rank: int, group: int, kind: str | None
                                           ) -> None:
    gradient = _weight_ops()[op].gradient
    assert gradient is not None and gradient(rank, group) == kind


@pytest.mark.parametrize(("op", "attrs", "ins", "out", "macs"), [
    ("Conv", {}, [(1, 3, 8, 8), (4, 3, 3, 3)], (1, 4, 8, 8), 4 * 64 * 27),
    ("Conv", {}, [(1, 3, 8, 8), (4, 3, 3, 3)], None, 0),
    ("ConvTranspose", {}, [(1, 3, 4, 4), (3, 2, 2, 2)], (1, 2, 8, 8), 3 * 16 * 8),
    ("Gemm", {"transA": 1}, [(5, 2), (5, 7)], (2, 7), 14 * 5),
    ("MatMul", {}, [(2, 3, 5), (5, 7)], (2, 3, 7), 42 * 5),
    ("QLinearConv", {}, [(1, 3, 8, 8), (), (), (4, 3, 3, 3)], (1, 4, 8, 8), 4 * 64 * 27),
    ("MatMulInteger", {}, [(2, 5), (5, 7)], (2, 7), 14 * 5),
    ("LSTM", {}, [(7, 2, 8), (1, 12, 8)], (7, 1, 2, 3), 7 * 2 * 12 * (8 + 3)),
    ("BatchNormalization", {}, [(1, 3, 8, 8), (3,)], (1, 3, 8, 8), 0),
])  # fmt: skip
def test_node_macs_from_the_rule(op: str, attrs: dict[str, int], ins: list[tuple[int, ...]],
                                 out: tuple[int, ...] | None, macs: int) -> None:
    assert node_macs(op, attrs, ins, out) == macs


def test_weight_op_needs_the_default_domain() -> None:
    assert weight_op("Conv", None) is weight_op("Conv", "ai.onnx") is weight_op("Conv")
    assert weight_op("Conv", "com.microsoft") is None
    assert weight_op("Relu") is None


@pytest.mark.parametrize("op", sorted(_weight_ops()))
def test_compensated_ops_say_how_their_bias_folds_and_where_they_refit(op: str) -> None:
    # The analysis gives an op with a gradient kind a Gram, so compensation folds into it
    # (fold_bias) and refinement asks where to refit it (layout): both on the rule.
    w = _weight_ops()[op]
    declared = (w.fold_bias is not None, w.layout is not None)
    assert declared == ((True, True) if w.gradient is not None else (False, False))


def test_compensation_and_refinement_have_no_op_switch_of_their_own() -> None:
    import inspect

    from onnxprune.pruning import intercept, refine

    for fn in (intercept.fold_into_bias, refine._layout):
        source = inspect.getsource(fn)
        assert "weight_op(" in source
        assert not any(f'"{op}"' in source for op in ("Conv", "Gemm", "MatMul", "LSTM"))
