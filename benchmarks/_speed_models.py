"""Real-width architectures for the speed benchmark that the test registry does not have.

MobileNetV3-Large and EfficientNet-B0 (torchvision's block tables: expand widths, kernels, SE,
activations) and a YOLOv8n-width detector (16..256 channels, 80 classes) built from the
test YOLO blocks; seeded random weights and norms, exported with the legacy exporter and
cached like ``_common.export_arch``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _common import cache_dir
from torch import nn

from onnxprune.testing import blocks as B
from onnxprune.testing.archs import ArchSpec, _seeded
from onnxprune.testing.export import export_onnx

# (kernel, expanded width, out, SE, Hardswish, stride): torchvision mobilenet_v3_large
MBV3_LARGE = (
    (3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1),
)  # fmt: skip
# (expand, kernel, stride, out, repeats): EfficientNet-B0
EFFNET_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def _divisible(v: float, d: int = 8) -> int:
    return max(d, int(v + d / 2) // d * d)


class Block(nn.Module):
    """Expand 1x1 (if wider), depthwise kxk, optional SE, project 1x1, residual if same shape."""

    def __init__(self, cin: int, hidden: int, cout: int, k: int, stride: int,
                 act: Callable[[], nn.Module], se: nn.Module | None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(B.ConvBNAct(cin, hidden, 1, act=act))
        layers.append(B.ConvBNAct(hidden, hidden, k, stride=stride, groups=hidden, act=act))
        if se is not None:
            layers.append(se)
        layers.append(B.ConvBNAct(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):  # type: ignore[no-untyped-def]  # noqa: D102
        y = self.body(x)
        return x + y if self.residual else y


def mobilenetv3_large() -> nn.Module:
    """MobileNetV3-Large 1.0 (5.5 M params, 0.22 GMACs at 224)."""
    layers: list[nn.Module] = [B.ConvBNAct(3, 16, 3, stride=2, act=nn.Hardswish)]
    cin = 16
    for k, hidden, cout, se, hs, s in MBV3_LARGE:
        act = nn.Hardswish if hs else nn.ReLU
        gate = B.SqueezeExcite(hidden, _divisible(hidden // 4), nn.ReLU, nn.Hardsigmoid) \
            if se else None
        layers.append(Block(cin, hidden, cout, k, s, act, gate))
        cin = cout
    layers += [B.ConvBNAct(cin, 960, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(1), nn.Linear(960, 1280), nn.Hardswish(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers)


def efficientnet_b0() -> nn.Module:
    """EfficientNet-B0 (5.3 M params, 0.39 GMACs at 224): MBConv, SiLU, SE on the input/4."""
    layers: list[nn.Module] = [B.ConvBNAct(3, 32, 3, stride=2, act=nn.SiLU)]
    cin = 32
    for t, k, s, cout, n in EFFNET_B0:
        for i in range(n):
            hidden = cin * t
            gate = B.SqueezeExcite(hidden, max(1, cin // 4), nn.SiLU, nn.Sigmoid)
            layers.append(Block(cin, hidden, cout, k, s if i == 0 else 1, nn.SiLU, gate))
            cin = cout
    layers += [B.ConvBNAct(cin, 1280, 1, act=nn.SiLU), B.ClassifierHead(1280, 1000)]
    return nn.Sequential(*layers)


def yolov8n(image: int = 320) -> nn.Module:
    """A YOLOv8n-width detector (16..256 channels, C2f, SPPF, PAN neck, DFL head, 80 classes)."""
    from onnxprune.testing.yolo import C2f, SPPF, Conv, Detect, YOLOv8

    m = YOLOv8.__new__(YOLOv8)
    nn.Module.__init__(m)
    m.stem = nn.Sequential(Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), C2f(32, 32, shortcut=True))
    m.p3 = nn.Sequential(Conv(32, 64, 3, 2), C2f(64, 64, 2, shortcut=True))
    m.p4 = nn.Sequential(Conv(64, 128, 3, 2), C2f(128, 128, 2, shortcut=True))
    m.p5 = nn.Sequential(Conv(128, 256, 3, 2), C2f(256, 256, shortcut=True), SPPF(256, 256))
    m.up = nn.Upsample(scale_factor=2.0, mode="nearest")
    m.td4, m.td3 = C2f(384, 128), C2f(192, 64)
    m.down3, m.bu4 = Conv(64, 64, 3, 2), C2f(192, 128)
    m.down4, m.bu5 = Conv(128, 128, 3, 2), C2f(384, 256)
    m.detect = Detect((64, 128, 256), nc=80, image=image)
    return m


SPECS = {
    "mobilenetv3_large": ArchSpec("mobilenetv3_large", _seeded(mobilenetv3_large),
                                  (1, 3, 224, 224)),
    "efficientnet_b0": ArchSpec("efficientnet_b0", _seeded(efficientnet_b0), (1, 3, 224, 224)),
    "yolov8n_320": ArchSpec("yolov8n_320", _seeded(yolov8n), (1, 3, 320, 320)),
}


def export(name: str) -> Path:
    """Export one of :data:`SPECS` (cached by name)."""
    spec = SPECS[name]
    path = cache_dir("archs") / f"{name}.onnx"
    if not path.exists():
        export_onnx(spec.build(), spec.input_shape, path, dynamo=False)
    return path
