"""Loading ONNX files: external data, opset checks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from onnxprune.errors import InputError
from onnxprune.ir import limits
from onnxprune.ir.limits import MAX_OPSET, MIN_OPSET

log = logging.getLogger(__name__)

def load_model(path: str | os.PathLike[str], *, weights: bool = True) -> onnx.ModelProto:
    """Load an ONNX model with its external data, refusing anything suspicious.

    Args:
        path: the ``.onnx`` file.
        weights: load the external data; False leaves those tensors referring to their
            files (a weightless model that the checker and shape inference accept).

    Returns:
        The model, external data loaded into memory unless ``weights`` is False.

    Raises:
        InputError: the path is missing, a directory, empty, not ONNX, its external data is
            missing or points outside the model's folder, or its opset is above ``MAX_OPSET``
            or below ``MIN_OPSET`` and cannot be converted (older models are converted to
            ``MIN_OPSET`` with ``onnx.version_converter``, with a warning).

    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; pass the path of an .onnx model")
    if p.is_dir():
        raise InputError(f"{p}: is a directory; pass the path of an .onnx model file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty; re-export or re-download the model")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as e:
        raise InputError(
            f"{p}: not a readable ONNX model ({type(e).__name__}); the file may be truncated "
            "or not ONNX - re-export or re-download it"
        ) from e
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{p}: not an ONNX model (no graph found); pass an exported .onnx file")
    if weights:
        _load_external(model, p.parent.resolve(), p)
    return _check_opset(model, p)


def _load_external(model: onnx.ModelProto, base: Path, p: Path) -> None:
    from onnx.external_data_helper import (
        load_external_data_for_model,
        uses_external_data,
    )

    external = [t for t in all_tensors(model) if uses_external_data(t)]
    for t in external:
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (base / loc).resolve()
        if base not in target.parents:
            raise InputError(
                f"{p}: external data of tensor '{t.name}' points outside the model's folder "
                f"('{loc}'); refusing to read it - move the data file next to the model"
            )
        if not target.is_file():
            raise InputError(
                f"{p}: external data file '{loc}' of tensor '{t.name}' is missing; copy it "
                "next to the model"
            )
    try:
        load_external_data_for_model(model, str(base))
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: cannot read external data ({e}); check the data files") from e
    for t in external:  # loaded as if it had been inline (onnx sets it to DEFAULT explicitly)
        t.ClearField("data_location")


def all_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Return every tensor of the model: initializers and Constant-node values."""
    out = list(model.graph.initializer)
    for node in model.graph.node:
        out += [a.t for a in node.attribute if a.HasField("t")]
    return out


def _check_opset(model: onnx.ModelProto, p: Path) -> onnx.ModelProto:
    """Refuse opsets above the supported range; convert older ones up to ``MIN_OPSET``."""
    version = opset_version(model)
    if version > MAX_OPSET:
        raise InputError(
            f"{p}: default-domain opset {version} is newer than this onnxprune supports "
            f"(opsets {MIN_OPSET}..{MAX_OPSET}); re-export the model with opset {MAX_OPSET} "
            "or lower"
        )
    if version >= MIN_OPSET:
        return model
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, MIN_OPSET)
        onnx.checker.check_model(converted)
    except Exception as e:  # noqa: BLE001 - the converter raises several types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(
            f"{p}: default-domain opset {version} is older than this onnxprune supports "
            f"(opsets {MIN_OPSET}..{MAX_OPSET}) and onnx.version_converter could not convert "
            f"it ({first}); re-export the model with opset {MIN_OPSET} or newer"
        ) from e
    log.warning(
        "%s: converted from opset %d to opset %d (the oldest supported; supported range "
        "%d..%d) with onnx.version_converter; the output uses opset %d",
        p, version, MIN_OPSET, MIN_OPSET, MAX_OPSET, MIN_OPSET,
    )
    return converted


def opset_version(model: onnx.ModelProto) -> int:
    """Return the model's default-domain (ai.onnx) opset version."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def heavy(model: onnx.ModelProto) -> bool:
    """Tell whether ``model`` is too large to be handed around serialised or checked whole.

    Over :data:`limits.HEAVY_BYTES` (or a lower ``LIGHT_BYTES``/``EXTERNAL_DATA_BYTES``, which
    already treat it as large), onnxruntime opens it from a temporary external-data copy,
    verification checks a weightless copy, and ``prune`` times it from files.
    """
    return model_bytes(model) > min(limits.HEAVY_BYTES, limits.LIGHT_BYTES,
                                    limits.EXTERNAL_DATA_BYTES)


def model_bytes(model: onnx.ModelProto) -> int:
    """Return the size the model takes when serialised (weights included).

    ``ModelProto.ByteSize`` fails beyond protobuf's 2 GB limit; this counts the tensors one
    at a time and the rest of the model without them.
    """
    tensors = sum(t.ByteSize() for t in all_tensors(model))
    if tensors <= limits.LIGHT_TENSOR_BYTES * 1024:
        return int(model.ByteSize())
    rest = sum(n.ByteSize() for n in model.graph.node if not has_tensor_attr(n))
    rest += sum(v.ByteSize() for v in [*model.graph.input, *model.graph.output,
                                       *model.graph.value_info])
    return int(tensors + rest)


def has_tensor_attr(node: onnx.NodeProto) -> bool:
    """Return whether the node carries a tensor attribute (a Constant's value)."""
    return any(a.HasField("t") for a in node.attribute)


def file_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Return the ``metadata_props`` of an ``.onnx`` file, without reading its external data."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
