"""Build and export a real-size architecture from onnxprune.testing.LARGE_ARCHS, or a >2 GB model.

Usage: python tools/make_large_model.py resnet50 -o out.onnx [--dynamo] [--width 64] [--image 224]
       python tools/make_large_model.py wide -o wide.onnx [--channels 2048] [--layers 16]

``wide`` is a conv stack built directly in ONNX (onnxprune.testing.wide); the defaults give
~2.26 GB (2.1 GiB) of float32 weights, written as ``wide.onnx`` + ``wide.onnx.data`` (external data).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from onnxprune.testing.archs import LARGE_ARCHS, ArchSpec, mobilenetv2_full, resnet50
from onnxprune.testing.export import export_onnx
from onnxprune.testing.wide import weight_bytes, write_wide

logger = logging.getLogger("make_large_model")


@dataclass(frozen=True)
class Options:
    name: str
    output: Path
    dynamo: bool
    width: int
    image: int
    channels: int
    layers: int


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=[*sorted(LARGE_ARCHS), "wide"])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--dynamo", action="store_true", help="torch.export exporter (opset 18)")
    parser.add_argument("--width", type=int, default=64, help="resnet50 base width")
    parser.add_argument("--image", type=int, default=None, help="input side (224; wide: 4)")
    parser.add_argument("--channels", type=int, default=2048, help="wide: conv width")
    parser.add_argument("--layers", type=int, default=16, help="wide: number of convs")
    ns = parser.parse_args(argv)
    image = ns.image or (4 if ns.name == "wide" else 224)
    return Options(ns.name, ns.output, ns.dynamo, ns.width, image, ns.channels, ns.layers)


def spec_for(opts: Options) -> ArchSpec:
    if opts.name == "resnet50":
        return resnet50(width=opts.width, image=opts.image)
    return mobilenetv2_full(image=opts.image)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opts = parse_args(argv)
    if opts.name == "wide":
        size = weight_bytes(channels=opts.channels, layers=opts.layers)
        logger.info("building a wide conv stack: %d x %d channels, %.2f GB of weights",
                    opts.layers, opts.channels, size / 1e9)
        path = write_wide(opts.output, channels=opts.channels, layers=opts.layers, image=opts.image)
        logger.info("wrote %s", path)
        return 0
    spec = spec_for(opts)
    path = export_onnx(spec.build(), spec.input_shape, opts.output, dynamo=opts.dynamo)
    logger.info("wrote %s (%s, input %s)", path, spec.name, spec.input_shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
