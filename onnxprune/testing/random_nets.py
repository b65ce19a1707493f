"""Random small CNNs described by plain data, for property-based tests of the channel rules.

A :class:`NetSpec` is a tuple of :class:`Block` values (kind + a few integers) and a head; the
test draws specs with hypothesis, :func:`build_net` turns one into a seeded torch module whose
structure covers what exporters write: chains, residual Adds, Concats, Splits/chunks,
depthwise and grouped convs, SE gates (GAP→conv→sigmoid→Mul), per-channel affine constants,
pooling, and Flatten→Gemm heads. Widths are tiny and images 8×8 so that an export, a prune and
two onnxruntime runs take a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onnxprune.testing.random_blocks import (
    SE,
    Affine,
    Concat,
    Gate,
    Head,
    Lambda,
    Residual,
    Split,
    conv_block,
)

KINDS = (
    "conv", "depthwise", "grouped", "residual", "concat", "split", "se", "affine", "pool",
    "slice", "self_concat", "gate", "upsample",
)
"""Block kinds :func:`build_net` understands."""

HEADS = ("conv", "flatten_gemm", "gap_gemm", "gap_gemm_and_features", "mlp")
"""Head kinds: a conv output (a barrier by design), Flatten→Gemm, GAP→Gemm, two outputs
(logits and the features), Flatten→Gemm→ReLU→Gemm."""


@dataclass(frozen=True)
class Block:
    """One block: ``kind`` from :data:`KINDS`, a width ``c``, a kernel ``k`` and a variant ``v``.

    ``c`` is the block's new channel count where it has one (ignored by blocks that keep the
    width); ``v`` picks a variant (activation, bias, split point...).
    """

    kind: str
    c: int
    k: int = 1
    v: int = 0


@dataclass(frozen=True)
class NetSpec:
    """A random network: input channels, blocks, head, and the seed of its weights."""

    cin: int
    blocks: tuple[Block, ...]
    head: str
    seed: int = 0
    image: int = 8


class RandomNet(nn.Module):
    """The module a :class:`NetSpec` describes (see :func:`build_net`)."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        torch.manual_seed(spec.seed)
        self.stem = conv_block(spec.cin, max(2, spec.blocks[0].c if spec.blocks else 4), 3, 1)
        c = self.stem[0].out_channels
        side = spec.image
        layers: list[nn.Module] = []
        for b in spec.blocks:
            layer, c, side = _block(b, c, side)
            layers.append(layer)
        self.body = nn.Sequential(*layers)
        self.head = Head(spec.head, c, side)
        _randomise_norms(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        return self.head(self.body(self.stem(x)))


SIGNATURE = {
    "conv": ("Conv",), "depthwise": ("Conv",), "grouped": ("Conv",), "residual": ("Add",),
    "concat": ("Concat",), "split": ("Split",), "se": ("GlobalAveragePool|ReduceMean", "Mul"),
    "affine": ("Mul", "Add"), "pool": ("MaxPool|AveragePool",), "slice": ("Slice",),
    "self_concat": ("Concat",), "gate": ("Mul",), "upsample": ("Resize",),
}
"""Op types (``|``: either) that a block of each kind puts in the exported graph, so a test
can check that the drawn structure was built (every kind is built at every width and side;
blocks that need more channels first widen them with a 1x1 conv)."""


def _block(b: Block, c: int, side: int) -> tuple[nn.Module, int, int]:
    """Build one block for input width ``c``; return it, its output width and image side.

    Every kind is built whatever ``c`` and ``side`` are: kinds that need at least two
    channels (split, slice) are preceded by a 1x1 conv to two or more channels when ``c`` is
    1, self_concat by one to at most 6 channels when ``c`` is larger, a pool at side 1 is
    preceded by an upsample, and an upsample of a side above 4 pools first.
    """
    if b.kind in ("split", "slice") and c < 2:
        return _widened(b, c, max(2, b.c), side)
    if b.kind == "self_concat" and c > 6:
        return _widened(b, c, 1 + b.c % 6, side)
    if b.kind == "pool" and side < 2:
        first = Lambda("upsample")
        layer, c2, side2 = _block(b, c, side * 2)
        return nn.Sequential(first, layer), c2, side2
    return _build(b, c, side)


def _widened(b: Block, c: int, width: int, side: int) -> tuple[nn.Module, int, int]:
    conv = conv_block(c, width, 1, 0)
    layer, c2, side2 = _build(b, width, side)
    return nn.Sequential(conv, layer), c2, side2


def _build(b: Block, c: int, side: int) -> tuple[nn.Module, int, int]:
    k = 3 if b.k == 3 else 1
    if b.kind == "conv":
        return conv_block(c, b.c, k, b.v), b.c, side
    if b.kind == "depthwise":
        mult = 1 + b.v % 2
        return conv_block(c, c * mult, 3, b.v >> 1, groups=c), c * mult, side
    if b.kind == "grouped":
        groups = next(g for g in (4, 3, 2, 1) if c % g == 0 and (c >= 2 * g or g == 1))
        cout = groups * max(1, b.c // groups)
        return conv_block(c, cout, k, b.v, groups=groups), cout, side
    if b.kind == "residual":
        return Residual(c, b.c, k, b.v), c, side
    if b.kind == "concat":
        layer = Concat(c, b.c, k, b.v)
        return layer, layer.width(c), side
    if b.kind == "split":
        split = Split(c, 1 + b.c % (c - 1), k, b.v)
        return split, split.width(c), side
    if b.kind == "se":
        return SE(c, b.c, b.v), c, side
    if b.kind == "affine":
        return Affine(c), c, side
    if b.kind == "slice":
        start = 1 + b.c % (c - 1)
        return Lambda("slice", start), c - start, side
    if b.kind == "self_concat":
        return Lambda("self_concat"), 2 * c, side
    if b.kind == "gate":
        return Gate(c, k, b.v), c, side
    if b.kind == "upsample":
        if side > 4:
            return Lambda("pool_upsample"), c, side
        return Lambda("upsample"), c, side * 2
    if b.kind == "pool":
        pool = nn.MaxPool2d(2) if b.v % 2 else nn.AvgPool2d(2)
        return pool, c, side // 2
    raise ValueError(f"unknown block kind {b.kind!r}; kinds are {', '.join(KINDS)}")


def _randomise_norms(module: nn.Module) -> None:
    """Give BatchNorms non-trivial statistics so that folding them is not the identity."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n) * 0.5)
                m.running_var.copy_(torch.rand(n) + 0.5)
                m.weight.copy_(torch.randn(n))
                m.bias.copy_(torch.randn(n))


def build_net(spec: NetSpec) -> RandomNet:
    """Build the seeded torch module of ``spec`` (eval mode)."""
    return RandomNet(spec).eval()


def input_shape(spec: NetSpec) -> tuple[int, int, int, int]:
    """Input shape of the spec's network: ``(1, cin, image, image)``."""
    return (1, spec.cin, spec.image, spec.image)
