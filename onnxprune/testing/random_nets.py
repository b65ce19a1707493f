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


def _act(v: int) -> nn.Module:
    return (nn.ReLU(), nn.Identity(), nn.Sigmoid(), nn.LeakyReLU(0.1), nn.Hardswish())[v % 5]


def _conv(cin: int, cout: int, k: int, v: int, groups: int = 1) -> nn.Module:
    """Conv with optional BN (folded by the legacy exporter when it follows a conv)."""
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=bool(v & 1))
    layers: list[nn.Module] = [conv]
    if v & 2:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(_act(v >> 2))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, c: int, mid: int, k: int, v: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(c, mid, k, v), nn.Conv2d(mid, c, 1, bias=bool(v & 8)))
        self.post = nn.ReLU() if v & 16 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.post(x + self.body(x))


class _Concat(nn.Module):
    """``cat([conv_a(x), conv_b(x)])`` or, for odd variants, ``cat([x, conv(x)])``."""

    def __init__(self, c: int, extra: int, k: int, v: int) -> None:
        super().__init__()
        self.keep_input = bool(v & 1)
        self.a = _conv(c, extra, k, v >> 1)
        self.b = nn.Identity() if self.keep_input else _conv(c, 1 + (extra + v) % 5, 1, v >> 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.cat([self.b(x), self.a(x)], dim=1)

    def width(self, c: int) -> int:
        """Output channel count for input width ``c``."""
        return self.a[0].out_channels + (c if self.keep_input else self.b[0].out_channels)


class _Split(nn.Module):
    """Split the channels at ``s`` and recombine: conv one part and concat, or add two convs."""

    def __init__(self, c: int, s: int, k: int, v: int) -> None:
        super().__init__()
        self.sizes = [s, c - s]
        self.mode = v % 3
        if self.mode == 0:  # YOLO C2f-like: cat([a, b, conv(b)])
            self.f = _conv(c - s, c - s, k, v >> 2)
        elif self.mode == 1:  # cat([conv(a), b])
            self.f = _conv(s, s, k, v >> 2)
        else:  # conv_a(a) + conv_b(b)
            self.f = _conv(s, c - s, k, v >> 2)
            self.g = _conv(c - s, c - s, 1, v >> 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        a, b = torch.split(x, self.sizes, dim=1)
        if self.mode == 0:
            return torch.cat([a, b, self.f(b)], dim=1)
        if self.mode == 1:
            return torch.cat([self.f(a), b], dim=1)
        return self.f(a) + self.g(b)

    def width(self, c: int) -> int:
        """Output channel count for input width ``c``."""
        s = self.sizes[0]
        return (c + c - s, c, c - s)[self.mode]


class _SE(nn.Module):
    """Squeeze-excitation gate: ``x * sigmoid(conv(act(conv(GAP(x)))))``."""

    def __init__(self, c: int, squeeze: int, v: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.act = nn.ReLU() if v & 1 else nn.SiLU()
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.gate = nn.Sigmoid() if v & 2 else nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class _Affine(nn.Module):
    """Per-channel constants: ``x * scale + shift`` (what folded norms and exporters leave)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.randn(1, c, 1, 1))
        self.shift = nn.Parameter(torch.randn(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * self.scale + self.shift


class _Lambda(nn.Module):
    """A parameter-free block: slicing, self-concatenation, upsampling."""

    def __init__(self, kind: str, start: int = 0) -> None:
        super().__init__()
        self.kind, self.start = kind, start

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.kind == "slice":
            return x[:, self.start :]
        if self.kind == "self_concat":
            return torch.cat([x, x], dim=1)
        if self.kind == "pool_upsample":  # keeps the side: a large image is not grown further
            x = nn.functional.avg_pool2d(x, 2)
        return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


class _Gate(nn.Module):
    """Two run-time tensors of the same width multiplied: ``x * act(conv(x))``."""

    def __init__(self, c: int, k: int, v: int) -> None:
        super().__init__()
        self.f = _conv(c, c, k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * self.f(x)


class _Head(nn.Module):
    def __init__(self, kind: str, c: int, side: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "conv":
            self.f: nn.Module = nn.Conv2d(c, 3, 1)
        elif kind == "flatten_gemm":
            self.f = nn.Sequential(nn.Flatten(1), nn.Linear(c * side * side, 5))
        elif kind == "mlp":
            self.f = nn.Sequential(
                nn.Flatten(1), nn.Linear(c * side * side, 6), nn.ReLU(), nn.Linear(6, 5)
            )
        else:
            self.f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        if self.kind == "gap_gemm_and_features":
            return self.f(x), x
        return self.f(x)


class RandomNet(nn.Module):
    """The module a :class:`NetSpec` describes (see :func:`build_net`)."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        torch.manual_seed(spec.seed)
        self.stem = _conv(spec.cin, max(2, spec.blocks[0].c if spec.blocks else 4), 3, 1)
        c = self.stem[0].out_channels
        side = spec.image
        layers: list[nn.Module] = []
        for b in spec.blocks:
            layer, c, side = _block(b, c, side)
            layers.append(layer)
        self.body = nn.Sequential(*layers)
        self.head = _Head(spec.head, c, side)
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
        first = _Lambda("upsample")
        layer, c2, side2 = _block(b, c, side * 2)
        return nn.Sequential(first, layer), c2, side2
    return _build(b, c, side)


def _widened(b: Block, c: int, width: int, side: int) -> tuple[nn.Module, int, int]:
    conv = _conv(c, width, 1, 0)
    layer, c2, side2 = _build(b, width, side)
    return nn.Sequential(conv, layer), c2, side2


def _build(b: Block, c: int, side: int) -> tuple[nn.Module, int, int]:
    k = 3 if b.k == 3 else 1
    if b.kind == "conv":
        return _conv(c, b.c, k, b.v), b.c, side
    if b.kind == "depthwise":
        mult = 1 + b.v % 2
        return _conv(c, c * mult, 3, b.v >> 1, groups=c), c * mult, side
    if b.kind == "grouped":
        groups = next(g for g in (4, 3, 2, 1) if c % g == 0 and (c >= 2 * g or g == 1))
        cout = groups * max(1, b.c // groups)
        return _conv(c, cout, k, b.v, groups=groups), cout, side
    if b.kind == "residual":
        return _Residual(c, b.c, k, b.v), c, side
    if b.kind == "concat":
        layer = _Concat(c, b.c, k, b.v)
        return layer, layer.width(c), side
    if b.kind == "split":
        split = _Split(c, 1 + b.c % (c - 1), k, b.v)
        return split, split.width(c), side
    if b.kind == "se":
        return _SE(c, b.c, b.v), c, side
    if b.kind == "affine":
        return _Affine(c), c, side
    if b.kind == "slice":
        start = 1 + b.c % (c - 1)
        return _Lambda("slice", start), c - start, side
    if b.kind == "self_concat":
        return _Lambda("self_concat"), 2 * c, side
    if b.kind == "gate":
        return _Gate(c, k, b.v), c, side
    if b.kind == "upsample":
        if side > 4:
            return _Lambda("pool_upsample"), c, side
        return _Lambda("upsample"), c, side * 2
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
