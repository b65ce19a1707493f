"""The shim's op table: torch kernels keyed by (domain, op type, since_version).

A kernel is a plain function named after its ONNX op. Its positional parameters are the node's
inputs (``None`` for an omitted optional input); its keyword-only parameters are the ONNX
attributes, with the spec's defaults. A kernel returns a tensor or a tuple of tensors (one per
output; extra trailing results are ignored when the node asks for fewer outputs).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from onnxprune.errors import OnnxPruneError, UnsupportedOpError

__all__ = ["Kernel", "lookup", "op", "registered"]

KernelFn = Callable[..., Any]
F = TypeVar("F", bound=KernelFn)

DEFAULT_DOMAIN = ""
_ALIASES = {"ai.onnx": DEFAULT_DOMAIN}


@dataclass(frozen=True)
class Kernel:
    """One registered kernel.

    Attributes:
        domain: ONNX domain ("" for ai.onnx).
        op_type: ONNX op type.
        since_version: first opset of the domain this kernel implements.
        fn: the torch function.
        n_out: whether ``fn`` takes the number of requested outputs as keyword ``n_out``.
        attrs: the ONNX attributes ``fn`` accepts, with their spec defaults.
        n_inputs: how many inputs ``fn`` takes (``None`` when variadic).
        frozen: input positions that hold statistics or shape values (BatchNormalization's
            running mean and variance, Resize's scales): constants read there are never
            trained (the shim gives them ``requires_grad=False``).

    """

    domain: str
    op_type: str
    since_version: int
    fn: KernelFn
    n_out: bool
    attrs: dict[str, Any]
    n_inputs: int | None
    frozen: tuple[int, ...] = ()


_TABLE: dict[tuple[str, str, int], Kernel] = {}


def normalize_domain(domain: str) -> str:
    """Return the canonical spelling of an ONNX domain ("ai.onnx" -> "")."""
    return _ALIASES.get(domain, domain)


def op(
    op_type: str,
    *since: int,
    domain: str = DEFAULT_DOMAIN,
    n_out: bool = False,
    frozen: tuple[int, ...] = (),
) -> Callable[[F], F]:
    """Register the decorated function as the kernel of ``op_type`` from each ``since`` opset.

    Args:
        op_type: ONNX op type, e.g. ``"Conv"``.
        *since: opset versions (of ``domain``) from which this function is the kernel.
        domain: ONNX domain, "" for the default domain.
        n_out: pass the number of outputs the node asks for as keyword ``n_out``.
        frozen: input positions whose constants must never be trained (see ``Kernel``).

    Returns:
        A decorator that registers and returns the function unchanged.

    Raises:
        OnnxPruneError: a key is registered twice (at import time).

    """

    def deco(fn: F) -> F:
        for version in since or (1,):
            key = (normalize_domain(domain), op_type, int(version))
            if key in _TABLE:
                raise OnnxPruneError(
                    f"shim kernel for {key} registered twice ({_TABLE[key].fn.__qualname__} and "
                    f"{fn.__qualname__}); remove one of them"
                )
            _TABLE[key] = _make_kernel(key, fn, n_out, tuple(frozen))
        return fn

    return deco


def _make_kernel(
    key: tuple[str, str, int], fn: KernelFn, n_out: bool, frozen: tuple[int, ...]
) -> Kernel:
    params = inspect.signature(fn).parameters.values()
    attrs = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name != "n_out"}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    n_inputs = None if variadic else len(positional)
    return Kernel(key[0], key[1], key[2], fn, n_out, attrs, n_inputs, frozen)


def lookup(domain: str, op_type: str, opset: int, *, node: str = "?") -> Kernel:
    """Return the kernel with the highest ``since_version`` not above ``opset``.

    Args:
        domain: the node's domain.
        op_type: the node's op type.
        opset: the model's opset version for that domain.
        node: the node's name, for the error message.

    Returns:
        The kernel.

    Raises:
        UnsupportedOpError: no kernel exists for that op at that opset.

    """
    dom = normalize_domain(domain)
    versions = [k[2] for k in _TABLE if k[0] == dom and k[1] == op_type and k[2] <= opset]
    if not versions:
        raise UnsupportedOpError(
            f"node '{node}': op '{op_type}' (domain '{dom or 'ai.onnx'}', opset {opset}) has no "
            "torch-shim kernel, so onnxprune cannot run this model. To fix this, add a kernel "
            "in onnxprune/shim/ops/ or export the model without this op"
        )
    return _TABLE[(dom, op_type, max(versions))]


def registered() -> list[Kernel]:
    """Return every registered kernel, sorted by (domain, op type, since_version)."""
    return [_TABLE[k] for k in sorted(_TABLE)]
