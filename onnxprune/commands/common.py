"""Options and steps shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from onnxprune import ir
from onnxprune.model import Model, load


def add_model_args(p: argparse.ArgumentParser) -> None:
    """MODEL and --input-shapes."""
    p.add_argument("model", help="the .onnx model")
    p.add_argument(
        "--input-shapes", action="append", metavar="NAME:D1,D2,..", default=None,
        help="concrete shape of an input with dynamic dims, e.g. images:1,3,640,640 "
        "(repeat the option for several inputs)",
    )


def add_output_args(p: argparse.ArgumentParser) -> None:
    """-o OUT and --in-place."""
    p.add_argument("-o", "--output", required=True, help="where to write the pruned model")
    p.add_argument("--in-place", action="store_true", help="allow -o to be the input model")


def load_model(args: argparse.Namespace) -> Model:
    """Load the MODEL argument with its --input-shapes."""
    return load(args.model, input_shapes=ir.parse_input_shapes(args.input_shapes))


def output_path(args: argparse.Namespace) -> Path:
    """Check -o before any work is done (so a bad path fails fast)."""
    dest = Path(args.output)
    if dest.is_dir():
        raise_input(f"{dest}: is a directory; pass a file path for the output model")
    if not dest.parent.exists():
        raise_input(f"{dest.parent}: output folder does not exist; create it first")
    same = dest.exists() and dest.resolve() == Path(args.model).resolve()
    if same and not args.in_place:
        raise_input(f"{dest}: refusing to overwrite the input model; choose another -o path "
                    "or pass --in-place")
    return dest


def raise_input(message: str) -> None:
    """Raise an InputError (exit code 2)."""
    from onnxprune.errors import InputError

    raise InputError(message)


def write(model_proto: object, args: argparse.Namespace) -> Path:
    """Write the verified model atomically, protecting the input unless --in-place."""
    protect = () if args.in_place else (args.model,)
    return ir.save_model(model_proto, args.output, protect=protect)  # type: ignore[arg-type]
