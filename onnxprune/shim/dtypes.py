"""ONNX element types <-> torch dtypes, numpy -> torch conversion, float32 as onnxruntime has it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from onnxprune.errors import InputError, UnsupportedOpError

__all__ = ["FLOAT_DTYPES", "exact_fp32", "numpy_dtype", "to_torch", "torch_device",
           "torch_dtype"]

# TensorProto.DataType values (kept numeric so this module needs no protobuf import).
_ONNX_TO_TORCH: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    4: torch.uint16,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    12: torch.uint32,
    13: torch.uint64,
    16: torch.bfloat16,
}

FLOAT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def torch_dtype(onnx_type: int) -> torch.dtype:
    """Return the torch dtype of an ONNX element type.

    Raises:
        UnsupportedOpError: the type has no torch counterpart (string, complex, float8...).

    """
    try:
        return _ONNX_TO_TORCH[int(onnx_type)]
    except KeyError:
        raise UnsupportedOpError(
            f"ONNX element type {onnx_type} has no torch counterpart in the shim"
        ) from None


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """Return the numpy dtype matching a torch dtype (bfloat16 maps to float32)."""
    if dtype is torch.bfloat16:
        return np.dtype(np.float32)
    return np.dtype(torch.empty((), dtype=dtype).numpy().dtype)


def to_torch(value: object, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Convert a numpy array (or number, or tensor) to a torch tensor on ``device``.

    Raises:
        UnsupportedOpError: the array holds strings or objects.

    """
    if isinstance(value, torch.Tensor):
        return value.to(device) if device is not None else value
    arr = np.asarray(value)
    if arr.dtype.kind in "OSU":
        raise UnsupportedOpError(f"the shim cannot hold {arr.dtype} tensors (strings/objects)")
    if arr.dtype.kind == "V" or str(arr.dtype) == "bfloat16":
        t = torch.from_numpy(arr.astype(np.float32)).to(torch.bfloat16)
    else:
        t = torch.from_numpy(np.array(arr, copy=True, order="C"))
    return t.to(device) if device is not None else t


def torch_device(name: str | torch.device) -> torch.device:
    """Return the torch device ``name`` (``--device``) if this torch can use it.

    Raises:
        InputError: an unknown device, or CUDA where torch sees none.

    """
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"--device {name}: not a torch device; use cpu or cuda (cuda:N for "
                         "the N-th GPU)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        why = ("this torch is built without CUDA" if torch.version.cuda is None
               else "torch sees no CUDA GPU")
        raise InputError(f"--device {name}: {why} (torch {torch.__version__}); use --device cpu, "
                         "or install a CUDA build of torch on a machine with a GPU")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"--device {name}: torch sees {torch.cuda.device_count()} GPU(s); use "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: onnxprune runs its torch side on cpu or cuda")
    return dev


@contextlib.contextmanager
def exact_fp32(device: torch.device) -> Iterator[None]:
    """Disable TF32 on CUDA so float32 results match onnxruntime."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
