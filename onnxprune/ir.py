"""The protobuf boundary: loading, shape handling and atomic saving of ONNX models.

Everything above this module speaks in onnx-graphsurgeon graph/node/tensor terms or in plain
numpy; only this module (and ``verify``) touch ``onnx`` protobuf APIs.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from google.protobuf.message import DecodeError, Message

from onnxprune import symbolic_shapes
from onnxprune.errors import InputError

log = logging.getLogger(__name__)

_TWO_GB = 2**31 - 1
EXTERNAL_DATA_BYTES = _TWO_GB
"""Models larger than this are written (and verified) with their weights in a ``.data`` file."""
LIGHT_BYTES = 2**28
"""Above this size, shape inference and the checker work on a copy without the weights."""
_LIGHT_TENSOR_BYTES = 1024
STRIPPED = "__onnxprune_weights_not_loaded__"
MIN_OPSET = 7
MAX_OPSET = 23


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype and shape of a graph input or output (dims may be str or -1)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str, ...]


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX model with its external data, refusing anything suspicious.

    Args:
        path: the ``.onnx`` file.

    Returns:
        The model, external data loaded into memory.

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
    _load_external(model, p.parent.resolve(), p)
    return _check_opset(model, p)


def _load_external(model: onnx.ModelProto, base: Path, p: Path) -> None:
    from onnx.external_data_helper import (
        load_external_data_for_model,
        uses_external_data,
    )

    for t in _all_tensors(model):
        if not uses_external_data(t):
            continue
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


def _all_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
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


def io_specs(model: onnx.ModelProto, *, outputs: bool = False) -> list[TensorSpec]:
    """Return the graph inputs (not initializers) or outputs as ``TensorSpec``s."""
    inits = {t.name for t in model.graph.initializer}
    values = model.graph.output if outputs else model.graph.input
    specs = []
    for v in values:
        if v.name in inits:
            continue
        tt = v.type.tensor_type
        dims: list[int | str] = []
        for d in tt.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or -1))
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type) if tt.elem_type else np.float32
        specs.append(TensorSpec(v.name, np.dtype(dtype), tuple(dims)))
    return specs


def parse_input_shapes(text: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    """Parse ``name:1,3,224,224`` items (one per input) into a mapping.

    Raises:
        InputError: an item is not of that form.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in text or []:
        name, sep, dims = item.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise InputError(
                f"--input-shapes '{item}': expected NAME:D1,D2,... with positive integers, "
                "e.g. images:1,3,224,224"
            )
        shapes[name] = shape
    return shapes


def resolve_input_shapes(
    model: onnx.ModelProto, given: Mapping[str, Sequence[int]] | None = None
) -> dict[str, tuple[int, ...]]:
    """Decide a concrete shape for every graph input.

    A dynamic leading (batch) dim defaults to 1; any other dynamic dim must be given.

    Raises:
        InputError: an unknown input name was given, a shape has the wrong rank, or a
            non-batch dim is dynamic and not given.
    """
    given = dict(given or {})
    specs = io_specs(model)
    names = [s.name for s in specs]
    for name in given:
        if name not in names:
            raise InputError(
                f"--input-shapes names '{name}', which is not a model input; inputs are: "
                + ", ".join(names)
            )
    out: dict[str, tuple[int, ...]] = {}
    for s in specs:
        if s.name in given:
            shape = tuple(int(d) for d in given[s.name])
            if len(shape) != len(s.shape):
                raise InputError(
                    f"--input-shapes gives {len(shape)} dims for input '{s.name}', which has "
                    f"rank {len(s.shape)} {list(s.shape)}"
                )
            fixed = [d for d, m in zip(shape, s.shape) if isinstance(m, int) and m > 0 and d != m]
            if fixed:
                raise InputError(
                    f"--input-shapes {s.name}:{','.join(map(str, shape))} contradicts the "
                    f"model's fixed shape {list(s.shape)}"
                )
            out[s.name] = shape
            continue
        dims = []
        for i, d in enumerate(s.shape):
            if isinstance(d, int) and d > 0:
                dims.append(d)
            elif i == 0:
                dims.append(1)
            else:
                example = ",".join(str(x) if isinstance(x, int) and x > 0 else "?" for x in s.shape)
                raise InputError(
                    f"input '{s.name}' has dynamic dims {list(s.shape)}; pass "
                    f"--input-shapes {s.name}:{example} with numbers for every '?'"
                )
        out[s.name] = tuple(dims)
    return out


