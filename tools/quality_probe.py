"""Quick in-domain check of pruning quality on the PP-OCR models (and MTCNN on its calib set).

Renders text lines and pages with matplotlib's bundled fonts (no downloads), preprocesses them
as rapidocr does, prunes with the given options on a calibration split and measures a
task-like metric on a disjoint evaluation split (different seed, fonts and words):

- det: IoU of the text pixels (map > 0.3) of pruned vs original;
- rec: share of lines whose CTC greedy decoding is identical;
- cls: argmax agreement;
- mtcnn_rnet / mtcnn_onet: face-decision agreement (prob[:, 1] > 0.5) on the cached
  calibration photos (second half held out).

Usage: ``python tools/quality_probe.py MODEL TARGET [--opt key=value ...]``
(e.g. ``--opt objective=gauss-newton --opt refine=false``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw, ImageFont

CACHE = Path.home() / ".cache" / "onnxprune"
FONTS = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
CAL_FONTS = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf"]
EVAL_FONTS = ["STIXGeneral.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSans-Oblique.ttf",
              "STIXGeneralBol.ttf"]
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _word(rng: np.random.Generator, odd: bool) -> str:
    n = int(rng.integers(2, 9))
    # calibration and evaluation draw from disjoint halves of the word space (parity of a hash)
    while True:
        w = "".join(rng.choice(list(LETTERS), n))
        if (sum(map(ord, w)) % 2 == 1) == odd:
            return w


def _background(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    base = rng.uniform(170, 255, size=3)
    grad = np.linspace(0, rng.uniform(-40, 20), w)[None, :, None]
    noise = rng.normal(0, rng.uniform(2, 12), size=(h, w, 1))
    img = np.clip(base[None, None] + grad + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(img)


def _line(rng: np.random.Generator, fonts: list[str], odd: bool) -> tuple[Image.Image, str]:
    text = " ".join(_word(rng, odd) for _ in range(int(rng.integers(1, 4))))
    font = ImageFont.truetype(str(FONTS / rng.choice(fonts)), int(rng.integers(22, 36)))
    box = font.getbbox(text)
    w, h = box[2] - box[0] + 16, box[3] - box[1] + 12
    img = _background(rng, h, w)
    ink = tuple(int(v) for v in rng.uniform(0, 80, size=3))
    ImageDraw.Draw(img).text((8 - box[0], 6 - box[1]), text, font=font, fill=ink)
    return img, text


def _norm_line(img: Image.Image, width: int) -> np.ndarray:
    """rapidocr rec/cls: height 48, width by ratio (at most ``width``), (x/255-0.5)/0.5, pad."""
    w = min(width, int(np.ceil(48 * img.width / img.height)))
    a = np.asarray(img.resize((w, 48)), dtype=np.float32)[:, :, ::-1]  # BGR like cv2
    a = (a / 255.0 - 0.5) / 0.5
    out = np.zeros((3, 48, width), np.float32)
    out[:, :, :w] = a.transpose(2, 0, 1)
    return out


def _page(rng: np.random.Generator, fonts: list[str], odd: bool, size: int) -> np.ndarray:
    img = _background(rng, size, size)
    draw = ImageDraw.Draw(img)
    y = int(rng.integers(4, 20))
    while y < size - 20:
        font = ImageFont.truetype(str(FONTS / rng.choice(fonts)), int(rng.integers(12, 26)))
        text = " ".join(_word(rng, odd) for _ in range(int(rng.integers(1, 5))))
        x = int(rng.integers(4, size // 3))
        draw.text((x, y), text, font=font, fill=tuple(int(v) for v in rng.uniform(0, 90, 3)))
        y += int(font.size * rng.uniform(1.3, 2.5))
    a = np.asarray(img, dtype=np.float32)[:, :, ::-1] / 255.0  # BGR
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((a - mean) / std).astype(np.float32).transpose(2, 0, 1)


def make(model: str, n: int, split: str) -> np.ndarray:
    """Calibration (``cal``) or evaluation (``eval``) inputs of one model."""
    odd = split == "eval"
    rng = np.random.default_rng(1000 + (7 if odd else 0))
    fonts = EVAL_FONTS if odd else CAL_FONTS
    if model == "ppocr_det":
        return np.stack([_page(rng, fonts, odd, 320) for _ in range(n)])
    if model in ("ppocr_rec", "ppocr_cls"):
        width = 320 if model == "ppocr_rec" else 192
        out = []
        for i in range(n):
            img, _ = _line(rng, fonts, odd)
            if model == "ppocr_cls" and i % 2:
                img = img.rotate(180)
            out.append(_norm_line(img, width))
        return np.stack(out)
    x = np.load(CACHE / "calib" / f"{model}.npz")["input"]
    half = len(x) // 2
    return x[half:] if odd else x[:half]


def _run(path_or_bytes: str | bytes, x: np.ndarray) -> list[np.ndarray]:
    s = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    fixed = isinstance(s.get_inputs()[0].shape[0], int)
    if fixed:
        outs = [s.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
    return s.run(None, {name: x})


def _ctc(p: np.ndarray) -> list[tuple[int, ...]]:
    out = []
    for seq in p.argmax(-1):
        s = [int(c) for i, c in enumerate(seq) if c != 0 and (i == 0 or c != seq[i - 1])]
        out.append(tuple(s))
    return out


def metric(model: str, ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    """The task-like agreement of ``got`` with ``ref``."""
    if model == "ppocr_det":
        ious = []
        for a, b in zip(ref[0] > 0.3, got[0] > 0.3, strict=True):
            u = np.logical_or(a, b).sum()
            ious.append(1.0 if u == 0 else np.logical_and(a, b).sum() / u)
        return float(np.mean(ious))
    if model == "ppocr_rec":
        return float(np.mean([a == b for a, b in zip(_ctc(ref[0]), _ctc(got[0]), strict=True)]))
    if model == "ppocr_cls":
        return float(np.mean(ref[0].argmax(1) == got[0].argmax(1)))
    prob = [i for i, o in enumerate(ref) if o.shape[-1] == 2][-1]
    return float(np.mean((ref[prob][:, 1] > 0.5) == (got[prob][:, 1] > 0.5)))


def _value(text: str) -> object:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    """Prune one model to one target and print the metric as a JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("target", type=float)
    ap.add_argument("--cal", type=int, default=64)
    ap.add_argument("--eval", type=int, default=32)
    ap.add_argument("--opt", action="append", default=[])
    ap.add_argument("--tag", default="")
    ap.add_argument("--fisher", type=float, default=None)
    args = ap.parse_args()
    import onnxprune
    from onnxprune.analysis import measure

    measure.FISHER = args.fisher
    from onnxprune.data import Dataset

    path = str(CACHE / "models" / f"{args.model}.onnx")
    cal, ev = make(args.model, args.cal, "cal"), make(args.model, args.eval, "eval")
    opts = {k: _value(v) for k, v in (o.split("=", 1) for o in args.opt)}
    if "output_weights" in opts:
        opts["output_weights"] = tuple(
            (k, float(w)) for k, w in (p.split(":") for p in str(opts["output_weights"]).split(",")))
    model = onnxprune.load(path, input_shapes={"x": (1, *cal.shape[1:])} if "ppocr" in path else None)
    t = time.time()
    name = model.proto.graph.input[0].name
    res = onnxprune.prune(model, data=Dataset({name: cal}), target_macs=args.target, **opts)
    took = time.time() - t
    ref = _run(path, ev)
    got = _run(res.model.SerializeToString(), ev)
    out = {"model": args.model, "target": args.target, "opts": args.opt, "tag": args.tag,
           "fisher": args.fisher, "eval": args.eval,
           "metric": round(metric(args.model, ref, got), 4),
           "macs_kept": round(res.after.macs / res.before.macs, 3), "seconds": round(took, 1),
           "comp": res.compensation.line() if res.compensation else ""}
    print(json.dumps(out), flush=True)
    with open(os.environ.get("PROBE_LOG", "/tmp/quality_probe.jsonl"), "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
