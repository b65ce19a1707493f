"""The channel-rule registry: one rule per op, loaded whole, matched by shim kernels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import onnxprune.shim.ops  # noqa: F401 - registers every shim kernel
from onnxprune.channels import rules
from onnxprune.channels.rules import RULE_MODULES, register, registry, rule_for
from onnxprune.channels.rules.barriers import REASONS, BarrierRule
from onnxprune.channels.rules.base import Rule
from onnxprune.channels.rules.elementwise import NARY, UNARY, ElementwiseRule
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