def with_input_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> onnx.ModelProto:
    """Return ``model`` with the given static input shapes: a copy when a shape changes.

    When every input already has the given shape, ``model`` itself is returned (no copy of
    the weights); callers must not edit the result.
    """
    if all(
        [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        == [int(n) for n in shapes[v.name]]
        for v in model.graph.input
        if v.name in shapes
    ):
        return model
    m = copy.deepcopy(model)
    for v in m.graph.input:
        if v.name not in shapes:
            continue
        dims = v.type.tensor_type.shape.dim
        for d, n in zip(dims, shapes[v.name]):
            d.Clear()
            d.dim_value = int(n)
    return m


def infer_shapes(model: onnx.ModelProto, *, strict: bool = False) -> onnx.ModelProto:
    """Run ONNX shape inference (with data propagation) and return the inferred copy.

    Unless ``strict``, shapes it leaves unknown are filled in by ``symbolic_shapes``.

    Models over ``LIGHT_BYTES`` are inferred on a copy without their weights (shape inference
    needs only the weights' dims), so the returned model holds no weights; the ``Shape``
    folding pass is skipped for them.
    """
    if model_bytes(model) > LIGHT_BYTES:
        m = light_copy(model)
        del m.graph.value_info[:]
        light = onnx.shape_inference.infer_shapes(
            m, check_type=True, strict_mode=strict, data_prop=True
        )
        return light if strict else symbolic_shapes.fill_missing(light)
    m = copy.deepcopy(model)
    del m.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(
        m, check_type=True, strict_mode=strict, data_prop=True
    )
    return inferred if strict else symbolic_shapes.fill_missing(_add_folded_shapes(inferred))


def adopt_shapes(model: onnx.ModelProto, inferred: onnx.ModelProto) -> onnx.ModelProto:
    """Give ``model`` the value_info and graph output types of ``inferred``; return ``model``."""
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    for mine, theirs in zip(model.graph.output, inferred.graph.output, strict=True):
        mine.type.CopyFrom(theirs.type)
    return model


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy ``model`` without the data of its larger tensors (dims and types are kept).

    The stripped tensors are marked as external data at a location that does not exist, so
    ``onnx.checker`` and shape inference accept the copy; it cannot be run. ``model`` is not
    changed and its weights are never copied.
    """
    return _skeleton(model, lambda t: [("location", STRIPPED)])


def _skeleton(
    model: onnx.ModelProto,
    external: Callable[[onnx.TensorProto], Sequence[tuple[str, str]]],
) -> onnx.ModelProto:
    """Copy ``model`` field by field; each larger tensor becomes an external reference.

    ``external(tensor)`` returns the tensor's ``external_data`` entries (and may write its
    data somewhere). Field by field because the protobuf runtime (upb) never gives back the
    memory of a cleared field: moving weights out and back would hold them twice.
    """
    skel = onnx.ModelProto()
    _copy_fields(skel, model, skip=("graph",))
    graph = skel.graph
    _copy_fields(graph, model.graph, skip=("initializer", "node"))
    for t in model.graph.initializer:
        _copy_tensor(graph.initializer.add(), t, external)
    for node in model.graph.node:
        new = graph.node.add()
        if not _has_tensor_attr(node):
            new.CopyFrom(node)
            continue
        _copy_fields(new, node, skip=("attribute",))
        for attr in node.attribute:
            new_attr = new.attribute.add()
            if not attr.HasField("t"):
                new_attr.CopyFrom(attr)
                continue
            _copy_fields(new_attr, attr, skip=("t",))
            _copy_tensor(new_attr.t, attr.t, external)
    return skel


def _copy_fields(dst: Message, src: Message, *, skip: Sequence[str]) -> None:
    for field, value in src.ListFields():
        if field.name in skip:
            continue
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:  # protobuf < 5.28
            repeated = field.label == field.LABEL_REPEATED
        if repeated:
            getattr(dst, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def _copy_tensor(
    dst: onnx.TensorProto,
    t: onnx.TensorProto,
    external: Callable[[onnx.TensorProto], Sequence[tuple[str, str]]],
) -> None:
    if t.data_location == onnx.TensorProto.EXTERNAL or t.ByteSize() <= _LIGHT_TENSOR_BYTES:
        dst.CopyFrom(t)
        return
    dst.name, dst.data_type = t.name, t.data_type
    dst.dims.extend(t.dims)
    if t.doc_string:
        dst.doc_string = t.doc_string
    dst.data_location = onnx.TensorProto.EXTERNAL
    for key, value in external(t):
        entry = dst.external_data.add()
        entry.key, entry.value = key, value


def _add_folded_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add the static shapes found once ``Shape`` subgraphs are folded (on a copy).

    Before Reshape-14, ONNX shape inference ignores a shape computed from ``Shape`` ops
    (``x.view(x.size(0), -1)`` exported with a dynamic batch), leaving every tensor after it
    unknown. With static input shapes those computations are constants: fold them in a
    throwaway copy, infer again, and keep only the static shapes the first pass missed.
    """
    g = model.graph
    static = {v.name for v in [*g.input, *g.value_info, *g.output] if _is_static(v)}
    missing = {o for n in g.node for o in n.output if o and o not in static}
    if not missing or not any(n.op_type == "Shape" for n in g.node):
        return model
    import onnxruntime as ort

    # graphsurgeon folds with onnxruntime sessions it creates without options; keep their
    # optimizer warnings (e.g. UnsqueezeElimination) off the user's terminal.
    ort.set_default_logger_severity(3)
    graph = gs.import_onnx(model)
    graph.fold_constants(fold_shapes=True, partitioning=None, error_ok=True).cleanup()
    try:
        folded = onnx.shape_inference.infer_shapes(
            gs.export_onnx(graph, do_type_check=False), data_prop=True
        )
    except Exception:  # noqa: BLE001 - best effort: the first pass's shapes stand
        log.debug("shape inference after folding Shape ops failed", exc_info=True)
        return model
    outputs = {v.name: v for v in g.output}
    for v in [*folded.graph.value_info, *folded.graph.output]:
        if v.name in missing and _is_static(v):
            if v.name in outputs:
                outputs[v.name].type.CopyFrom(v.type)
            else:
                g.value_info.append(v)
    return model


