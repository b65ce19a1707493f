from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnxprune.data import Dataset, ImageOptions, load_data
from onnxprune.errors import InputError
from onnxprune.ir import TensorSpec

RNG_SEED = 0
X = TensorSpec("x", np.dtype(np.float32), ("N", 1, 4, 4))
SHAPES = {"x": (1, 1, 4, 4)}
IDS = TensorSpec("ids", np.dtype(np.int32), ("N", 5))


def _x(n: int = 6, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(RNG_SEED).standard_normal((n, 1, 4, 4)).astype(dtype)


def _save(tmp_path: Path, name: str, **arrays: np.ndarray) -> Path:
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, next(iter(arrays.values())))
    else:
        np.savez(path, **arrays)
    return path


def _expect_error(fragments: tuple[str, ...], *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        load_data(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8, np.int64])
def test_npy_is_cast_to_the_input_dtype(tmp_path, dtype):
    x = _x(dtype=dtype) if np.dtype(dtype).kind == "f" else np.arange(6 * 16).reshape(6, 1, 4, 4)
    data = load_data(_save(tmp_path, "x.npy", x=x.astype(dtype)), [X], SHAPES)
    assert data.inputs["x"].dtype == np.float32
    assert data.inputs["x"].shape == (6, 1, 4, 4)
    np.testing.assert_array_equal(data.inputs["x"], x.astype(dtype).astype(np.float32))
    assert len(data) == 6 and data.labels is None and data.source.endswith("x.npy")


@pytest.mark.parametrize("key", ["x", "anything"])
@pytest.mark.parametrize("label_key", ["labels", "y", None])
def test_npz_keys_and_embedded_labels(tmp_path, key, label_key):
    labels = np.array([0, 1, 2, 3, 4, 5])
    extra = {label_key: labels} if label_key else {}
    data = load_data(_save(tmp_path, "d.npz", **{key: _x()}, **extra), [X], SHAPES)
    np.testing.assert_array_equal(data.inputs["x"], _x())
    if label_key:
        np.testing.assert_array_equal(data.labels, labels)
        assert data.labels.dtype == np.int64
    else:
        assert data.labels is None


def test_npz_with_two_inputs_and_int_cast(tmp_path):
    ids = np.arange(30, dtype=np.int64).reshape(6, 5)
    path = _save(tmp_path, "d.npz", x=_x(), ids=ids)
    data = load_data(path, [X, IDS], {"x": (1, 1, 4, 4), "ids": (1, 5)})
    assert data.inputs["ids"].dtype == np.int32
    np.testing.assert_array_equal(data.inputs["ids"], ids)


@pytest.mark.parametrize("as_file", [True, False])
def test_labels_argument_and_limit(tmp_path, as_file):
    labels = np.arange(6, dtype=np.int32)
    given = _save(tmp_path, "l.npy", labels=labels) if as_file else labels
    data = load_data(_save(tmp_path, "x.npy", x=_x()), [X], SHAPES, labels=given, limit=4)
    assert len(data) == 4
    np.testing.assert_array_equal(data.labels, [0, 1, 2, 3])
    np.testing.assert_array_equal(data.inputs["x"], _x()[:4])


@pytest.mark.parametrize(
    ("n", "size", "expected"), [(7, 3, [3, 3, 1]), (6, 3, [3, 3]), (2, 8, [2])]
)
def test_batches_and_take(n, size, expected):
    labels = np.arange(n)
    data = Dataset({"x": _x(n)}, labels, "mem")
    got = list(data.batches(size))
    assert [len(b["x"]) for b, _ in got] == expected
    np.testing.assert_array_equal(np.concatenate([lab for _, lab in got]), labels)
    np.testing.assert_array_equal(np.concatenate([b["x"] for b, _ in got]), data.inputs["x"])
    assert len(data.take(2)) == 2
    np.testing.assert_array_equal(data.take(2).labels, labels[:2])


def test_dataset_rejects_mismatched_lengths():
    with pytest.raises(InputError, match="same number of samples"):
        Dataset({"x": _x(3)}, np.arange(4), "mem")


