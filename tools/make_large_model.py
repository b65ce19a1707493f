"""Build and export a real-size architecture from onnxprune.testing.LARGE_ARCHS.

Usage: python tools/make_large_model.py resnet50 -o out.onnx [--dynamo] [--width 64] [--image 224]
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from onnxprune.testing.archs import LARGE_ARCHS, ArchSpec, mobilenetv2_full, resnet50
from onnxprune.testing.export import export_onnx

logger = logging.getLogger("make_large_model")


@dataclass(frozen=True)
class Options:
    name: str
    output: Path
    dynamo: bool
    width: int
    image: int


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(LARGE_ARCHS))
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--dynamo", action="store_true", help="torch.export exporter (opset 18)")
    parser.add_argument("--width", type=int, default=64, help="resnet50 base width")
    parser.add_argument("--image", type=int, default=224, help="input side")
    ns = parser.parse_args(argv)
    return Options(ns.name, ns.output, ns.dynamo, ns.width, ns.image)


def spec_for(opts: Options) -> ArchSpec:
    if opts.name == "resnet50":
        return resnet50(width=opts.width, image=opts.image)
    return mobilenetv2_full(image=opts.image)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opts = parse_args(argv)
    spec = spec_for(opts)
    path = export_onnx(spec.build(), spec.input_shape, opts.output, dynamo=opts.dynamo)
    logger.info("wrote %s (%s, input %s)", path, spec.name, spec.input_shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