def _is_static(v: onnx.ValueInfoProto) -> bool:
    tt = v.type.tensor_type
    return tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim)


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Return the fully static shapes known for every tensor of an inferred model."""
    out: dict[str, tuple[int, ...]] = {}
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    for v in values:
        tt = v.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if all(d >= 0 for d in dims):
            out[v.name] = tuple(dims)
    for t in model.graph.initializer:
        out[t.name] = tuple(t.dims)
    return out


def to_graph(model: onnx.ModelProto) -> gs.Graph:
    """Import a model into onnx-graphsurgeon, folding ``Constant`` nodes into constants.

    Paddle exports keep weights in ``Constant`` nodes; folding them lets every rule treat
    weights one way.
    """
    graph = gs.import_onnx(model)
    outputs = {t.name for t in graph.outputs}
    for node in [n for n in graph.nodes if n.op == "Constant" and len(n.outputs) == 1]:
        value = _constant_value(node)
        out = node.outputs[0]
        if value is None or out.name in outputs:
            continue
        const = gs.Constant(out.name, value)
        for consumer in list(out.outputs):
            for i, t in enumerate(list(consumer.inputs)):
                if t is out:
                    consumer.inputs[i] = const
        node.outputs.clear()
    graph.cleanup()
    # Constant subgraphs (a Paddle bias Reshape'd to [1,C,1,1]) become plain constants, so
    # rules see per-channel constants; run-time shapes are left alone.
    graph.fold_constants(fold_shapes=False, partitioning=None, error_ok=True)
    graph.cleanup()
    return graph


def _constant_value(node: gs.Node) -> np.ndarray | None:
    attrs = node.attrs
    if "value" in attrs:
        return np.asarray(attrs["value"].values)
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    for key, dtype in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(list(attrs[key]), dtype=dtype)
    return None


def from_graph(graph: gs.Graph, like: onnx.ModelProto) -> onnx.ModelProto:
    """Export a graph back to a model keeping ``like``'s opsets, IR version and metadata."""
    model = gs.export_onnx(graph, do_type_check=False)
    model.ir_version = like.ir_version
    del model.opset_import[:]
    model.opset_import.extend(like.opset_import)
    model.producer_name = like.producer_name
    model.producer_version = like.producer_version
    del model.metadata_props[:]
    model.metadata_props.extend(like.metadata_props)
    del model.graph.value_info[:]
    if model.ir_version < 4:  # before IR 4 every initializer must also be a graph input
        listed = {v.name for v in model.graph.input}
        for t in model.graph.initializer:
            if t.name not in listed:
                model.graph.input.append(
                    onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                )
    return model


def model_bytes(model: onnx.ModelProto) -> int:
    """Return the size the model takes when serialised (weights included).

    ``ModelProto.ByteSize`` fails beyond protobuf's 2 GB limit; this counts the tensors one
    at a time and the rest of the model without them.
    """
    tensors = sum(t.ByteSize() for t in _all_tensors(model))
    if tensors <= _LIGHT_TENSOR_BYTES * 1024:
        return int(model.ByteSize())
    rest = sum(n.ByteSize() for n in model.graph.node if not _has_tensor_attr(n))
    rest += sum(v.ByteSize() for v in [*model.graph.input, *model.graph.output,
                                       *model.graph.value_info])
    return int(tensors + rest)


