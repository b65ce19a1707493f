"""Issue 4's benchmark: pruning methods and recovery on the digits models, and Torch-Pruning.

For each digits model (the two bundled, slimming-trained models and a *plainly trained* CNN,
same architecture and recipe without the L1 penalty on BN scales, trained here once and cached
under ``~/.cache/onnxprune``) and each MACs-kept target, it prunes with

    uniform-L1   allocation uniform,      criterion l1
    global-L1    allocation global,       criterion l1
    taylor       allocation hierarchical, criterion taylor
    effective    allocation hierarchical, criterion effective

each with recovery ``none``, ``comp`` (closed-form compensation), ``distill`` (distillation
only) and ``comp+distill`` (the default pipeline plus distillation), the same number of
distillation epochs for every method. Then Torch-Pruning 1.6.1 (``tp.pruner.MetaPruner``,
``MagnitudeImportance(p=1)`` and ``TaylorImportance`` with gradients of the cross-entropy on the
calibration set) prunes the same torch architecture, rebuilt from the ONNX initializers (BN is
folded on export: convs with bias, BN/Dropout as Identity; checked against onnxruntime within
1e-4), to the same MACs kept (``pruning_ratio`` bisected with ``tp.utils.count_ops_and_params``
until within 1 point), with no fine-tuning and with the same fine-tuning budget as onnxprune's
distillation: Adam(lr=1e-4), batch 32, seeded shuffle, MSE to the original model's outputs,
N epochs over the 256 calibration inputs, no labels, best epoch kept. Torch models are exported with the legacy
exporter and measured exactly like the onnxprune rows.

The effective filter analysis of each model is run once and passed to every ``prune`` call
(``analysis=``); this gives byte-identical models to letting each call run it (checked on the
digits models) and is much faster; ``--fresh-analysis`` turns that off. The ``time (s)``
column is the ``prune`` call (given the analysis) including distillation; for Torch-Pruning it
is the ``pruning_ratio`` bisection (every trial prunes a fresh copy) plus distillation.

Every row: test accuracy (onnxruntime, 540 held-out images of ``models/digits_test.npz``), MACs
and parameters kept (onnxprune's count: Conv/Gemm MACs at batch 1, float initializers), and
onnxruntime CPU latency p50 at batch 1 and 64 (1 thread, all graph optimisations; the models of
one model/target block are timed interleaved in shuffled round-robin order, medians). All rows
use ``round_to=1`` except the extra ``r16`` rows (``--round-to-rows``): onnxruntime's CPU
convolutions are much faster when channel counts are multiples of 8/16, so odd widths can make a
pruned model *slower* than the original at batch 64 despite half the MACs.

Benchmark-only dependencies: ``benchmarks/requirements.txt``.

Usage:
    python benchmarks/digits_compare.py                       # everything, ~10 min on 1 thread
    python benchmarks/digits_compare.py --quick               # cnn only, 0.5 only, 3 epochs
    python benchmarks/digits_compare.py --models digits_cnn --targets 0.5 --epochs 10 \
        --markdown out.md --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _digits as D  # noqa: E402

METHODS = {
    "uniform-L1": ("uniform", "l1"),
    "global-L1": ("global", "l1"),
    "taylor": ("hierarchical", "taylor"),
    "effective": ("hierarchical", "effective"),
    # the same-criterion ablation of the allocation (issue 12): only "how many" differs
    "uniform-eff": ("uniform", "effective"),
    "global-eff": ("global", "effective"),
}
RECOVERIES = {  # name -> (compensate, distill?)
    "none": (False, False),
    "comp": (True, False),
    "distill": (False, True),
    "comp+distill": (True, True),
    # the realistic budget of --train-epochs: distillation over the whole training split
    "comp+train": (True, "train"),
}
TP_METHODS = {"TP-L1": "magnitude", "TP-taylor": "taylor"}
DEFAULT_METHODS = ("uniform-L1", "global-L1", "taylor", "effective")
ARCH = {
    "digits_cnn": "digits_cnn",
    "digits_resnet": "digits_resnet",
    "digits_cnn_plain": "digits_cnn",
}


@dataclass
class Row:
    model: str
    target: float
    method: str
    recovery: str
    accuracy: float | None = None
    macs_kept: float | None = None
    params_kept: float | None = None
    p50_b1_ms: float | None = None
    p50_b64_ms: float | None = None
    time_s: float | None = None
    note: str = ""
    error: str | None = None
    extra: dict = field(default_factory=dict)


def model_path(name: str) -> Path:
    if name == "digits_cnn_plain":
        return D.plain_cnn(seed=0)
    return D.MODELS / f"{name}.onnx"


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[Row]) -> list[list[str]]:
    header = [
        "model",
        "target",
        "method",
        "recovery",
        "test acc",
        "MACs kept",
        "params kept",
        "p50 b1 (ms)",
        "p50 b64 (ms)",
        "time (s)",
        "note",
    ]
    out = [header]
    for r in rows:
        out.append(
            [
                r.model,
                fmt(r.target, ".2f") if r.target else "-",
                r.method,
                r.recovery,
                fmt(r.accuracy, ".4f"),
                fmt(r.macs_kept, ".3f"),
                fmt(r.params_kept, ".3f"),
                fmt(r.p50_b1_ms, ".4f"),
                fmt(r.p50_b64_ms, ".3f"),
                fmt(r.time_s, ".1f"),
                ("ERROR: " + r.error) if r.error else r.note,
            ]
        )
    return out


def render(cells: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        lines.insert(1, "|" + "|".join(["---"] * len(cells[0])) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    numeric = {4, 5, 6, 7, 8, 9}
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in cells
    )


def pivot(rows: list[Row], recoveries: list[str]) -> list[list[str]]:
    """Accuracy per (model, target, method) with one column per recovery."""
    header = ["model", "target", "method", *recoveries]
    out = [header]
    seen: dict[tuple, dict[str, str]] = {}
    for r in rows:
        if r.method == "original":
            continue
        key = (r.model, f"{r.target:.2f}", r.method)
        seen.setdefault(key, {})[r.recovery] = "ERR" if r.error else fmt(r.accuracy, ".4f")
    for key, accs in seen.items():
        out.append([*key, *[accs.get(rc, "") for rc in recoveries]])
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_block(
    name,
    model,
    data,
    analysis,
    tx,
    ty,
    x_cal,
    y_cal,
    teacher,
    target,
    args,
    tmp: Path,
    orig_cost,
    orig_sess,
):
    """All rows of one model at one target, latency interleaved across them."""
    import onnxprune

    rows: list[Row] = []
    protos = {}
    train_data = None
    if args.train_epochs:
        import numpy as np

        from onnxprune import ir
        from onnxprune.data import load_data

        np.savez(tmp / "train.npz", input=D.train_split())
        train_data = load_data(str(tmp / "train.npz"), ir.io_specs(model.proto),
                               model.input_shapes)
    jobs = [(m, rec, 1) for m in args.methods for rec in args.recoveries]
    if args.train_epochs and "effective" in args.methods:
        jobs.append(("effective", "comp+train", 1))
    jobs += [
        (m, rec, rt)
        for rt in args.round_to_rows
        for m in ("uniform-L1", "effective")
        for rec in ("none", "comp")
    ]
    for method, rec, round_to in jobs:
        allocation, criterion = METHODS[method]
        compensate, distill = RECOVERIES[rec]
        label = method if round_to == 1 else f"{method} r{round_to}"
        row = Row(name, target, label, rec)
        t0 = time.perf_counter()
        try:
            res = onnxprune.prune(
                model,
                target_macs=target,
                allocation=allocation,
                criterion=criterion,
                data=train_data if distill == "train" else data,
                compensate=compensate,
                distill_epochs=(args.train_epochs if distill == "train"
                                else args.epochs if distill else 0),
                distill_lr=args.train_lr if distill == "train" else args.distill_lr,
                round_to=round_to,
                seed=args.seed,
                analysis=analysis,
            )
            row.time_s = time.perf_counter() - t0
            protos[(label, rec)] = res.model
            row.extra["before_macs"] = res.before.macs
            row.extra["after_macs"] = res.after.macs
        except Exception as e:  # report, don't stop the benchmark
            row.time_s = time.perf_counter() - t0
            row.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160]
            log(f"[{name} {target} {label} {rec}] FAILED:\n{traceback.format_exc()}")
        rows.append(row)
        log(f"  {name} {target:.2f} {label:<11} {rec:<12} {row.time_s:6.1f}s {row.error or ''}")
    if not args.no_tp:
        for tp_name, imp in TP_METHODS.items():
            t0 = time.perf_counter()
            try:
                pm, ratio, kept_tp = D.tp_prune(teacher, target, imp, x_cal, y_cal)
                t_prune = time.perf_counter() - t0
                note = f"pruning_ratio={ratio:.4f} TP-count MACs kept={kept_tp:.3f}"
                protos[(tp_name, "none")] = D.export_torch(
                    pm, tmp / f"{name}_{target}_{tp_name}.onnx"
                )
                rows.append(Row(name, target, tp_name, "none", time_s=t_prune, note=note))
                t1 = time.perf_counter()
                D.distill_torch(pm, teacher, x_cal, args.epochs, seed=args.seed, lr=args.distill_lr)
                protos[(tp_name, "distill")] = D.export_torch(
                    pm, tmp / f"{name}_{target}_{tp_name}_ft.onnx"
                )
                rows.append(
                    Row(
                        name,
                        target,
                        tp_name,
                        "distill",
                        time_s=t_prune + time.perf_counter() - t1,
                        note=note,
                    )
                )
                if args.train_epochs:
                    # a realistic budget: fine-tune a fresh prune on the whole training split
                    pm2 = D.tp_prune(teacher, target, imp, x_cal, y_cal)[0]
                    t2 = time.perf_counter()
                    x_train = D.train_split()
                    D.distill_torch(pm2, teacher, x_train, args.train_epochs, seed=args.seed,
                                    lr=args.train_lr)
                    rec = "train"
                    protos[(tp_name, rec)] = D.export_torch(
                        pm2, tmp / f"{name}_{target}_{tp_name}_train.onnx"
                    )
                    rows.append(Row(name, target, tp_name, rec,
                                    time_s=t_prune + time.perf_counter() - t2,
                                    note=note + f"; {args.train_epochs} epochs x "
                                    f"{len(x_train)} training images, Adam {args.train_lr:g}"))
            except Exception as e:
                rows.append(
                    Row(name, target, tp_name, "none", error=f"{type(e).__name__}: {e}"[:160])
                )
                log(f"[{name} {target} {tp_name}] FAILED:\n{traceback.format_exc()}")
            log(f"  {name} {target:.2f} {tp_name:<11} {time.perf_counter() - t0:6.1f}s")

    sessions = {("original", "-"): orig_sess}
    for r in rows:
        key = (r.method, r.recovery)
        if key not in protos:
            continue
        proto = protos[key]
        c = D.cost(proto)
        r.macs_kept = c.macs / orig_cost.macs
        r.params_kept = c.params / orig_cost.params
        sess = D.session(proto)
        r.accuracy = D.accuracy(sess, tx, ty)
        sessions[key] = sess
    lat = {
        b: D.interleaved_latency(
            sessions,
            tx[:b],
            warmup=args.warmup,
            seed=args.seed,
            iterations=args.iterations if b == 1 else max(1, args.iterations // 2),
        )
        for b in (1, 64)
    }
    for r in rows:
        key = (r.method, r.recovery)
        if key in sessions:
            r.p50_b1_ms, r.p50_b64_ms = lat[1][key], lat[64][key]
    orig = Row(
        name,
        target,
        "original",
        "-",
        accuracy=D.accuracy(orig_sess, tx, ty),
        macs_kept=1.0,
        params_kept=1.0,
        p50_b1_ms=lat[1][("original", "-")],
        p50_b64_ms=lat[64][("original", "-")],
        note=f"{orig_cost.macs:,} MACs, {orig_cost.params:,} params",
    )
    return [orig, *rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", help="default digits_cnn,digits_resnet,digits_cnn_plain")
    ap.add_argument("--targets", help="MACs kept, comma-separated (default 0.5,0.3)")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help=f"comma-separated, from {','.join(METHODS)}")
    ap.add_argument("--recoveries", default=",".join(RECOVERIES))
    ap.add_argument("--epochs", type=int, help="distillation epochs, both tools (default 10)")
    ap.add_argument(
        "--distill-lr", type=float, default=1e-4, help="Adam learning rate (both tools)"
    )
    ap.add_argument(
        "--fresh-analysis",
        action="store_true",
        help="let every prune call run its own analysis (slower; same bytes)",
    )
    ap.add_argument(
        "--round-to-rows",
        default="16",
        help="extra rows: uniform-L1 and effective (none, comp) with these --round-to "
        "values ('' for none); every other row uses round_to=1",
    )
    ap.add_argument("--no-tp", action="store_true", help="skip the Torch-Pruning rows")
    ap.add_argument("--train-epochs", type=int, default=0, metavar="N",
                    help="a realistic budget: also fine-tune Torch-Pruning's models (recovery "
                    "'train') and distil onnxprune's effective+compensation model (recovery "
                    "'comp+train') for N epochs over the whole training split (1257 images, "
                    "MSE to the original, no labels)")
    ap.add_argument("--train-lr", type=float, default=1e-3,
                    help="Adam learning rate of --train-epochs (1e-3)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iterations", type=int, help="timed runs at batch 1 (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="defaults: digits_cnn, target 0.5, 3 epochs, 50 iterations",
    )
    ap.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    quick = {"models": "digits_cnn", "targets": "0.5", "epochs": 3, "iterations": 50}
    full = {
        "models": "digits_cnn,digits_resnet,digits_cnn_plain",
        "targets": "0.5,0.3",
        "epochs": 10,
        "iterations": 200,
    }
    for k, v in (quick if args.quick else full).items():  # explicit options win over --quick
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.models = [m for m in args.models.split(",") if m]
    args.targets = [float(t) for t in args.targets.split(",") if t]
    args.methods = [m for m in args.methods.split(",") if m]
    args.recoveries = [r for r in args.recoveries.split(",") if r]
    args.round_to_rows = [int(r) for r in args.round_to_rows.split(",") if r]
    for m in args.models:
        if m not in ARCH:
            ap.error(f"unknown model {m}; choose from {sorted(ARCH)}")
    for m in args.methods:
        if m not in METHODS:
            ap.error(f"unknown method {m}; choose from {sorted(METHODS)}")
    for r in args.recoveries:
        if r not in RECOVERIES:
            ap.error(f"unknown recovery {r}; choose from {sorted(RECOVERIES)}")

    import onnxruntime as ort
    import torch

    import onnxprune
    from onnxprune import ir
    from onnxprune.data import load_data

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    x_cal, y_cal = D.load_npz(D.CALIB)
    tx, ty = D.load_npz(D.TEST)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="digits_compare_") as td:
        tmp = Path(td)
        for name in args.models:
            path = model_path(name)
            model = onnxprune.load(str(path))
            data = load_data(
                str(D.CALIB), ir.io_specs(model.proto), model.input_shapes, labels=str(D.CALIB)
            )
            teacher, diff = D.torch_from_onnx(ARCH[name], path, check=tx)
            analysis, t_an = None, 0.0
            if not args.fresh_analysis:
                from onnxprune.analysis import analyze

                t0 = time.perf_counter()
                analysis = analyze(
                    model,
                    data,
                    objective="gauss-newton",
                    seed=args.seed,
                    device="cpu",
                    progress=False,
                    estimate=False,
                )
                t_an = time.perf_counter() - t0
            log(f"{name}: torch rebuild vs onnxruntime max|diff| = {diff:.1e} on the test set")
            orig_cost = D.cost(model.proto)
            orig_sess = D.session(model.proto)
            for target in args.targets:
                block = run_block(
                    name,
                    model,
                    data,
                    analysis,
                    tx,
                    ty,
                    x_cal,
                    y_cal,
                    teacher,
                    target,
                    args,
                    tmp,
                    orig_cost,
                    orig_sess,
                )
                block[0].note += f"; torch rebuild max|diff| {diff:.1e}"
                if analysis is not None:
                    block[0].note += f"; shared analysis {t_an:.1f}s"
                rows.extend(block)
                print(render(table(block)), flush=True)
                print(flush=True)

    total = time.perf_counter() - t_start
    settings = (
        f"onnxruntime {ort.__version__} CPU, 1 intra-op thread, ORT_ENABLE_ALL; "
        f"torch {torch.__version__} "
        f"(1 thread); distillation {args.epochs} epochs, Adam lr {args.distill_lr:g}, batch 32 "
        f"(onnxprune and TP alike); latency p50 of "
        f"{args.iterations} (batch 1) / {max(1, args.iterations // 2)} (batch 64) interleaved runs "
        f"after {args.warmup} warm-up; "
        f"test set {len(ty)} images; total {total:.0f}s"
    )
    print("=== all rows ===")
    print(render(table(rows)))
    print()
    print("=== test accuracy by recovery ===")
    tp_recs = ["none", "distill", *(["train", "comp+train"] if args.train_epochs else [])]
    recs = list(dict.fromkeys([*args.recoveries, *(tp_recs if not args.no_tp else [])]))
    print(render(pivot(rows, recs)))
    print()
    print(settings)
    if args.markdown:
        args.markdown.write_text(
            render(table(rows), markdown=True)
            + "\n\n"
            + render(pivot(rows, recs), markdown=True)
            + "\n\n"
            + settings
            + "\n"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
