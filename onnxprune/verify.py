"""Postconditions of every written model: checker, strict shapes, onnxruntime, same I/O."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import onnx

from onnxprune import ir
from onnxprune.errors import VerificationError

log = logging.getLogger(__name__)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def verify(
    model: onnx.ModelProto,
    original: onnx.ModelProto,
    shapes: Mapping[str, tuple[int, ...]],
) -> onnx.ModelProto:
    """Check a pruned model and return it with fresh shape information.

    Args:
        model: the pruned model.
        original: the model it came from (its inputs and outputs are the contract).
        shapes: concrete input shapes to run onnxruntime with.

    Returns:
        ``model`` with re-inferred ``value_info``.

    Raises:
        VerificationError: a check failed; the message names the stage and the node.
    """
    try:
        onnx.checker.check_model(model, full_check=model.ByteSize() < 2**31 - 1)
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        raise VerificationError(f"pruned model fails onnx.checker: {_first_line(e)}") from e
    try:
        inferred = ir.infer_shapes(model, strict=True)
    except Exception as e:  # noqa: BLE001
        raise VerificationError(f"pruned model fails strict shape inference: {_first_line(e)}") from e
    _same_io(inferred, original)
    _run(inferred, shapes)
    return inferred


def _same_io(model: onnx.ModelProto, original: onnx.ModelProto) -> None:
    for outputs in (False, True):
        got = ir.io_specs(model, outputs=outputs)
        want = ir.io_specs(original, outputs=outputs)
        if [(s.name, s.dtype) for s in got] != [(s.name, s.dtype) for s in want]:
            kind = "outputs" if outputs else "inputs"
            raise VerificationError(f"pruned model changed the graph {kind}: {got} != {want}")
        for g, w in zip(got, want):
            if list(g.shape) != list(w.shape):
                raise VerificationError(
                    f"pruned model changed the shape of '{g.name}': {list(g.shape)} != "
                    f"{list(w.shape)}"
                )


def _run(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]]) -> None:
    from onnxprune.bench import make_session

    try:
        sess = make_session(model)
        feeds = {}
        rng = np.random.default_rng(0)
        for spec in ir.io_specs(model):
            feeds[spec.name] = rng.standard_normal(shapes[spec.name]).astype(spec.dtype)
        outs = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
        raise VerificationError(f"pruned model fails in onnxruntime: {_first_line(e)}") from e
    for spec, out in zip(ir.io_specs(model, outputs=True), outs):
        expect = [d for d in spec.shape]
        for d, e in zip(out.shape, expect):
            if isinstance(e, int) and e > 0 and d != e:
                raise VerificationError(
                    f"pruned model's output '{spec.name}' has shape {list(out.shape)} in "
                    f"onnxruntime, expected {expect}"
                )
    log.debug("verified: %d outputs", len(outs))