def _has_tensor_attr(node: onnx.NodeProto) -> bool:
    return any(a.HasField("t") for a in node.attribute)


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike[str],
    *,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``model`` atomically: a temp file in the target folder, then a rename.

    Models over ``EXTERNAL_DATA_BYTES`` (2 GB) are written with their weights in
    ``<name>.data`` beside the file. On any error or interrupt no new file is left behind.

    Args:
        model: the model to write.
        path: destination ``.onnx`` path.
        protect: paths that must never be overwritten (the input model).

    Returns:
        The written path.

    Raises:
        InputError: the destination is protected, a directory, or its folder is missing.
    """
    dest = Path(path)
    for p in protect:
        if Path(p).exists() and dest.exists() and dest.resolve() == Path(p).resolve():
            raise InputError(
                f"{dest}: refusing to overwrite the input model; choose another -o path "
                "or pass --in-place"
            )
    if dest.is_dir():
        raise InputError(f"{dest}: is a directory; pass a file path for the output model")
    if not dest.parent.exists():
        raise InputError(f"{dest.parent}: output folder does not exist; create it first")
    if model_bytes(model) > EXTERNAL_DATA_BYTES:
        return save_external(model, dest)
    with _temp_file(dest.parent, dest.name) as tmp:
        tmp.write_bytes(model.SerializeToString())
        with _no_interrupt():
            os.replace(tmp, dest)
    return dest


def save_external(model: onnx.ModelProto, dest: Path) -> Path:
    """Write ``model`` as ``dest`` plus ``dest.data`` holding its weights, atomically.

    Both files are written as temp files in the target folder and renamed at the end; on any
    error or interrupt the temp files are removed and no new file is left behind. ``model``
    is not changed and its weights are never held twice.
    """
    data_dest = dest.with_name(dest.name + ".data")
    with _temp_file(dest.parent, data_dest.name) as tmp_data, _temp_file(
        dest.parent, dest.name
    ) as tmp_model:
        _write_external(model, tmp_model, tmp_data, data_dest.name)
        with _no_interrupt():
            existed = data_dest.exists()
            os.replace(tmp_data, data_dest)
            try:
                os.replace(tmp_model, dest)
            except BaseException:
                if not existed:
                    data_dest.unlink(missing_ok=True)
                raise
    return dest


def _write_external(
    model: onnx.ModelProto, model_path: Path, data_path: Path, location: str
) -> None:
    """Stream the larger tensors to ``data_path`` and the rest of the model to ``model_path``."""
    from onnx import numpy_helper

    with open(data_path, "wb") as f:

        def write(t: onnx.TensorProto) -> list[tuple[str, str]]:
            raw = t.raw_data if t.HasField("raw_data") else numpy_helper.to_array(t).tobytes()
            if len(raw) >= 65536:  # page-aligned, so that readers can mmap large weights
                f.seek(-f.tell() % 4096, os.SEEK_CUR)
            offset = f.tell()
            f.write(raw)
            return [("location", location), ("offset", str(offset)), ("length", str(len(raw)))]

        skel = _skeleton(model, write)
        f.flush()
        os.fsync(f.fileno())
    model_path.write_bytes(skel.SerializeToString())


@contextlib.contextmanager
def _temp_file(folder: Path, name: str) -> Iterator[Path]:
    """Yield a fresh hidden temp file in ``folder``; remove it on exit unless renamed away."""
    tmp: Path | None = None
    try:
        fd, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        tmp = Path(path)
        os.close(fd)
        # mkstemp makes the file private (0600); the result gets the usual mode.
        os.chmod(tmp, _file_mode(folder / name))
        yield tmp
    finally:
        if tmp is not None:
            with _no_interrupt():
                tmp.unlink(missing_ok=True)


def _file_mode(dest: Path) -> int:
    """Return the mode of the file being replaced, else 0666 less the umask."""
    if dest.exists():
        return dest.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) for a few system calls, so a rename pair is not cut in two.

    A SIGINT that arrives meanwhile is recorded and raised (as ``KeyboardInterrupt``) right
    after. A Python-level handler, not a signal mask: a process-directed signal may be taken
    by any thread (onnxruntime's, torch's), and Python runs its handler in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, object]] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught and callable(old):
            old(*caught[0])
