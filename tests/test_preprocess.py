"""Preprocessing as data: presets, CLI words, files, and real calibration reproduced from images.

The real-model tests rebuild the exact crops tools/fetch_models.py cut from real photos (same
seeded generator), save them as image files, and load the folder with a preset: the tensors
must equal the cached ``.npz`` calibration (built with each model's own recipe) to 1e-6.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from onnxprune import ir
from onnxprune.data import load_data
from onnxprune.errors import InputError
from onnxprune.preprocess import PRESETS, Preprocess

REPO = Path(__file__).resolve().parents[1]


def test_parse_preset_and_overrides() -> None:
    p = Preprocess.parse(["paddle-ocr", "size=48,320", "pad=0", "scale=1/255"])
    assert (p.name, p.size, p.resize, p.channels, p.pad) == (
        "paddle-ocr", (48, 320), "keep-height-pad", "bgr", 0.0)
    assert math.isclose(p.scale, 1 / 255)


def test_parse_options_without_preset() -> None:
    p = Preprocess.parse(["resize=letterbox", "mean=0.5,0.5,0.5", "order=BGR", "layout=NHWC",
                          "size=model"])
    assert (p.resize, p.mean, p.channels, p.layout, p.size) == (
        "letterbox", (0.5, 0.5, 0.5), "bgr", "nhwc", None)
    q = Preprocess.parse(["gray", "nhwc", "keep-height-pad", "size=32x100"])
    assert (q.channels, q.layout, q.resize, q.size) == ("gray", "nhwc", "keep-height-pad",
                                                        (32, 100))


@pytest.mark.parametrize(("words", "fragment"), [
    (["nosuch"], "unknown preprocess preset 'nosuch'"),
    (["imagenet", "colour=rgb"], "preprocess option 'colour' is unknown"),
    (["imagenet", "size=a,b"], "preprocess size="),
    (["imagenet", "std=0"], "std must be"),
    (["imagenet", "resize=crop"], "resize 'crop'"),
    (["imagenet", "mean"], "expected KEY=VALUE"),
])
def test_parse_errors_name_the_fix(words: list[str], fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        Preprocess.parse(words)


def test_file_json_and_roundtrip(tmp_path: Path) -> None:
    f = tmp_path / "pre.json"
    f.write_text(json.dumps({"preset": "yolo", "size": [640, 640]}))
    p = Preprocess.from_file(f)
    assert (p.resize, p.pad, p.size, p.name) == ("letterbox", 114.0, (640, 640), "yolo")
    g = tmp_path / "all.json"
    g.write_text(json.dumps(p.to_dict()))
    assert Preprocess.from_file(g) == p


def test_file_yaml(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    f = tmp_path / "pre.yaml"
    f.write_text("preset: imagenet\nsize: [224, 224]\nchannels: bgr\n")
    p = Preprocess.from_file(f)
    assert (p.name, p.size, p.channels, p.mean) == ("imagenet", (224, 224), "bgr", PRESETS[
        "imagenet"].mean)


def test_summary_is_one_line() -> None:
    line = Preprocess.preset("paddle-ocr").summary((48, 192))
    assert "\n" not in line
    assert line == ("paddle-ocr: BGR, keep-height-pad to 48x192 (bilinear, pad 127.5), x*1/255, "
                    "-[0.5], /[0.5], NCHW float32")


@pytest.mark.parametrize("value", ["imagenet", {"preset": "imagenet"}, PRESETS["imagenet"]])
def test_of_accepts_name_mapping_object(value: Any) -> None:
    assert Preprocess.of(value) == PRESETS["imagenet"]


def test_grayscale_nhwc_letterbox(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((2, 4, 3), 200, np.uint8)).save(folder / "a.png")
    spec = ir.TensorSpec("x", np.dtype(np.float32), ("N", 4, 4, 1))
    pre = Preprocess.parse(["resize=letterbox", "pad=0", "scale=1", "channels=gray",
                            "layout=nhwc"])
    x = load_data(folder, [spec], {"x": (1, 4, 4, 1)}, image_options=pre).inputs["x"]
    assert x.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(x[0, :, 0, 0], [0, 200, 200, 0])  # centred, padded rows


# -- real calibration reproduced from image files ----------------------------------------

CACHE = Path.home() / ".cache" / "onnxprune"
REAL = {  # model -> (preset, extra options)
    "ppocr_cls": ("paddle-ocr", ()),
    "ppocr_rec": ("paddle-ocr", ()),
    # ppocr_det's calibration is rendered text pages now (onnxprune.testing.realdata), not
    # crops of these photos: it has no image folder to reproduce.
    "mtcnn_onet": ("mtcnn", ()),
}


@pytest.fixture(scope="module")
def fetcher() -> ModuleType:
    """tools/fetch_models.py as a module: its photos, crops and recipes."""
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("onnxprune_fetch_models_pre",
                                                  REPO / "tools" / "fetch_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _crops(fetcher: ModuleType, name: str, count: int) -> list[np.ndarray]:
    """The RGB crops fetch_models.build_calib cut for ``name``, same generator, same order."""
    spec = fetcher.SPECS[name]
    pics = fetcher.photos()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    _, _, h, w = spec.input_shape
    out = []
    for i in range(count):
        img = pics[i % len(pics)][1]
        if spec.preprocess in ("ppocr_cls", "ppocr_rec"):
            aspect = float(rng.uniform(1.5, 1.25 * w / h))
        else:
            aspect = w / h
        out.append(fetcher._random_crop(rng, img, aspect))
    return out


@pytest.mark.real
@pytest.mark.parametrize("name", list(REAL))
def test_image_folder_reproduces_real_calibration(
    tmp_path: Path, fetcher: ModuleType, name: str
) -> None:
    npz = CACHE / "calib" / f"{name}.npz"
    model = CACHE / "models" / f"{name}.onnx"
    if not npz.exists() or not model.exists():
        pytest.skip("run tools/fetch_models.py first")
    with np.load(npz) as z:
        (key,) = z.files
        want = z[key]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, crop in enumerate(_crops(fetcher, name, len(want))):
        Image.fromarray(crop).save(folder / f"{i:03d}.png")  # lossless: the exact pixels
    preset, extra = REAL[name]
    pre = Preprocess.parse([preset, f"size={want.shape[2]},{want.shape[3]}", *extra])
    specs = ir.io_specs(ir.load_model(model))
    got = load_data(folder, specs, {}, image_options=pre).inputs[key]
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-6


def _ppocr_resize_norm_img(bgr: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """rapidocr's TextClassifier.resize_norm_img, in numpy with PIL's bilinear resize."""
    img_c, img_h, img_w = shape
    h, w = bgr.shape[:2]
    ratio = w / float(h)
    resized_w = img_w if math.ceil(img_h * ratio) > img_w else int(math.ceil(img_h * ratio))
    resized = np.asarray(Image.fromarray(bgr).resize((resized_w, img_h), Image.BILINEAR))
    resized = resized.astype("float32").transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    padding = np.zeros((img_c, img_h, img_w), dtype=np.float32)
    padding[:, :, :resized_w] = resized
    return padding


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_jpeg_png_folder_matches_ppocr_recipe(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    sizes = [(32, 100), (48, 400), (20, 30)]  # narrow, capped at W, short
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}"
                                                                             f"{suffix}")
    decoded = [np.asarray(Image.open(folder / f"{i}{suffix}").convert("RGB"))
               for i in range(len(sizes))]
    want = np.stack([_ppocr_resize_norm_img(np.ascontiguousarray(d[:, :, ::-1]), (3, 48, 192))
                     for d in decoded])
    spec = ir.TensorSpec("x", np.dtype(np.float32), (-1, 3, "?", "?"))
    got = load_data(folder, [spec], {}, image_options=Preprocess.parse(
        ["paddle-ocr", "size=48,192"])).inputs["x"]
    assert float(np.abs(got - want).max()) <= 1e-6


def test_channels_last_model_needs_layout_nhwc(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "a.png")
    spec = ir.TensorSpec("x", np.dtype(np.float32), ("N", 4, 4, 3))
    with pytest.raises(InputError, match="looks channels-last; add layout=nhwc"):
        load_data(folder, [spec], {"x": (1, 4, 4, 3)}, image_options=Preprocess.preset("yolo"))
    x = load_data(folder, [spec], {"x": (1, 4, 4, 3)},
                  image_options=Preprocess.parse(["yolo", "nhwc"])).inputs["x"]
    assert x.shape == (1, 4, 4, 3)