@pytest.mark.parametrize("n", [1, 5])
def test_random_samples_are_seeded_and_quiet(caplog, n):
    specs = [X, IDS]
    shapes = {"x": (1, 1, 4, 4), "ids": (1, 5)}
    with caplog.at_level(logging.WARNING, logger="onnxprune.data"):
        a = load_data(None, specs, shapes, random_samples=n, seed=3)
    b = load_data(None, specs, shapes, random_samples=n, seed=3)
    c = load_data(None, specs, shapes, random_samples=n, seed=4)
    assert a.inputs["x"].shape == (n, 1, 4, 4) and a.inputs["ids"].shape == (n, 5)
    assert a.inputs["x"].dtype == np.float32 and a.inputs["ids"].dtype == np.int32
    np.testing.assert_array_equal(a.inputs["x"], b.inputs["x"])
    assert not np.array_equal(a.inputs["x"], c.inputs["x"])
    assert a.source == "random"
    # random inputs are fine for bench; the analysis warns about them (test_cli_ux, test_api)
    assert not any("not the task" in r.message for r in caplog.records)


def _image_dir(tmp_path: Path, pixels: list[np.ndarray]) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p.astype(np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "notes.txt").write_text("ignored")
    return folder


def _solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


@pytest.mark.parametrize("resize", ["stretch", "shorter-side+center-crop", "letterbox"])
def test_image_folder_solid_colour_and_normalisation(tmp_path, resize):
    folder = _image_dir(tmp_path, [_solid(4, 4, (255, 0, 51)), _solid(6, 6, (0, 255, 102))])
    spec = TensorSpec("img", np.dtype(np.float32), ("N", 3, 2, 2))
    opts = ImageOptions(resize=resize, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    data = load_data(folder, [spec], {"img": (1, 3, 2, 2)}, image_options=opts)
    assert data.inputs["img"].shape == (2, 3, 2, 2)
    expected = (np.array([[255, 0, 51], [0, 255, 102]]) / 255 - 0.5) / np.array([0.5, 0.25, 0.5])
    np.testing.assert_allclose(data.inputs["img"].mean(axis=(2, 3)), expected, atol=1e-6)


def test_image_center_crop_and_letterbox_geometry(tmp_path):
    columns = np.array([10, 20, 30, 40], np.uint8)
    gray = np.broadcast_to(columns[None, :, None], (2, 4, 3)).copy()  # H=2, W=4
    folder = _image_dir(tmp_path, [gray])
    spec = TensorSpec("img", np.dtype(np.float32), ("N", 1, 2, 2))
    crop = ImageOptions(resize="shorter-side+center-crop", scale=1.0)
    got = load_data(folder, [spec], {"img": (1, 1, 2, 2)}, image_options=crop).inputs["img"]
    np.testing.assert_array_equal(got[0, 0], [[20, 30], [20, 30]])
    box = ImageOptions(resize="letterbox", scale=1.0)
    got = load_data(folder, [spec], {"img": (1, 1, 2, 2)}, image_options=box).inputs["img"]
    np.testing.assert_array_equal(got[0, 0, 1], [114, 114])  # padded row below the 1x2 image


@pytest.mark.parametrize(("order", "first"), [("rgb", 10), ("bgr", 30)])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_image_channel_order_and_layout(tmp_path, order, first, layout):
    folder = _image_dir(tmp_path, [_solid(3, 3, (10, 20, 30))])
    shape = (1, 3, 3, 3)
    spec = TensorSpec("img", np.dtype(np.float32), ("N", *shape[1:]))
    opts = ImageOptions(scale=1.0, channel_order=order, layout=layout)
    img = load_data(folder, [spec], {"img": shape}, image_options=opts).inputs["img"]
    assert img.shape == (1, 3, 3, 3)
    pixel = img[0, :, 1, 1] if layout == "nchw" else img[0, 1, 1, :]
    assert pixel.tolist() == [first, 20, 40 - first]


def test_image_folder_defaults_warn_and_use_model_size(tmp_path, caplog):
    folder = _image_dir(tmp_path, [_solid(5, 7, (51, 51, 51))])
    spec = TensorSpec("img", np.dtype(np.float32), ("N", 1, 3, 2))
    with caplog.at_level(logging.WARNING, logger="onnxprune.images"):
        data = load_data(folder, [spec], {"img": (1, 1, 3, 2)})
    assert data.inputs["img"].shape == (1, 1, 3, 2)
    np.testing.assert_allclose(data.inputs["img"], 0.2, atol=1e-6)
    assert any("no --preprocess" in r.message for r in caplog.records)


def _bad_files(tmp_path: Path) -> dict[str, tuple[object, dict, tuple[str, ...]]]:
    ok = _x()
    (tmp_path / "empty").mkdir()
    (tmp_path / "garbage.npy").write_bytes(b"not numpy at all")
    (tmp_path / "data.csv").write_text("1,2")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.png").write_bytes(b"\x89PNG broken")
    nan, inf = ok.copy(), ok.copy()
    nan[2, 0, 1, 1] = np.nan
    inf[4, 0, 0, 0] = np.inf
    return {
        "missing": (tmp_path / "nope.npz", {}, ("no such file",)),
        "garbage": (tmp_path / "garbage.npy", {}, ("not a readable .npy",)),
        "format": (tmp_path / "data.csv", {}, ("unknown data format",)),
        "npz-names": (_save(tmp_path, "a.npz", a=ok, b=ok), {}, ("['a', 'b']", "['x']")),
        "rank": (_save(tmp_path, "r.npy", x=ok[:, 0]), {}, ("rank 3", "rank 4")),
        "dims": (_save(tmp_path, "d.npy", x=_x()[:, :, :3]), {}, ("[6, 1, 3, 4]", "[N,1,4,4]")),
        "float-for-int": (
            _save(tmp_path, "f.npy", x=np.ones((6, 5), np.float32)),
            {"specs": [IDS]},
            ("float32", "int32"),
        ),
        "nan": (_save(tmp_path, "nan.npy", x=nan), {}, ("NaN/inf", "sample 2")),
        "inf": (_save(tmp_path, "inf.npy", x=inf), {}, ("NaN/inf", "sample 4")),
        "few": (_save(tmp_path, "few.npy", x=ok), {"min_samples": 10}, ("6 samples", "10")),
        "labels-count": (
            _save(tmp_path, "lc.npz", x=ok, labels=np.arange(5)),
            {},
            ("5 labels", "6 samples"),
        ),
        "labels-float": (
            _save(tmp_path, "lf.npz", x=ok, y=np.zeros(6)),
            {},
            ("integer class ids", "float64"),
        ),
        "empty-dir": (tmp_path / "empty", {}, ("no images",)),
        "corrupt-image": (corrupt, {}, ("a.png", "not a readable image")),
        "npy-multi": (_save(tmp_path, "m.npy", x=ok), {"specs": [X, IDS]}, ("one array",)),
        "int-overflow": (
            _save(tmp_path, "o.npy", x=np.full((2, 5), 2**40)),
            {"specs": [IDS]},
            ("int64", "int32"),
        ),
    }


BAD = [
    "missing",
    "garbage",
    "format",
    "npz-names",
    "rank",
    "dims",
    "float-for-int",
    "nan",
    "inf",
    "few",
    "labels-count",
    "labels-float",
    "empty-dir",
    "corrupt-image",
    "npy-multi",
    "int-overflow",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_data_is_a_one_line_input_error(tmp_path, case):
    path, kwargs, fragments = _bad_files(tmp_path)[case]
    specs = kwargs.pop("specs", [X])
    shapes = {s.name: SHAPES["x"] if s.name == "x" else (1, 5) for s in specs}
    _expect_error(fragments, path, specs, shapes, **kwargs)


@pytest.mark.parametrize("random_samples", [None, 4])
def test_exactly_one_of_path_or_random(tmp_path, random_samples):
    path = None if random_samples is None else _save(tmp_path, "x.npy", x=_x())
    _expect_error(("exactly one",), path, [X], SHAPES, random_samples=random_samples)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"resize": "crop"}, "resize 'crop'"),
        ({"std": (0.0,)}, "std"),
        ({"layout": "chw"}, "layout"),
    ],
)
def test_bad_image_options(kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        ImageOptions(**kwargs)
