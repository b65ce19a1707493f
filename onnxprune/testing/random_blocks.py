"""The torch modules of the random networks' blocks (``random_nets.py`` draws and chains them).

Each block kind writes the ONNX pattern its name says (``random_nets.SIGNATURE``): residual
Adds, Concats, Splits, SE gates, per-channel affine constants, slices, gates, resizes, heads.
"""

from __future__ import annotations

import torch
from torch import nn


def activation(v: int) -> nn.Module:
    """ReLU, none, Sigmoid, LeakyReLU or Hardswish, by ``v``."""
    return (nn.ReLU(), nn.Identity(), nn.Sigmoid(), nn.LeakyReLU(0.1), nn.Hardswish())[v % 5]


def conv_block(cin: int, cout: int, k: int, v: int, groups: int = 1) -> nn.Module:
    """Conv with optional BN (folded by the legacy exporter when it follows a conv)."""
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=bool(v & 1))
    layers: list[nn.Module] = [conv]
    if v & 2:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(activation(v >> 2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + conv(conv(x))``: an Add that ties the two sides' channels."""

    def __init__(self, c: int, mid: int, k: int, v: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_block(c, mid, k, v), nn.Conv2d(mid, c, 1, bias=bool(v & 8)))
        self.post = nn.ReLU() if v & 16 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.post(x + self.body(x))


class Concat(nn.Module):
    """``cat([conv_a(x), conv_b(x)])`` or, for odd variants, ``cat([x, conv(x)])``."""

    def __init__(self, c: int, extra: int, k: int, v: int) -> None:
        super().__init__()
        self.keep_input = bool(v & 1)
        self.a = conv_block(c, extra, k, v >> 1)
        self.b = nn.Identity() if self.keep_input else conv_block(c, 1 + (extra + v) % 5, 1, v >> 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.cat([self.b(x), self.a(x)], dim=1)

    def width(self, c: int) -> int:
        """Output channel count for input width ``c``."""
        return self.a[0].out_channels + (c if self.keep_input else self.b[0].out_channels)


class Split(nn.Module):
    """Split the channels at ``s`` and recombine: conv one part and concat, or add two convs."""

    def __init__(self, c: int, s: int, k: int, v: int) -> None:
        super().__init__()
        self.sizes = [s, c - s]
        self.mode = v % 3
        if self.mode == 0:  # YOLO C2f-like: cat([a, b, conv(b)])
            self.f = conv_block(c - s, c - s, k, v >> 2)
        elif self.mode == 1:  # cat([conv(a), b])
            self.f = conv_block(s, s, k, v >> 2)
        else:  # conv_a(a) + conv_b(b)
            self.f = conv_block(s, c - s, k, v >> 2)
            self.g = conv_block(c - s, c - s, 1, v >> 3)

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


class SE(nn.Module):
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


class Affine(nn.Module):
    """Per-channel constants: ``x * scale + shift`` (what folded norms and exporters leave)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.randn(1, c, 1, 1))
        self.shift = nn.Parameter(torch.randn(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * self.scale + self.shift


class Lambda(nn.Module):
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


class Gate(nn.Module):
    """Two run-time tensors of the same width multiplied: ``x * act(conv(x))``."""

    def __init__(self, c: int, k: int, v: int) -> None:
        super().__init__()
        self.f = conv_block(c, c, k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * self.f(x)


class Head(nn.Module):
    """The network's output (see ``HEADS`` in ``random_nets.py``)."""

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
