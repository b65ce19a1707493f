"""One prune does each piece of work once (issue 14, "no repeated work").

Counted during ``onnxprune.prune`` and the CLI ``prune`` with distillation on the bundled
digits CNN: shape inference per distinct model, shims of the original, channel-graph
imports, verifications, validations of the data's values and checks of the output path.
Models are told apart by their structure (node list, initializer shapes) and, for shape
inference, their graph input shapes: the pruned model and its distilled copy are one.

Before the fix (main at e5a6393), with ``target_macs=0.3, distill_epochs=1``: the pruned
structure was inferred twice as it is and twice at the concrete input shapes (verify and
cost, for the surgery's model and again for the distilled one), 5 shims of the original
were built (analysis, two in refinement, the distillation teacher, the fidelity report),
the channel graph was imported twice, the model verified twice, every input array's values
validated twice (loading, analysis), and the CLI checked the output path twice.
"""

from __future__ import annotations

import collections
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import onnxprune
from onnxprune import ir

MODELS = Path(__file__).resolve().parents[1] / "models"


def structure(model: Any) -> tuple[object, ...]:
    """A model's identity for counting: its nodes and its initializers' names and dims."""
    g = model.graph
    return (tuple((n.op_type, n.name) for n in g.node),
            tuple((t.name, tuple(t.dims)) for t in g.initializer))


def inputs(model: Any) -> tuple[object, ...]:
    """The graph inputs' dims (a dynamic dim by its name): a model inferred at other input
    shapes is another model to shape inference."""
    return tuple(tuple(d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim)
                 for v in model.graph.input)


class Counts:
    """Calls of the counted functions, by what they were called on."""

    def __init__(self) -> None:
        self.calls: dict[str, collections.Counter[object]] = collections.defaultdict(
            collections.Counter)

    def total(self, what: str) -> int:
        return sum(self.calls[what].values())

    def of(self, what: str, key: object) -> int:
        return self.calls[what][key]


