"""Issue 11's yardstick: task metric vs MACs kept on the trained real models.

For each real model (PP-OCRv4 det / rec, PP-OCR angle cls, PicoDet CDLA layout, MTCNN
R-Net / O-Net) and each MACs target, prune with in-domain calibration data
(``onnxprune.testing.realdata``, label-free) and score the pruned model's *decisions* on a
disjoint evaluation set against the original's (``onnxprune.testing.task_metrics``: text-pixel
IoU, identical strings, angle agreement, layout detection F1, face agreement; 1.0 = decides
exactly as the original).

Methods (``--methods``; a method the current API cannot express is printed as n/a with why):

- ``default``: ``onnxprune.prune(model, target_macs=t, data=calib)``;
- ``no-compensation``: the same with ``compensate=False``;
- ``gauss-newton``: ``objective="gauss-newton"`` when the default objective is another one
  (n/a while gauss-newton *is* the default);
- ``no-refine``: ``refine=False`` when ``prune`` has a ``refine`` option;
- ``uniform-l1``: ``allocation="uniform", criterion="l1", compensate=False``;
- ``onnxsim-l2`` / ``onnxsim-wanda``: the peer onnxsim 0.8.1 (``onnxsim.pruning``
  ``apply_structured_pruning`` / ``apply_structured_wanda_pruning``, after its own
  ``onnxsim.simplify`` so that BatchNorm is folded), its per-chain ``sparsity`` bisected until
  the MACs kept match the target within ``--macs-tol``; n/a where onnxsim cannot remove that
  much from the model;
- ``distill`` (with ``--distill SECONDS``): the default plus distillation, ``distill_time=SECONDS``
  when ``prune`` has that option, else ``distill_epochs=--distill-epochs``.

``--set KEY=VALUE`` (repeatable) adds a ``prune`` option to every onnxprune method of the run
(VALUE read as JSON when it parses, else as text), e.g. ``--set allocation=global``,
``--set steps=2``, ``--set ridge=1e-3``; the rows say which (``default allocation=global``).

By default the analysis is run once per model and objective and shared by the methods that
use it (``prune(..., analysis=...)`` gives the same model as letting each call run it);
``--fresh-analysis`` lets every call run its own.

Outputs: a markdown table on stdout (cell: metric, and the MACs actually kept), the base rates
of each evaluation set, ``--json`` records and ``--plot`` a PNG (metric vs MACs kept per model).

Usage (from the repository root)::

    python benchmarks/real_quality.py --targets 0.7 0.5 --json rq.json --plot rq.png
    python benchmarks/real_quality.py --only mtcnn_rnet ppocr_cls --quick
    python benchmarks/real_quality.py --only ppocr_det --distill 60
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MODELS = ("ppocr_det", "ppocr_rec", "ppocr_cls", "picodet_layout", "mtcnn_rnet", "mtcnn_onet")
TARGETS = (0.8, 0.7, 0.5, 0.3)
METHODS = (
    "default", "no-compensation", "gauss-newton", "no-refine", "round-to-1", "uniform-l1",
    "onnxsim-l2", "onnxsim-wanda", "distill",
)  # fmt: skip
QUICK = {"calib": 32, "eval": 24, "targets": (0.5,), "methods": ("default", "uniform-l1")}


def log(msg: str) -> None:
    sys.stderr.write(f"real_quality: {msg}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class Case:
    """Everything one model needs: loaded model, calibration data, eval inputs, references."""

    name: str
    model: Any  # onnxprune.Model
    calib: Any  # onnxprune.data.Dataset
    eval_x: np.ndarray
    ref: Any  # the original's decisions on the eval set
    charset: list[str] | None
    base_rates: dict[str, Any]
    more: Any = None  # --distill-data: a larger calibration-split set for distillation alone


# ----------------------------------------------------------------------------- methods


def option_defaults() -> dict[str, Any]:
    """The fields of ``onnxprune.PruneOptions`` and their defaults (what ``prune`` accepts)."""
    import dataclasses

    import onnxprune

    return {f.name: f.default for f in dataclasses.fields(onnxprune.PruneOptions)}


def prune_options(method: str, args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    """``prune`` keyword arguments for an onnxprune method, or (None, why it is n/a)."""
    opts, note = _method_options(method, args)
    if opts is not None:
        opts = {**opts, **args.set}
    return opts, note


def _method_options(method: str, args: argparse.Namespace
                    ) -> tuple[dict[str, Any] | None, str]:  # fmt: skip
    params = option_defaults()
    default_objective = params.get("objective")
    if method == "default":
        return {}, ""
    if method == "no-compensation":
        return {"compensate": False}, ""
    if method == "gauss-newton":
        if default_objective == "gauss-newton":
            return None, "gauss-newton is the default objective"
        return {"objective": "gauss-newton"}, ""
    if method == "no-refine":
        if "refine" not in params:
            return None, "prune() has no refine option"
        return {"refine": False}, ""
    if method == "round-to-1":  # exact-MACs widths instead of the latency grid
        return {"round_to": 1}, ""
    if method == "uniform-l1":
        return {"allocation": "uniform", "criterion": "l1", "compensate": False}, ""
    if method == "distill":
        if not args.distill:
            return None, "run with --distill SECONDS"
        if "distill_time" in params:
            more = f", distill_data={args.distill_data}" if args.distill_data else ""
            return {"distill_time": float(args.distill)}, f"distill_time={args.distill}s{more}"
        return {"distill_epochs": args.distill_epochs}, (
            f"distill_epochs={args.distill_epochs} (prune() has no distill_time)"
        )
    raise KeyError(method)


def _analysis(case: Case, opts: dict[str, Any], cache: dict[str, Any], args: argparse.Namespace
              ) -> Any:  # fmt: skip
    """The shared analysis for the objective ``opts`` asks for (None: let prune run it)."""
    from onnxprune.analysis import analyze

    if args.fresh_analysis or opts.get("criterion", "effective") != "effective":
        return None
    objective = opts.get("objective", option_defaults().get("objective"))
    if objective not in cache:
        t0 = time.perf_counter()
        cache[objective] = analyze(case.model, case.calib, objective=objective, seed=args.seed,
                                   estimate=False)  # fmt: skip
        log(f"  {case.name}: analysis ({objective}) {time.perf_counter() - t0:.1f}s")
    return cache[objective]


def run_onnxprune(case: Case, target: float, opts: dict[str, Any], analysis: Any,
                  args: argparse.Namespace) -> tuple[bytes, float, dict[str, Any]]:  # fmt: skip
    """The pruned model, its MACs kept and what distillation did (empty without it)."""
    import dataclasses

    import onnxprune

    kw = dict(opts)
    if analysis is not None:
        kw["analysis"] = analysis
    if case.more is not None and kw.get("distill_time") is not None:
        kw["distill_data"] = case.more
    res = onnxprune.prune(case.model, target_macs=target, data=case.calib, seed=args.seed, **kw)
    report = getattr(res, "distillation", None)
    story = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else {}
    return res.model.SerializeToString(), res.after.macs / res.before.macs, story


def _macs_kept(case: Case, proto: Any) -> float:
    import onnxprune

    pruned = onnxprune.load(proto, input_shapes=case.model.input_shapes)
    return pruned.cost.macs / case.model.cost.macs


def run_onnxsim(case: Case, target: float, wanda: bool, args: argparse.Namespace,
                memo: dict[str, Any]) -> tuple[bytes | None, float, str]:  # fmt: skip
    """onnxsim's structured pruning at the per-chain sparsity whose MACs kept match ``target``.

    The sparsity is bisected for each method on its own (Wanda and L2 may match different
    chains); n/a when even sparsity 0.95 keeps more than ``target + --macs-tol``.
    """
    import onnxsim
    from onnxsim import pruning as P

    if "simplified" not in memo:
        shapes = {k: list(v) for k, v in case.model.input_shapes.items()}
        memo["simplified"], _ = onnxsim.simplify(case.model.proto, overwrite_input_shapes=shapes)
        name = case.model.proto.graph.input[0].name
        x = case.calib.inputs[name]
        memo["batches"] = [{name: x[i : i + 1]} for i in range(min(len(x), args.wanda_samples))]
    simple, batches = memo["simplified"], memo["batches"]
    runs: dict[float, tuple[Any, float]] = memo.setdefault("wanda" if wanda else "l2", {})

    def at(sparsity: float) -> tuple[Any, float]:
        if sparsity not in runs:
            if wanda:
                pruned = P.apply_structured_wanda_pruning(
                    simple, calibration_data=batches, sparsity=sparsity
                )
            else:
                pruned = P.apply_structured_pruning(simple, sparsity=sparsity)
            runs[sparsity] = (pruned, _macs_kept(case, pruned))
        return runs[sparsity]

    lo, hi = 0.0, 0.95
    pruned, kept = at(hi)
    if kept > target + args.macs_tol:
        what = "prunes nothing" if kept > 0.999 else f"keeps at least {kept:.3f} of the MACs"
        return None, kept, f"onnxsim {'Wanda' if wanda else 'L2'} {what} on this model"
    for _ in range(16):
        mid = (lo + hi) / 2
        pruned, kept = at(mid)
        if abs(kept - target) <= args.macs_tol / 2:
            break
        lo, hi = (mid, hi) if kept > target else (lo, mid)
    return pruned.SerializeToString(), kept, f"sparsity {mid:.3f}"


# ----------------------------------------------------------------------------- one model


def load_case(name: str, args: argparse.Namespace) -> Case:
    import onnxprune
    from onnxprune.data import Dataset
    from onnxprune.testing import realdata
    from onnxprune.testing import task_metrics as T

    path = realdata.model_path(name)
    spec = realdata.SPECS[name]
    model = onnxprune.load(path, input_shapes={spec.input_name: (1, *spec.shape)})
    calib = realdata.load(name, "calib", args.calib, seed=args.seed)
    ev = realdata.load(name, "eval", args.eval, seed=args.seed)
    charset = T.rec_charset(path) if name == "ppocr_rec" else None
    ref = T.decide(name, T.run(path, ev.x, threads=args.threads), charset=charset)
    data = Dataset(inputs=calib.feeds(), source=f"realdata {name} calib n={len(calib)}")
    rates = T.base_rates(name, ref, ev.meta)
    more = None
    if args.distill_data and "distill" in args.methods:  # the calib split: disjoint from eval
        big = realdata.load(name, "calib", args.distill_data, seed=args.seed)
        more = Dataset(inputs=big.feeds(), source=f"realdata {name} calib n={len(big)}")
    return Case(name, model, data, ev.x, ref, charset, rates, more)


def evaluate(case: Case, model: bytes, args: argparse.Namespace) -> Any:
    from onnxprune.testing import task_metrics as T

    out = T.decide(case.name, T.run(model, case.eval_x, threads=args.threads), charset=case.charset)
    return T.score(case.name, case.ref, out)


def run_model(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    case = load_case(name, args)
    log(f"{name}: {case.model.cost.macs:,} MACs, calib {len(case.calib)}, eval {len(case.eval_x)}"
        f" (loaded in {time.perf_counter() - t0:.1f}s); base rates {case.base_rates}")  # fmt: skip
    records: list[dict[str, Any]] = [{"model": name, "method": "base_rates", **case.base_rates}]
    analyses: dict[str, Any] = {}
    sim_memo: dict[str, Any] = {}
    for method in args.methods:
        for target in args.targets:
            label = method if method.startswith("onnxsim-") else " ".join(
                [method, *(f"{k}={v}" for k, v in args.set.items())])
            rec: dict[str, Any] = {"model": name, "method": label, "target": target}
            t1 = time.perf_counter()
            try:
                rec.update(_run_method(case, method, target, args, analyses, sim_memo))
            except Exception as e:  # one failing cell must not lose the others
                first = str(e).splitlines()[0][:300] if str(e) else ""
                rec["error"] = f"{type(e).__name__}: {first}"
                log(f"[{name} {method} {target}] FAILED:\n{traceback.format_exc()}")
            rec["seconds"] = round(time.perf_counter() - t1, 1)
            log(f"  {name} {method:<16} {target:.2f}: " + _cell(rec) + f"  ({rec['seconds']}s)")
            records.append(rec)
            if args.json:  # partial results survive an interrupted run
                _save(args, records, partial=True)
    return records


def _run_method(case: Case, method: str, target: float, args: argparse.Namespace,
                analyses: dict[str, Any], sim_memo: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    story: dict[str, Any] = {}
    if method.startswith("onnxsim-"):
        try:
            import onnxsim  # noqa: F401
        except ImportError:
            return {"na": "onnxsim not installed (pip install onnxsim==0.8.1)"}
        model, kept, note = run_onnxsim(case, target, method == "onnxsim-wanda", args, sim_memo)
        if model is None:
            return {"na": note, "macs_kept": kept}
    else:
        opts, note = prune_options(method, args)
        if opts is None:
            return {"na": note}
        analysis = _analysis(case, opts, analyses, args)
        model, kept, story = run_onnxprune(case, target, opts, analysis, args)
    score = evaluate(case, model, args)
    rec = {"macs_kept": kept, "metric": score.metric, "value": score.value, "note": note,
           "detail": score.detail}  # fmt: skip
    if not story:
        return rec
    return {**rec, "distillation": story}  # held-out loss before/after, epochs, why it stopped


# ----------------------------------------------------------------------------- output


def _cell(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return ""
    if "error" in rec:
        return "error"
    if "na" in rec:
        return "n/a"
    return f"{rec['value']:.3f} ({rec['macs_kept']:.2f})"


def markdown(records: list[dict[str, Any]], targets: list[float]) -> str:
    from onnxprune.testing.task_metrics import METRIC_NAMES

    lines = ["| model (metric) | method | " + " | ".join(f"MACs {t:g}" for t in targets) + " |",
             "| --- | --- | " + " | ".join("---" for _ in targets) + " |"]  # fmt: skip
    cells = {(r["model"], r["method"], r.get("target")): r for r in records}
    notes: dict[str, list[str]] = {}
    for model in dict.fromkeys(r["model"] for r in records):
        methods = dict.fromkeys(r["method"] for r in records if r["model"] == model)
        for method in methods:
            if method == "base_rates":
                continue
            row = [cells.get((model, method, t)) for t in targets]
            for r in row:
                if r is not None and ("na" in r or "error" in r):
                    why = f"{model} {method}: {_cell(r)}: {r.get('na') or r.get('error')}"
                    notes.setdefault(why, []).append(f"{r['target']:g}")
                elif r is not None and r.get("note"):
                    what = f"{model} {method}: {r['note']}"
                    notes.setdefault(what, []).append(f"{r['target']:g}")
            label = f"{model} ({METRIC_NAMES[model]})"
            lines.append(f"| {label} | {method} | " + " | ".join(_cell(r) for r in row) + " |")
    text = [f"- {why} (MACs {', '.join(ts)})" for why, ts in notes.items()]
    return "\n".join(lines + ([""] + text if text else []))


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from onnxprune.testing.task_metrics import METRIC_NAMES

    models = list(dict.fromkeys(r["model"] for r in records))
    cols = min(3, len(models))
    rows = (len(models) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, model in zip(axes.ravel(), models, strict=False):
        ok = [r for r in records if r["model"] == model and "value" in r]
        for method in dict.fromkeys(r["method"] for r in ok):
            pts = sorted((r["macs_kept"], r["value"]) for r in ok if r["method"] == method)
            ax.plot(*zip(*pts, strict=True), marker="o", label=method)
        rates = [r for r in records if r["model"] == model and r["method"] == "base_rates"]
        if rates and "constant_model_scores" in rates[0]:  # a model with one fixed decision
            const = rates[0]["constant_model_scores"]
            ax.axhline(const, color="grey", ls="--", lw=1, label="constant")
        ax.set(title=model, xlabel="MACs kept", ylabel=METRIC_NAMES[model], ylim=(0, 1.02))
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(models) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _save(args: argparse.Namespace, records: list[dict[str, Any]], partial: bool = False) -> None:
    C.write_json(args.json, {"machine": args.machine, "args": args.echo, "partial": partial,
                             "records": records})  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL")
    ap.add_argument("--targets", nargs="+", type=float, default=list(TARGETS))
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=None, metavar="METHOD",
                    help=f"default: all but distill (which needs --distill): {', '.join(METHODS)}")
    ap.add_argument("--calib", type=int, default=None, help="calib samples (default per model)")
    ap.add_argument("--eval", type=int, default=None, help="evaluation samples (default per model)")
    ap.add_argument("--distill", type=float, default=0.0, metavar="SECONDS",
                    help="add the 'distill' method with this time budget")
    ap.add_argument("--distill-data", type=int, default=0, metavar="N",
                    help="distil on N calibration-split samples (the analysis keeps --calib)")
    ap.add_argument("--distill-epochs", type=int, default=2,
                    help="epochs when prune() has no distill_time option (default 2)")
    ap.add_argument("--fresh-analysis", action="store_true", help="no shared analysis")
    ap.add_argument("--macs-tol", type=float, default=0.02, help="onnxsim MACs match tolerance")
    ap.add_argument("--wanda-samples", type=int, default=32, help="onnxsim Wanda calib samples")
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a prune() option for every onnxprune method (repeatable)")
    ap.add_argument("--quick", action="store_true", help="small smoke run: " + str(QUICK))
    ap.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                    help="run nothing: print/plot the records of earlier --json files")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args(argv)
    args.set = _settings(ap, args.set)
    if args.methods is None:
        args.methods = [m for m in METHODS if m != "distill" or args.distill]
    if args.quick:
        args.calib = args.calib or QUICK["calib"]
        args.eval = args.eval or QUICK["eval"]
        if args.targets == list(TARGETS):
            args.targets = list(QUICK["targets"])
        if "--methods" not in (sys.argv[1:] if argv is None else argv):
            args.methods = list(QUICK["methods"])
    args.echo = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return args


def _settings(ap: argparse.ArgumentParser, items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as prune() keyword arguments (VALUE as JSON when it parses)."""
    fields = option_defaults()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            ap.error(f"--set {item}: expected KEY=VALUE with KEY one of prune()'s options "
                     f"({', '.join(sorted(fields))})")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse(argv)
    if args.merge:
        return merge(args)
    torch.set_num_threads(args.threads)
    args.machine = C.machine([args.threads])
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    for name in args.only:
        try:
            records += run_model(name, args)
        except Exception as e:
            records.append({"model": name, "method": "load", "error": f"{type(e).__name__}: {e}"})
            log(f"[{name}] FAILED:\n{traceback.format_exc()}")
        if args.json:
            _save(args, records, partial=True)
    print(C.machine_line(args.machine) + f"; load avg at end {' '.join(_loadavg())}")
    sizes = f"calib {args.calib or 'default'}, eval {args.eval or 'default'}"
    print(f"calib/eval: onnxprune.testing.realdata ({sizes}), seed {args.seed}; "
          f"{time.perf_counter() - t0:.0f}s\n")  # fmt: skip
    print(markdown(records, args.targets))
    _print_base_rates(records)
    if args.json:
        _save(args, records)
    if args.plot:
        plot(records, args.plot)
    return 1 if any("error" in r for r in records) else 0


