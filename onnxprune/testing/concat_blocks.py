"""Test-architecture blocks whose output concatenates channels: DenseNet, Inception, ShuffleNet.

Dense blocks concatenate a growing feature map, Inception blocks parallel branches, and
ShuffleNet units split the input (``chunk``), concatenate and shuffle (view, transpose, view).
"""

from __future__ import annotations

import torch
from torch import nn

from onnxprune.testing.blocks import ConvBNAct


class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-ReLU-1x1 conv (4*growth), BN-ReLU-3x3 conv (growth)."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.body(x)


class DenseBlock(nn.Module):
    """Each layer reads the concatenation of the block input and all previous layer outputs."""

    def __init__(self, cin: int, *, growth: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """DenseNet transition: BN-ReLU-1x1 conv, 2x2 average pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2)
        )


class InceptionBlock(nn.Module):
    """Branches 1x1 | 1x1-3x3 | 1x1-5x5 | maxpool-1x1, concatenated.

    ``widths`` is (c1, c3_reduce, c3, c5_reduce, c5, pool_proj) as in GoogLeNet.
    """

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        c1, c3r, c3, c5r, c5, pp = widths
        self.b1 = ConvBNAct(cin, c1, 1)
        self.b3 = nn.Sequential(ConvBNAct(cin, c3r, 1), ConvBNAct(c3r, c3, 3))
        self.b5 = nn.Sequential(ConvBNAct(cin, c5r, 1), ConvBNAct(c5r, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBNAct(cin, pp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle, written like torchvision (view, transpose, view)."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit; stride 1 splits the input with chunk(2, 1), stride 2 uses two branches."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        bin_ = cin if stride > 1 else cin // 2
        self.branch1 = (
            nn.Sequential(
                ConvBNAct(cin, cin, 3, stride=stride, groups=cin, act=None),
                ConvBNAct(cin, half, 1),
            )
            if stride > 1
            else nn.Identity()
        )
        self.branch2 = nn.Sequential(
            ConvBNAct(bin_, half, 1),
            ConvBNAct(half, half, 3, stride=stride, groups=half, act=None),
            ConvBNAct(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)
