"""Atomic saving of models (external data above 2 GB, signals held off while writing)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx

from onnxprune.errors import InputError
from onnxprune.ir import limits
from onnxprune.ir.load import model_bytes
from onnxprune.ir.shapes import skeleton

log = logging.getLogger(__name__)

def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike[str],
    *,
    protect: Sequence[str | os.PathLike[str]] = (),
    checked: bool = False,
) -> Path:
    """Write ``model`` atomically: a temp file in the target folder, then a rename.

    Models over ``limits.EXTERNAL_DATA_BYTES`` (2 GB) are written with their weights in
    ``<name>.data`` beside the file. On any error or interrupt no new file is left behind.

    Args:
        model: the model to write.
        path: destination ``.onnx`` path.
        protect: paths that must never be overwritten (the input model).
        checked: the caller checked ``path`` with :func:`check_destination` (the CLI does so
            before any work), so it is not checked again.

    Returns:
        The written path.

    Raises:
        InputError: the destination is protected, a directory, or its folder is missing.

    """
    dest = Path(path) if checked else check_destination(path, protect)
    if model_bytes(model) > limits.EXTERNAL_DATA_BYTES:
        return save_external(model, dest)
    with _temp_file(dest.parent, dest.name) as tmp:
        tmp.write_bytes(model.SerializeToString())
        with _no_interrupt():
            os.replace(tmp, dest)
    return dest


def check_destination(
    path: str | os.PathLike[str], protect: Sequence[str | os.PathLike[str]] = ()
) -> Path:
    """Return ``path`` if a model can be written there (see :func:`save_model`).

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

        skel = skeleton(model, write)
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
