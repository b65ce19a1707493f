"""Issue 5's *quality vs ratio* benchmark: accuracy / fidelity against MACs kept.

Digits models (the two bundled slimming-trained models and the plainly trained CNN, see
``digits_compare.py``): test accuracy (onnxruntime, 540 held-out images) against MACs kept for
each allocation/criterion, without recovery and with closed-form compensation; calibration
data ``models/digits_calib.npz`` (256 images).

Fetched real models (``python tools/fetch_models.py --json``; the cache must be filled):
fidelity of the pruned model's outputs to the original's against MACs kept, for uniform-L1
and hierarchical allocation with l1, taylor and effective criteria, compensation on: mean over
samples of the per-sample cosine of each output (the worst output is reported), and top-1
agreement for outputs that are class probabilities (softmax: [N, K]; per position for
[N, T, K] as in the CTC text recogniser and for [N, K, H, W] score maps). The real models come
with only 16 calibration samples, so their fidelity is measured **on the same samples that
calibrated the pruning** (in-sample), one sample at a time (some have a fixed batch of 1).
``picodet_layout`` (3.3 GMACs at 800x608) is left out by default to keep the run short; add it
with ``--real``. ``ppocr_det`` is calibrated on rendered text pages (tools/fetch_models.py);
for task metrics on disjoint in-domain evaluation sets see ``real_quality.py``.

Prints tables; ``--plot out.png`` also draws the curves (matplotlib); ``--quick`` runs a small
subset. Runs with 1 onnxruntime thread and 1 torch thread.

Usage:
    python benchmarks/quality_curves.py --plot quality.png
    python benchmarks/quality_curves.py --quick
    python benchmarks/quality_curves.py --skip-real --levels 0.9,0.7,0.5,0.3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _digits as D  # noqa: E402

DIGITS_CONFIGS = {  # label -> (allocation, criterion)
    "uniform-l1": ("uniform", "l1"),
    "global-l1": ("global", "l1"),
    "hier-l1": ("hierarchical", "l1"),
    "hier-l2": ("hierarchical", "l2"),
    "hier-random": ("hierarchical", "random"),
    "hier-taylor": ("hierarchical", "taylor"),
    "hier-effective": ("hierarchical", "effective"),
}
REAL_CONFIGS = {
    "uniform-l1": ("uniform", "l1"),
    "hier-l1": ("hierarchical", "l1"),
    "hier-taylor": ("hierarchical", "taylor"),
    "hier-effective": ("hierarchical", "effective"),
}
DIGITS_MODELS = ("digits_cnn", "digits_resnet", "digits_cnn_plain")
DEFAULT_REAL = ("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "ppocr_cls", "ppocr_det", "ppocr_rec")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def render(cells: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in cells
    )


def err_line(e: BaseException) -> str:
    s = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {s}"[:200]


def analyse(model, data, seed: int):
    """The effective filter analysis, run once per model and shared by every ``prune`` call
    (gives the same bytes as letting each call run it, much faster)."""
    from onnxprune.analysis import analyze

    t0 = time.perf_counter()
    an = analyze(
        model,
        data,
        objective="gauss-newton",
        seed=seed,
        device="cpu",
        progress=False,
        estimate=False,
    )
    return an, time.perf_counter() - t0


def prune(
    model,
    data,
    analysis,
    level: float,
    allocation: str,
    criterion: str,
    compensate: bool,
    seed: int,
):
    import onnxprune

    return onnxprune.prune(
        model,
        target_macs=level,
        allocation=allocation,
        criterion=criterion,
        data=data,
        compensate=compensate,
        distill_epochs=0,
        round_to=1,
        seed=seed,
        analysis=analysis,
    )


# --------------------------------------------------------------------------- digits


def digits_curves(args) -> list[dict]:
    import onnxprune
    from onnxprune import ir
    from onnxprune.data import load_data

    tx, ty = D.load_npz(D.TEST)
    results = []
    for name in args.digits:
        path = (
            D.plain_cnn(seed=0, log=log)
            if name == "digits_cnn_plain"
            else D.MODELS / f"{name}.onnx"
        )
        model = onnxprune.load(str(path))
        data = load_data(
            str(D.CALIB), ir.io_specs(model.proto), model.input_shapes, labels=str(D.CALIB)
        )
        base = D.cost(model.proto)
        acc0 = D.accuracy(D.session(model.proto), tx, ty)
        an, t_an = analyse(model, data, args.seed)
        log(f"{name}: analysis {t_an:.1f}s")
        results.append(
            {
                "model": name,
                "config": "original",
                "compensate": None,
                "level": 1.0,
                "macs_kept": 1.0,
                "accuracy": acc0,
            }
        )
        for label in args.digits_configs:
            allocation, criterion = DIGITS_CONFIGS[label]
            for comp in args.compensation:
                t0 = time.perf_counter()
                for level in args.levels:
                    rec = {"model": name, "config": label, "compensate": comp, "level": level}
                    try:
                        res = prune(model, data, an, level, allocation, criterion, comp, args.seed)
                        rec["macs_kept"] = D.cost(res.model).macs / base.macs
                        rec["accuracy"] = D.accuracy(D.session(res.model), tx, ty)
                    except Exception as e:
                        rec["error"] = err_line(e)
                        log(
                            f"[{name} {label} comp={comp} {level}] FAILED:\n"
                            f"{traceback.format_exc()}"
                        )
                    results.append(rec)
                log(f"  {name} {label:<15} comp={int(comp)} {time.perf_counter() - t0:6.1f}s")
    return results


def digits_table(results: list[dict], levels: list[float]) -> str:
    header = ["model", "config", "comp", *[f"{lv:.1f}" for lv in levels]]
    cells = [header]
    orig = {r["model"]: r["accuracy"] for r in results if r["config"] == "original"}
    for (model, config, comp), recs in _grouped(results).items():
        by = {r["level"]: r for r in recs}
        cells.append(
            [
                model,
                config,
                "yes" if comp else "no",
                *[_cell(by.get(lv), "accuracy", ".4f") for lv in levels],
            ]
        )
    body = render(cells)
    orig_line = ", ".join(f"{m} {a:.4f}" for m, a in orig.items())
    macs = _macs_line(results, levels)
    return f"{body}\noriginal test accuracy: {orig_line}\n{macs}"


# --------------------------------------------------------------------------- real models


def fetched_models() -> list[dict]:
    out = subprocess.run(
        [sys.executable, str(D.ROOT / "tools" / "fetch_models.py"), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def parse_shapes(specs: list[str]) -> dict[str, tuple[int, ...]]:
    out = {}
    for s in specs:
        name, dims = s.rsplit(":", 1)
        out[name] = tuple(int(d) for d in dims.split(","))
    return out


def run_one_by_one(sess, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    n = len(next(iter(inputs.values())))
    outs = [sess.run(None, {k: v[i : i + 1] for k, v in inputs.items()}) for i in range(n)]
    return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]


def _class_axis(a: np.ndarray) -> int | None:
    """Axis of class probabilities (non-negative, summing to 1): the last axis of [N, K] or
    [N, T, K] (as in the CTC text recogniser), or axis 1 of an [N, K, H, W] score map."""
    if a.min() < 0:
        return None
    axes = {2: [-1], 3: [-1], 4: [1]}.get(a.ndim, [])
    for ax in axes:
        if a.shape[ax] > 1 and np.allclose(a.sum(ax), 1.0, atol=1e-3):
            return ax
    return None


def fidelity(ref: list[np.ndarray], out: list[np.ndarray], names: list[str]) -> dict:
    cos, top1 = {}, {}
    for name, a, b in zip(names, ref, out, strict=True):
        a2 = a.reshape(len(a), -1).astype(np.float64)
        b2 = b.reshape(len(b), -1).astype(np.float64)
        na, nb = np.linalg.norm(a2, axis=1), np.linalg.norm(b2, axis=1)
        c = (a2 * b2).sum(1) / np.maximum(na * nb, 1e-30)
        c[(na == 0) & (nb == 0)] = 1.0
        cos[name] = float(c.mean())
        ax = _class_axis(a)
        if ax is not None:  # softmax scores: top-1 agreement per sample (and position)
            top1[name] = float((a.argmax(ax) == b.argmax(ax)).mean())
    return {
        "cosine": min(cos.values()),
        "cosine_per_output": cos,
        "top1": min(top1.values()) if top1 else None,
    }


def real_curves(args) -> list[dict]:
    import onnxprune
    from onnxprune import ir
    from onnxprune.data import load_data

    infos = {m["name"]: m for m in fetched_models()}
    results = []
    for name in args.real:
        if name not in infos:
            log(f"skip {name}: not among the fetched models {sorted(infos)}")
            continue
        info = infos[name]
        t_model = time.perf_counter()
        shapes = parse_shapes(info["input_shapes"])
        try:
            model = onnxprune.load(info["path"], input_shapes=shapes)
            data = load_data(info["calib"], ir.io_specs(model.proto), model.input_shapes)
        except Exception as e:
            results.append({"model": name, "config": "load", "level": None, "error": err_line(e)})
            log(f"[{name}] load FAILED:\n{traceback.format_exc()}")
            continue
        inputs = data.inputs
        sess0 = D.session(model.proto)
        names = [o.name for o in sess0.get_outputs()]
        ref = run_one_by_one(sess0, inputs)
        base = model.cost
        try:
            an, t_an = analyse(model, data, args.seed)
        except Exception as e:
            results.append({"model": name, "config": "load", "level": None, "error": err_line(e)})
            log(f"[{name}] analysis FAILED:\n{traceback.format_exc()}")
            continue
        log(f"{name}: analysis {t_an:.1f}s")
        for label in args.real_configs:
            allocation, criterion = REAL_CONFIGS[label]
            t0 = time.perf_counter()
            for level in args.real_levels:
                rec = {"model": name, "config": label, "compensate": True, "level": level}
                try:
                    t1 = time.perf_counter()
                    res = prune(model, data, an, level, allocation, criterion, True, args.seed)
                    rec["prune_s"] = time.perf_counter() - t1
                    rec["macs_kept"] = res.after.macs / res.before.macs
                    rec["params_kept"] = res.after.params / res.before.params
                    out = run_one_by_one(D.session(res.model), inputs)
                    rec.update(fidelity(ref, out, names))
                except Exception as e:
                    rec["error"] = err_line(e)
                    log(f"[{name} {label} {level}] FAILED:\n{traceback.format_exc()}")
                results.append(rec)
            log(f"  {name} {label:<15} {time.perf_counter() - t0:6.1f}s")
        log(
            f"{name}: {time.perf_counter() - t_model:.1f}s ({base.macs:,} MACs, "
            f"{len(data)} calib samples)"
        )
    return results


def real_table(results: list[dict], levels: list[float]) -> str:
    header = ["model", "config", "metric", *[f"{lv:.1f}" for lv in levels]]
    cells = [header]
    errors = []
    for (model, config, _), recs in _grouped(results).items():
        by = {r["level"]: r for r in recs}
        cells.append(
            [model, config, "cosine", *[_cell(by.get(lv), "cosine", ".4f") for lv in levels]]
        )
        if any(r.get("top1") is not None for r in recs):
            cells.append(
                [model, config, "top-1", *[_cell(by.get(lv), "top1", ".4f") for lv in levels]]
            )
        cells.append(
            [model, config, "MACs kept", *[_cell(by.get(lv), "macs_kept", ".3f") for lv in levels]]
        )
        errors += [f"  {model} {config} {r['level']}: {r['error']}" for r in recs if r.get("error")]
    text = render(cells)
    if errors:
        text += "\nerrors:\n" + "\n".join(errors)
    return text


# --------------------------------------------------------------------------- shared


def _grouped(results: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in results:
        if r["config"] in ("original", "load"):
            continue
        out.setdefault((r["model"], r["config"], r.get("compensate")), []).append(r)
    return out


def _cell(rec: dict | None, key: str, spec: str) -> str:
    if rec is None:
        return ""
    if rec.get("error"):
        return "ERR"
    v = rec.get(key)
    return "-" if v is None else format(v, spec)


def _macs_line(results: list[dict], levels: list[float]) -> str:
    """Largest |MACs kept - target| over the digits runs (how well targets are met)."""
    devs = [
        abs(r["macs_kept"] - r["level"])
        for r in results
        if r["config"] != "original" and r.get("macs_kept") is not None
    ]
    return (
        f"MACs kept vs target: max |kept - target| = {max(devs):.3f} over {len(devs)} runs"
        if devs
        else ""
    )


def plot(digits: list[dict], real: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dmodels = list(dict.fromkeys(r["model"] for r in digits))
    rmodels = list(dict.fromkeys(r["model"] for r in real if r["config"] != "load"))
    panels = [("digits", m) for m in dmodels] + [("real", m) for m in rmodels]
    if not panels:
        return
    ncol = min(3, len(panels))
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.0 * nrow), squeeze=False)
    colors = {c: f"C{i}" for i, c in enumerate(dict.fromkeys([*DIGITS_CONFIGS, *REAL_CONFIGS]))}
    for ax, (kind, m) in zip(axes.flat, panels, strict=False):
        src = digits if kind == "digits" else real
        for (model, config, comp), recs in _grouped(src).items():
            if model != m:
                continue
            pts = sorted(
                (r["macs_kept"], r["accuracy" if kind == "digits" else "cosine"])
                for r in recs
                if not r.get("error") and r.get("macs_kept") is not None
            )
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            style = "-" if comp else "--"
            lab = f"{config}{' +comp' if comp and kind == 'digits' else ''}"
            ax.plot(xs, ys, style, marker="o", ms=3, color=colors[config], label=lab)
        if kind == "digits":
            orig = [r["accuracy"] for r in digits if r["model"] == m and r["config"] == "original"]
            if orig:
                ax.axhline(orig[0], color="k", lw=0.8, ls=":", label="original")
            ax.set_ylabel("test accuracy")
        else:
            ax.set_ylabel("output cosine (worst output)")
        ax.set_title(m)
        ax.set_xlabel("MACs kept")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--digits", default=",".join(DIGITS_MODELS))
    ap.add_argument("--digits-configs", default=",".join(DIGITS_CONFIGS))
    ap.add_argument("--levels", default="0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2", help="digits MACs kept")
    ap.add_argument("--compensation", default="no,yes", help="digits: no, yes or both")
    ap.add_argument("--real", default=",".join(DEFAULT_REAL), help="fetched models ('' for none)")
    ap.add_argument("--real-configs", default=",".join(REAL_CONFIGS))
    ap.add_argument("--real-levels", default="0.9,0.7,0.5,0.3")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", type=Path, help="write the curves to this PNG")
    ap.add_argument("--json", type=Path, help="write all results as JSON")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="digits_cnn at 0.7/0.5/0.3 with uniform-l1 and hier-effective; mtcnn_rnet only",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.digits, args.levels = "digits_cnn", "0.7,0.5,0.3"
        args.digits_configs = "uniform-l1,hier-effective"
        args.real, args.real_levels, args.real_configs = (
            "mtcnn_rnet",
            "0.7,0.5",
            "hier-l1,hier-effective",
        )
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    args.digits = split(args.digits)
    args.digits_configs = split(args.digits_configs)
    args.real = [] if args.skip_real else split(args.real)
    args.real_configs = split(args.real_configs)
    args.levels = [float(x) for x in split(args.levels)]
    args.real_levels = [float(x) for x in split(args.real_levels)]
    args.compensation = [{"no": False, "yes": True}[c] for c in split(args.compensation)]
    for c in args.digits_configs:
        if c not in DIGITS_CONFIGS:
            ap.error(f"unknown config {c}; choose from {sorted(DIGITS_CONFIGS)}")
    for c in args.real_configs:
        if c not in REAL_CONFIGS:
            ap.error(f"unknown config {c}; choose from {sorted(REAL_CONFIGS)}")

    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    digits = digits_curves(args) if args.digits else []
    t_digits = time.perf_counter() - t0
    if digits:
        print("=== digits: test accuracy vs MACs kept (columns: target MACs kept) ===")
        print(digits_table(digits, args.levels))
        print(flush=True)
    t1 = time.perf_counter()
    real = real_curves(args) if args.real else []
    t_real = time.perf_counter() - t1
    if real:
        print(
            "=== fetched models: fidelity vs MACs kept "
            "(compensation on; in-sample, 16 calib samples) ==="
        )
        print(real_table(real, args.real_levels))
        print()
    print(
        f"onnxruntime {ort.__version__} CPU 1 thread, torch {torch.__version__} 1 thread; "
        f"digits {t_digits:.0f}s, real models {t_real:.0f}s"
    )
    if args.plot:
        plot(digits, real, args.plot)
    if args.json:
        args.json.write_text(json.dumps({"digits": digits, "real": real}, indent=1))
    return 1 if any(r.get("error") for r in digits + real) else 0


if __name__ == "__main__":
    sys.exit(main())
