"""Options and steps shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from onnxprune import ir
from onnxprune.data import Dataset, load_data
from onnxprune.loading import load_with_data
from onnxprune.model import Model, load
from onnxprune.preprocess import PRESETS, Preprocess


def add_model_args(p: argparse.ArgumentParser) -> None:
    """MODEL and --input-shapes."""
    p.add_argument("model", help="the .onnx model")
    p.add_argument(
        "--input-shapes", action="extend", nargs="+", metavar="NAME:D1,D2,..", default=None,
        help="concrete shapes of inputs with dynamic dims, e.g. --input-shapes x:1,3,320,320 "
        "y:1,2 (several after one flag, or the flag repeated); default: from --data",
    )


def add_data_args(p: argparse.ArgumentParser, *, random: str | None = None) -> None:
    """Add --data (or --random-data N), --preprocess(-file), --labels and --samples."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="FILE.npz|FILE.npy|DIR",
                     help="calibration inputs: an .npz (one array per input name), an .npy "
                     "(single-input models) or a folder of images (see --preprocess); dynamic "
                     "input dims are read from it")
    if random is not None:
        src.add_argument("--random-data", type=int, metavar="N", help=random)
    pre = p.add_mutually_exclusive_group()
    pre.add_argument("--preprocess", nargs="+", metavar="PRESET|KEY=VALUE",
                     help="how images become tensors: a preset (" + ", ".join(PRESETS)
                     + ") and/or KEY=VALUE among size=H,W|model, resize=stretch|letterbox|"
                     "keep-height-pad|center-crop, pad=114, scale=1/255, mean=a,b,c, std=a,b,c, "
                     "channels=rgb|bgr|gray, layout=nchw|nhwc, resample=bilinear|area|.., "
                     "e.g. --preprocess paddle-ocr size=48,320")
    pre.add_argument("--preprocess-file", metavar="FILE.json",
                     help="the same options as a JSON (or YAML) mapping, e.g. "
                     '{"preset": "imagenet", "size": [224, 224]}')
    p.add_argument("--labels", help=".npy/.npz integer class ids, one per sample")
    p.add_argument("--samples", type=int, metavar="N", help="use at most N samples")


def preprocess_of(args: argparse.Namespace) -> Preprocess | None:
    """Return the --preprocess / --preprocess-file recipe, or None."""
    if getattr(args, "preprocess_file", None):
        return Preprocess.from_file(args.preprocess_file)
    if getattr(args, "preprocess", None):
        return Preprocess.parse(args.preprocess)
    return None


def load_model_and_data(args: argparse.Namespace) -> tuple[Model, Dataset | None]:
    """Load MODEL and --data together; the data gives the dynamic input dims."""
    pre = preprocess_of(args)
    if pre is not None and not (args.data and Path(args.data).is_dir()):
        raise_input("--preprocess applies to an image folder: pass --data DIR (an .npz/.npy "
                    "is used as saved)")
    model, data = load_with_data(
        args.model, args.data, preprocess=pre, labels=args.labels if args.data else None,
        input_shapes=ir.parse_input_shapes(args.input_shapes), samples=args.samples,
    )
    random_n = getattr(args, "random_data", None)
    if args.labels and data is None and random_n is None:
        raise_input("--labels were given without data; pass --data with the labels")
    if data is None and random_n is not None:
        data = load_data(None, ir.io_specs(model.proto), model.input_shapes,
                         labels=args.labels, limit=args.samples, random_samples=random_n,
                         seed=getattr(args, "seed", 0))
    return model, data


def add_output_args(p: argparse.ArgumentParser) -> None:
    """-o OUT and --in-place."""
    p.add_argument("-o", "--output", required=True, help="where to write the pruned model")
    p.add_argument("--in-place", action="store_true", help="allow -o to be the input model")


def load_model(args: argparse.Namespace) -> Model:
    """Load the MODEL argument with its --input-shapes."""
    return load(args.model, input_shapes=ir.parse_input_shapes(args.input_shapes))


def output_path(args: argparse.Namespace) -> Path:
    """Check -o before any work is done (so a bad path fails fast; :func:`write` trusts it)."""
    return ir.check_destination(args.output, _protected(args))


def _protected(args: argparse.Namespace) -> tuple[str, ...]:
    return () if args.in_place else (args.model,)


def raise_input(message: str) -> None:
    """Raise an InputError (exit code 2)."""
    from onnxprune.errors import InputError

    raise InputError(message)


def write(model_proto: object, args: argparse.Namespace) -> Path:
    """Write the verified model atomically to -o, which :func:`output_path` checked."""
    return ir.save_model(model_proto, args.output, protect=_protected(args),  # type: ignore[arg-type]
                         checked=True)


def plural(n: int, noun: str) -> str:
    """``1 group``, ``2 groups``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