def _wrap_everywhere(monkeypatch: pytest.MonkeyPatch, module: str, name: str,
                     record: Callable[..., None]) -> None:
    """Count calls of ``module.name`` however it was imported (``from x import name`` too)."""
    original = getattr(sys.modules[module], name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        record(*args, **kwargs)
        return original(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("onnxprune") and \
                getattr(mod, name, None) is original:
            monkeypatch.setattr(mod, name, counted)


@pytest.fixture()
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counts]:
    # import everything a prune touches, so that names imported from them get wrapped too
    import onnxprune.analysis
    import onnxprune.commands.common
    import onnxprune.commands.prune
    import onnxprune.ir.graph
    import onnxprune.ir.save
    import onnxprune.ir.shapes
    import onnxprune.pruning.distill
    import onnxprune.pruning.fidelity
    import onnxprune.pruning.pipeline
    import onnxprune.pruning.refine
    import onnxprune.shim.module
    import onnxprune.surgery
    import onnxprune.verify

    c = Counts()

    def on(what: str, key: Callable[..., object]) -> Callable[..., None]:
        return lambda *a, **k: c.calls[what].update([key(*a, **k)])

    _wrap_everywhere(monkeypatch, "onnxprune.ir.shapes", "infer_shapes",
                     on("infer", lambda m, **_: (structure(m), inputs(m))))
    _wrap_everywhere(monkeypatch, "onnxprune.ir.graph", "to_graph",
                     on("import", lambda m, **_: structure(m)))
    _wrap_everywhere(monkeypatch, "onnxprune.verify", "verify",
                     on("verify", lambda m, *_a, **_k: structure(m)))
    # the values of every input array: cast and scanned for NaN/inf (shapes are cheap)
    _wrap_everywhere(monkeypatch, "onnxprune.data", "_validate",
                     on("validate", lambda a, spec, *_: spec.name))
    analysis_check = next(n for n in ("_check_values", "_check_array")  # the latter before
                          if hasattr(onnxprune.analysis, n))               # issue 14
    _wrap_everywhere(monkeypatch, "onnxprune.analysis", analysis_check,
                     on("validate", lambda a, spec, *_: spec.name))
    is_dir = Path.is_dir

    def counted_is_dir(self: Path) -> bool:  # every check of a destination asks is_dir
        c.calls["is_dir"].update([self.name])
        return is_dir(self)

    monkeypatch.setattr(Path, "is_dir", counted_is_dir)

    shim_cls = onnxprune.shim.module.Shim
    init = shim_cls.__init__

    def counted_init(self: Any, model: Any, *args: Any, **kwargs: Any) -> None:
        c.calls["shim"].update([structure(model)])
        init(self, model, *args, **kwargs)

    monkeypatch.setattr(shim_cls, "__init__", counted_init)
    yield c


def _original() -> tuple[Any, tuple[object, ...]]:
    proto = ir.load_model(MODELS / "digits_cnn.onnx")
    return proto, structure(proto)


def _data() -> dict[str, np.ndarray]:
    with np.load(MODELS / "digits_calib.npz") as z:
        return {"input": z["input"][:64]}


def _counted(c: Counts, original: tuple[object, ...], written: Any) -> dict[str, object]:
    pruned = structure(written)
    inferred = c.calls["infer"]
    return {
        # the original at its concrete input shapes
        "infer original": [n for (s, _), n in inferred.items() if s == original],
        # the written model as it is (verify) and at the concrete input shapes (its cost);
        # the distilled model is the pruned one with new weight values: not again
        "infer pruned": sorted(n for (s, _), n in inferred.items() if s == pruned),
        "infer other": sum(n for (s, _), n in inferred.items() if s not in (original, pruned)),
        "shims of the original": c.of("shim", original),
        "channel-graph imports": c.total("import"),
        "verifications": c.total("verify"),
        "value validations per input": max(c.calls["validate"].values()),
    }


ONCE = {"infer original": [1], "infer pruned": [1, 1], "infer other": 0,
        "shims of the original": 1, "channel-graph imports": 1, "verifications": 1,
        "value validations per input": 1}


def test_api_prune_with_distillation_does_each_step_once(counts: Counts) -> None:
    proto, original = _original()
    result = onnxprune.prune(proto, data=_data(), target_macs=0.3, distill_epochs=1,
                             round_to=1)
    assert _counted(counts, original, result.model) == ONCE


def test_cli_prune_with_distillation_does_each_step_once(counts: Counts, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from onnxprune.cli import main

    proto, original = _original()
    data = tmp_path / "calib.npz"
    np.savez(data, **_data())
    out = tmp_path / "pruned.onnx"
    with contextlib.redirect_stderr(sys.stdout):
        code = main(["prune", str(MODELS / "digits_cnn.onnx"), "-o", str(out), "--data",
                     str(data), "--target-macs", "0.3", "--distill-epochs", "1",
                     "--round-to", "1"])
    assert code == 0, capsys.readouterr().out
    assert counts.of("is_dir", out.name) == 1, "output path checked more than once"
    assert _counted(counts, original, ir.load_model(out)) == ONCE


def test_steps_and_apply_do_not_redo_work(counts: Counts) -> None:
    from onnxprune.pruning import pipeline

    proto, _ = _original()
    model, data = onnxprune.api.load_with_data(proto, _data())
    counts.calls.clear()
    result = pipeline.prune(model, data=data, target_macs=0.5, steps=2, round_to=1)
    again = [key for key, n in counts.calls["infer"].items() if n > 1]
    assert not again, "a step's model inferred twice at the same input shapes"
    assert counts.total("import") == 2  # the original and the first step's model

    once = pipeline.prune(model, data=data, target_macs=0.5, refine=False, round_to=1)
    assert once.plan.recovery.updates
    counts.calls.clear()
    replayed = pipeline.apply(model, once.plan)
    assert counts.total("verify") == 1, "apply verified before and after the replay"
    assert counts.total("import") == 0, "apply re-imported the channel graph"
    assert replayed.model.SerializeToString() == once.model.SerializeToString()
    assert result.plan.recovery.steps == 2


def test_a_cloned_channel_graph_is_edited_alone() -> None:
    model = onnxprune.load(MODELS / "digits_cnn.onnx")
    first, second = model.channel_graph(), model.channel_graph()
    assert first.groups is model.groups.groups  # the derived groups are shared values
    node = next(n for n in first.ctx.graph.nodes if n.op == "Conv")
    before = first.ctx.input_const(node, 1).copy()
    first.ctx.set_input_const(node, 1, before * 0)
    for cg in (second, model.groups):
        twin = next(n for n in cg.ctx.graph.nodes if n.name == node.name)
        assert np.array_equal(cg.ctx.input_const(twin, 1), before)


def test_a_copied_shim_runs_alike_and_trains_alone() -> None:
    import torch

    from onnxprune.shim.module import Shim

    shim = Shim(ir.load_model(MODELS / "digits_cnn.onnx"))
    for p in shim.params.values():
        p.requires_grad_(False)
    twin = shim.copy()
    x = _data()["input"][:4]
    with torch.no_grad():
        assert torch.equal(shim({"input": x})[0], twin({"input": x})[0])
        name = next(iter(twin.params))
        twin.params[name].add_(1.0)
    assert not torch.equal(shim.params[name], twin.params[name])
    fresh = Shim(ir.load_model(MODELS / "digits_cnn.onnx"))
    assert {n: p.requires_grad for n, p in twin.params.items()} == \
        {n: p.requires_grad for n, p in fresh.params.items()}
