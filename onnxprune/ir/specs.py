"""Graph input/output specs and the input shapes a user gives."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from onnxprune.errors import InputError

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype and shape of a graph input or output (dims may be str or -1)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str, ...]


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


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The batch a graph input fixes (its leading dim, the first such input's), else None."""
    for s in io_specs(model):
        if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0:
            return int(s.shape[0])
    return None


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