def merge(args: argparse.Namespace) -> int:
    """Print (and plot / save) the records of several earlier runs as one table."""
    records: list[dict[str, Any]] = []
    runs = []
    for path in args.merge:
        run = json.loads(path.read_text())
        runs.append({"file": str(path), "machine": run["machine"], "args": run["args"]})
        load = " ".join(run["machine"].get("loadavg_at_start") or [])
        print(f"{path}: load avg at start {load}; args {json.dumps(run['args'])}")
        records += [_with_constant_score(r) for r in run["records"]]
    targets = sorted({r["target"] for r in records if "target" in r}, reverse=True)
    print()
    print(markdown(records, targets))
    _print_base_rates(records)
    if args.json:
        C.write_json(args.json, {"runs": runs, "records": records})
    if args.plot:
        plot(records, args.plot)
    return 0


def _with_constant_score(rec: dict[str, Any]) -> dict[str, Any]:
    """Add what a constant decision scores to base rates written before it was recorded."""
    share = rec.get("face_rate", rec.get("share_decided_180"))
    if rec["method"] != "base_rates" or share is None or "constant_model_scores" in rec:
        return rec
    return {**rec, "constant_model_scores": max(share, 1.0 - share)}


def _print_base_rates(records: list[dict[str, Any]]) -> None:
    print("\nbase rates of the evaluation sets (the original model's decisions):")
    for r in records:
        if r["method"] == "base_rates":
            rates = {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()
                     if k not in ("model", "method")}  # fmt: skip
            print(f"- {r['model']}: " + json.dumps(rates))


def _loadavg() -> list[str]:
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return []


if __name__ == "__main__":
    sys.exit(main())
