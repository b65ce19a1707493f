"""A small YOLOv8-style detector written like Ultralytics (C2f, SPPF, PAN neck, DFL head)."""

from __future__ import annotations

import torch
from torch import nn


class Conv(nn.Sequential):
    """Ultralytics Conv: Conv2d (no bias) + BatchNorm2d + SiLU."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU()
        )


class YoloBottleneck(nn.Module):
    """Two 3x3 Convs with an optional residual add."""

    def __init__(self, c: int, *, shortcut: bool) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(c, c, 3), Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """Conv, split into halves, n bottlenecks on the last piece, concat all (2 + n tensors), Conv.

    Uses ``split`` (Ultralytics ``forward_split``): the legacy exporter writes ``chunk`` as a
    Shape/Gather/Div/Slice subgraph, ``split`` with constant sizes as one ``Split``.
    """

    def __init__(self, cin: int, cout: int, n: int = 1, *, shortcut: bool = False) -> None:
        super().__init__()
        self.c = cout // 2
        self.cv1 = Conv(cin, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, cout, 1)
        self.m = nn.ModuleList(YoloBottleneck(self.c, shortcut=shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = list(self.cv1(x).split((self.c, self.c), 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained MaxPool(5, 1, 2), concat of four tensors."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin // 2
        self.cv1 = Conv(cin, hidden, 1)
        self.cv2 = Conv(hidden * 4, cout, 1)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Distribution focal loss integral: softmax over bins, 1x1 conv with arange weights."""

    def __init__(self, reg_max: int) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b, _, a = x.shape
        bins = x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)
        return self.conv(bins).view(b, 4, a)


def make_anchors(sizes: list[int], strides: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres (2, A) and per-anchor strides (1, A) for square feature maps."""
    points, stride_list = [], []
    for size, stride in zip(sizes, strides, strict=True):
        grid = torch.arange(size, dtype=torch.float32) + 0.5
        sy, sx = torch.meshgrid(grid, grid, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_list.append(torch.full((size * size, 1), float(stride)))
    return torch.cat(points).T.contiguous(), torch.cat(stride_list).T.contiguous()


class Detect(nn.Module):
    """Decoupled head per scale (box: 4*reg_max, cls: nc), DFL decode, concat boxes + scores."""

    anchors: torch.Tensor
    strides: torch.Tensor

    def __init__(self, ch: tuple[int, ...], *, nc: int, image: int, reg_max: int = 16) -> None:
        super().__init__()
        self.nc, self.reg_max, self.no = nc, reg_max, nc + 4 * reg_max
        c2, c3 = max(16, ch[0] // 4, 32), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
            for c in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for c in ch
        )
        self.dfl = DFL(reg_max)
        strides = [8 * 2**i for i in range(len(ch))]
        anchors, stride_t = make_anchors([image // s for s in strides], strides)
        self.register_buffer("anchors", anchors)
        self.register_buffer("strides", stride_t)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:  # noqa: D102
        b = feats[0].shape[0]
        x = [torch.cat((self.cv2[i](f), self.cv3[i](f)), 1) for i, f in enumerate(feats)]
        x_cat = torch.cat([xi.view(b, self.no, -1) for xi in x], 2)
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        lt, rb = self.dfl(box).split((2, 2), 1)
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class YOLOv8(nn.Module):
    """Backbone (Conv/C2f/SPPF), FPN-PAN neck (Upsample + Concat, strided Conv), Detect head."""

    def __init__(self, *, image: int = 64, nc: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(Conv(3, 8, 3, 2), Conv(8, 16, 3, 2), C2f(16, 16, shortcut=True))
        self.p3 = nn.Sequential(Conv(16, 32, 3, 2), C2f(32, 32, 2, shortcut=True))
        self.p4 = nn.Sequential(Conv(32, 48, 3, 2), C2f(48, 48, shortcut=True))
        self.p5 = nn.Sequential(Conv(48, 64, 3, 2), C2f(64, 64, shortcut=True), SPPF(64, 64))
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.td4, self.td3 = C2f(112, 48), C2f(80, 32)
        self.down3, self.bu4 = Conv(32, 32, 3, 2), C2f(80, 48)
        self.down4, self.bu5 = Conv(48, 48, 3, 2), C2f(112, 64)
        self.detect = Detect((32, 48, 64), nc=nc, image=image)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        n4 = self.td4(torch.cat((self.up(p5), p4), 1))
        o3 = self.td3(torch.cat((self.up(n4), p3), 1))
        o4 = self.bu4(torch.cat((self.down3(o3), n4), 1))
        o5 = self.bu5(torch.cat((self.down4(o4), p5), 1))
        return self.detect([o3, o4, o5])
