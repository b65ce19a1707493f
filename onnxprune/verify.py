"""Postconditions of every written model: checker, strict shapes, onnxruntime, same I/O."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from onnxprune import ir
from onnxprune.errors import CannotPruneError, VerificationError

log = logging.getLogger(__name__)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def verify(
    model: ir.ModelProto,
    original: ir.ModelProto,
    shapes: Mapping[str, tuple[int, ...]],
) -> ir.ModelProto:
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
    large = ir.heavy(model)
    inferred = _checked(model, light=large)
    if large:  # inferred without the weights: put the shapes on the model instead
        inferred = ir.adopt_shapes(model, inferred)
    _same_io(inferred, original)
    _run(inferred, shapes)
    return inferred


def verify_saved(
    path: Path,
    original: ir.ModelProto,
    shapes: Mapping[str, tuple[int, ...]],
) -> ir.ModelProto:
    """:func:`verify` a model saved with its weights in a data file (``ir.save_external``).

    The checks run on the file and its weightless skeleton and onnxruntime opens the file,
    so the weights are held once (by onnxruntime) while it runs them; they are read back
    into the returned model only once every check passed. For large models whose caller
    can drop the model before verifying it (surgery does).

    Returns:
        The model read back from ``path``, with re-inferred ``value_info``.

    Raises:
        VerificationError: a check failed; the message names the stage and the node.

    """
    skeleton = ir.load_model(path, weights=False)
    shaped = _checked(skeleton, light=True, path=path)  # weightless too
    ir.adopt_shapes(skeleton, shaped)
    _same_io(skeleton, original)
    _run(skeleton, shapes, source=path)
    return ir.adopt_shapes(ir.load_model(path), shaped)


def _checked(model: ir.ModelProto, *, light: bool, path: Path | None = None) -> ir.ModelProto:
    """Run the checker and strict shape inference; return the inferred copy.

    The checker reads ``path`` (where the model is saved) when given; the copy holds no
    weights when ``light``.
    """
    try:
        if path is not None:
            ir.check_model(path, full_check=True)
        elif light:
            ir.check_light(model)
        else:
            ir.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        raise VerificationError(f"pruned model fails onnx.checker: {_first_line(e)}") from e
    try:
        return ir.infer_shapes(model, strict=True, light=light)
    except Exception as e:  # noqa: BLE001
        raise VerificationError(f"pruned model fails strict shape inference: {_first_line(e)}") from e


def reweighted(model: ir.ModelProto, verified: ir.ModelProto) -> ir.ModelProto:
    """Return ``model`` when it is ``verified`` with other weight values; raise otherwise.

    Retraining (distillation) writes new values into the same tensors: the graph, the
    tensors' names, element types and shapes and the shape information stay those of the
    verified model, so every check of :func:`verify` holds for it as it is, and it is not
    run again.

    Raises:
        VerificationError: anything but a weight's values differs.

    """
    if _skeleton(model) != _skeleton(verified):
        raise VerificationError("retraining changed more than the weights' values (graph, "
                                "tensor names, types or shapes); this is a bug - please "
                                "report it")
    return model


def _skeleton(model: ir.ModelProto) -> tuple[object, ...]:
    """Return the model less its weights' values: nodes, tensor names, types, shapes."""
    g = model.graph

    def node(n: ir.NodeProto) -> tuple[object, ...]:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):  # its value may be trained
            attrs: tuple[object, ...] = tuple(
                (a.name, a.t.data_type, tuple(a.t.dims)) if a.HasField("t") else (a.name,)
                for a in n.attribute)
        else:
            attrs = tuple(a.SerializeToString() for a in n.attribute)
        return n.op_type, n.domain, n.name, tuple(n.input), tuple(n.output), attrs

    return (
        tuple(node(n) for n in g.node),
        tuple((t.name, t.data_type, tuple(t.dims)) for t in g.initializer),
        tuple(v.SerializeToString() for v in (*g.input, *g.output, *g.value_info)),
        tuple(o.SerializeToString() for o in model.opset_import),
        model.ir_version,
    )


def _same_io(model: ir.ModelProto, original: ir.ModelProto) -> None:
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


def _custom_ops(model: ir.ModelProto) -> list[str]:
    """Return ``domain::op`` of every node outside the ONNX domains, in graph order."""
    found = [f"{n.domain}::{n.op_type}" for n in model.graph.node
             if n.domain not in ("", "ai.onnx", "ai.onnx.ml")]
    return list(dict.fromkeys(found))


def _session(model: ir.ModelProto | Path) -> object:
    """Open an onnxruntime session (a large model goes through a temp external-data file)."""
    from onnxprune.bench import make_session

    return make_session(model)


def _run(model: ir.ModelProto, shapes: Mapping[str, tuple[int, ...]], *,
         source: Path | None = None) -> None:
    """Run ``model`` (opened from ``source`` when given) once on random inputs."""
    try:
        sess = _session(model if source is None else source)
        feeds = {}
        rng = np.random.default_rng(0)
        for spec in ir.io_specs(model):
            feeds[spec.name] = rng.standard_normal(shapes[spec.name]).astype(spec.dtype)
        outs = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
        custom = _custom_ops(model)
        if custom:
            raise CannotPruneError(
                f"onnxruntime cannot run the model ({_first_line(e)}), so the pruned model "
                f"cannot be verified: it uses custom op(s) {custom}; nothing was written - "
                "prune a model without custom ops, or use 'onnxprune inspect' only"
            ) from e
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
