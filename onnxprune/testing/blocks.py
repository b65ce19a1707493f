"""Building blocks of the test architectures (classification backbones and UNet).

The blocks that concatenate channels (DenseNet, Inception, ShuffleNet) are ``concat_blocks.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Act = Callable[[], nn.Module]


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias, 'same' padding) + BatchNorm2d + optional activation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        *,
        stride: int = 1,
        groups: int = 1,
        act: Act | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class ClassifierHead(nn.Sequential):
    """Global average pool, flatten, Linear."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(cin, classes))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return ConvBNAct(cin, cout, 1, stride=stride, act=None)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs, identity or projection shortcut, ReLU after the add."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(cin, cout, 3, stride=stride), ConvBNAct(cout, cout, 3, act=None)
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet / ResNeXt bottleneck: 1x1, (grouped) strided 3x3, 1x1, shortcut, ReLU."""

    def __init__(self, cin: int, mid: int, cout: int, *, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(cin, mid, 1),
            ConvBNAct(mid, mid, 3, stride=stride, groups=groups),
            ConvBNAct(mid, cout, 1, act=None),
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Torchvision-layout ResNet with bottlenecks (7x7 stem, max-pool, 4 stages)."""

    def __init__(self, *, width: int, stages: tuple[int, ...], classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, width, 7, stride=2), nn.MaxPool2d(3, 2, 1)]
        cin = width
        for i, n in enumerate(stages):
            mid = width * 2**i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(Bottleneck(cin, mid, mid * 4, stride=stride))
                cin = mid * 4
        layers.append(ClassifierHead(cin, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, linear 1x1 project, residual if same shape."""

    def __init__(self, cin: int, cout: int, *, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6),
            ConvBNAct(hidden, cout, 1, act=None),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.body(x)
        return x + y if self.residual else y


class SqueezeExcite(nn.Module):
    """SE: AdaptiveAvgPool, Conv, act, Conv, gate, multiply into the input."""

    def __init__(self, c: int, squeeze: int, act: Act, gate: Act) -> None:
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, squeeze, 1), act(), nn.Conv2d(squeeze, c, 1),
            gate(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * self.se(x)


def SEHard(c: int) -> nn.Module:  # noqa: N802 - used like a class
    """MobileNetV3 SE: ReLU inside, Hardsigmoid gate, squeeze to c/4 (at least 4)."""
    return SqueezeExcite(c, max(4, c // 4), nn.ReLU, nn.Hardsigmoid)


def SESigmoid(c: int) -> nn.Module:  # noqa: N802 - used like a class
    """EfficientNet SE: SiLU inside, Sigmoid gate, squeeze to c/4 (at least 4)."""
    return SqueezeExcite(c, max(4, c // 4), nn.SiLU, nn.Sigmoid)


class MBConv(nn.Module):
    """MobileNetV3 / EfficientNet block: expand, depthwise kxk, optional SE, project, residual."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        *,
        stride: int = 1,
        expand: int,
        act: Act,
        se: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1, act=act))
        layers.append(ConvBNAct(hidden, hidden, k, stride=stride, groups=hidden, act=act))
        if se is not None:
            layers.append(se(hidden))
        layers.append(ConvBNAct(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.body(x)
        return x + y if self.residual else y


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW tensor (permute to channels-last and back)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, channels-last LayerNorm, Linear-GELU-Linear, layer scale, residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))
        # Real checkpoints have trained (non-trivial) layer scales; 1e-6 init would hide the MLP.
        self.gamma = nn.Parameter(torch.rand(c) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.mlp(self.norm(y))
        return x + y.permute(0, 3, 1, 2)


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 Conv-BN-ReLU, as in UNet."""
    return nn.Sequential(ConvBNAct(cin, cout, 3), ConvBNAct(cout, cout, 3))


class UNet(nn.Module):
    """Two-level UNet: double convs, max-pool down, ConvTranspose up, skip concat, 1x1 head."""

    def __init__(self, *, base: int, classes: int) -> None:
        super().__init__()
        b = base
        self.enc1 = double_conv(3, b)
        self.enc2 = double_conv(b, 2 * b)
        self.mid = double_conv(2 * b, 4 * b)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * b, 2 * b, 2, stride=2)
        self.dec2 = double_conv(4 * b, 2 * b)
        self.up1 = nn.ConvTranspose2d(2 * b, b, 2, stride=2)
        self.dec1 = double_conv(2 * b, b)
        self.head = nn.Conv2d(b, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)
