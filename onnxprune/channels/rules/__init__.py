"""Channel rules: one small class per op family, registered explicitly by op type.

The channel graph is derived from these rules alone. ``RULE_MODULES`` lists the rule files;
importing them fills the registry, and registering an op type twice fails at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from onnxprune.channels.rules.base import Rule, WeightOp

_REGISTRY: dict[str, Rule] = {}
_loaded = False  # True once every rule module has been imported

RULE_MODULES = (
    "conv",
    "gemm",
    "matmul",
    "norm",
    "elementwise",
    "pool",
    "concat_split",
    "reshape",
    "layout",
    "reduce",
    "shape_ops",
    "recurrent",
    "quant",
    "barriers",
)


def register(*op_types: str) -> Callable[[type[Rule]], type[Rule]]:
    """Class decorator registering a rule instance for each ONNX op type (default domain)."""

    def wrap(cls: type[Rule]) -> type[Rule]:
        # Check every op first, so that a clash registers none of them.
        for op in op_types:
            if op in _REGISTRY:
                raise RuntimeError(f"channel rule for {op} registered twice")
        for op in op_types:
            _REGISTRY[op] = cls()
        cls.op_types = tuple(op_types)
        return cls

    return wrap


def rule_for(op_type: str, domain: str = "") -> Rule | None:
    """Return the rule of an op, or None when it has none (the group becomes a barrier)."""
    if domain not in ("", "ai.onnx"):
        return None
    return registry().get(op_type)


def weight_op(op_type: str, domain: str | None = "") -> WeightOp | None:
    """Return what an op with weights means (MACs, cost axes, gradient, trainable inputs).

    Args:
        op_type: ONNX op type.
        domain: its domain ("", "ai.onnx" or None for the default domain).

    Returns:
        The description on the op's rule, or None for an op without weights or without a rule.

    """
    rule = rule_for(op_type, domain or "")
    return None if rule is None else rule.weight_op(op_type)


def registry() -> dict[str, Rule]:
    """Return the op type -> rule mapping, importing every rule module once."""
    # Not ``if not _REGISTRY``: importing one rule module directly (for its op lists) fills
    # the registry partly, and the other modules must still be imported.
    global _loaded
    if not _loaded:
        for name in RULE_MODULES:
            importlib.import_module(f"onnxprune.channels.rules.{name}")
        _loaded = True
    return _REGISTRY
