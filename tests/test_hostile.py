"""Hostile and awkward inputs through the CLI: exit code, one stderr line, no output, input intact.

Complements tests/test_cli_errors.py (unreadable files, bad options, bad outputs, bad plans)
with the model classes of issue 6: fp16, QDQ / integer-quantised, custom-domain ops, several
inputs and outputs, a prunable conv writing a graph output, old and new opsets, dynamic dims,
external data (missing, outside the folder, over the size threshold), a failed verification,
and SIGINT at every stage of a prune.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import helper, numpy_helper

import onnxprune
from onnxprune import ir
from onnxprune.cli import main
from onnxprune.errors import VerificationError
from onnxprune.testing import oracle
from onnxprune.testing.wide import wide_conv_stack

REPO = Path(__file__).resolve().parents[1]


# -- helpers ---------------------------------------------------------------------------------

def _save(text: str, weights: dict[str, tuple[int, ...] | np.ndarray], path: Path, *,
          opset: int = 13, dtype: type = np.float32, domains: str = "") -> Path:
    ir_version = 8 if opset <= 18 else 10
    proto = onnx.parser.parse_model(
        f'<ir_version: {ir_version}, opset_import: ["" : {opset}{domains}]>\n' + text)
    rng = np.random.default_rng(0)
    for name, w in weights.items():
        value = w if isinstance(w, np.ndarray) else rng.standard_normal(w).astype(dtype)
        proto.graph.initializer.append(numpy_helper.from_array(value, name))
    onnx.save(proto, str(path))
    return path


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def _one_line(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("onnxprune: error: "), err
    for w in words:
        assert w in err, (w, err)


def _refused(model: Path, code: int, words: tuple[str, ...],
             capsys: pytest.CaptureFixture[str], extra: tuple[str, ...] = ()) -> None:
    """prune exits ``code`` with one line naming ``words``; nothing written, input intact."""
    before = _snapshot(model.parent)
    out = model.parent / "out.onnx"
    got, err = _cli(["prune", str(model), "-o", str(out), "--ratio", "0.5", *extra], capsys)
    assert got == code, err
    _one_line(err, *words)
    assert _snapshot(model.parent) == before


def _pruned_exactly(model: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> onnx.ModelProto:
    """prune succeeds; the output keeps the I/O contract and equals the zeroed oracle."""
    before = model.read_bytes()
    code, err = _cli(["prune", str(model), "-o", str(out), "--ratio", "0.5",
                      "--save-plan", str(out.with_suffix(".json"))], capsys)
    assert (code, err) == (0, "")
    assert model.read_bytes() == before
    loaded = onnxprune.load(model)
    pruned = onnx.load(str(out))
    plan = {int(k): v for k, v in
            onnxprune.pruning.plan.load_plan(out.with_suffix(".json"), loaded.groups).keep().items()}
    assert plan, "nothing was pruned"
    feeds = oracle.random_feeds(loaded, seed=3)
    got, want = oracle.run(pruned, feeds), oracle.run(oracle.zeroed(loaded, plan), feeds)
    assert oracle.max_rel_error(got, want) <= 1e-5
    for a, b in ((pruned.graph.input, loaded.proto.graph.input),
                 (pruned.graph.output, loaded.proto.graph.output)):
        assert [(v.name, v.type) for v in a] == [(v.name, v.type) for v in b]
    return pruned


# -- model classes ---------------------------------------------------------------------------

CHAIN = """
g ({t}[1,3,8,8] x) => ({t}[1,5] y) {{
  [conv1] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (x, w1, b1)
  [relu] r = Relu(a)
  [conv2] c = Conv(r, w2)
  [gap] p = GlobalAveragePool(c)
  [flat] f = Flatten(p)
  [fc] y = Gemm <transB=1> (f, fw, fb)
}}"""
CHAIN_W = {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (6, 8, 1, 1), "fw": (5, 6), "fb": (5,)}


def test_fp16_model_is_pruned_and_matches_the_oracle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The rules only take slices of weights: they are dtype-agnostic, so fp16 models prune.
    model = _save(CHAIN.format(t="float16"), CHAIN_W, tmp_path / "fp16.onnx", dtype=np.float16)
    pruned = _pruned_exactly(model, tmp_path / "out.onnx", capsys)
    dtypes = {t.data_type for t in pruned.graph.initializer if t.name in CHAIN_W}
    assert dtypes == {onnx.TensorProto.FLOAT16}


QDQ = """
g (float[1,3,8,8] x) => (float[1,4,8,8] y) {
  [q_x] xq = QuantizeLinear(x, s, z)
  [dq_x] xd = DequantizeLinear(xq, s, z)
  [dq_w1] w1d = DequantizeLinear(w1q, sw, zw)
  [conv1] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (xd, w1d)
  [q_a] aq = QuantizeLinear(a, s, z)
  [dq_a] ad = DequantizeLinear(aq, s, z)
  [dq_w2] w2d = DequantizeLinear(w2q, sw, zw)
  [conv2] y = Conv(ad, w2d)
}"""


def _qdq_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "s": np.array(0.05, np.float32), "z": np.array(0, np.uint8),
        "sw": np.array(0.02, np.float32), "zw": np.array(0, np.int8),
        "w1q": rng.integers(-50, 50, (8, 3, 3, 3)).astype(np.int8),
        "w2q": rng.integers(-50, 50, (4, 8, 1, 1)).astype(np.int8),
    }


QLINEAR = """
g (uint8[1,3,8,8] x) => (uint8[1,4,8,8] y) {
  [conv1] a = QLinearConv <pads=[1,1,1,1]> (x, s, z, w1q, sw, zw, s, z)
  [conv2] y = QLinearConv(a, s, z, w2q, sw, zw, s, z)
}"""
CONV_INTEGER = """
g (uint8[1,3,8,8] x) => (int32[1,4,8,8] y) {
  [conv1] a = ConvInteger <pads=[1,1,1,1]> (x, w1q)
  [cast] c = Cast <to=2> (a)
  [conv2] y = ConvInteger(c, w2q)
}"""


def _int_weights(zw: type = np.int8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "s": np.array(0.05, np.float32), "z": np.array(0, np.uint8),
        "sw": np.array(0.02, np.float32), "zw": np.array(0, zw),
        "w1q": rng.integers(0, 50, (8, 3, 3, 3)).astype(zw),
        "w2q": rng.integers(0, 50, (4, 8, 1, 1)).astype(zw),
    }


def test_qdq_model_prunes_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Weights behind DequantizeLinear are sliced in storage with their scales.
    model = _save(QDQ, _qdq_weights(), tmp_path / "qdq.onnx")
    pruned = _pruned_exactly(model, tmp_path / "out.onnx", capsys)
    weights = {t.name: t for t in pruned.graph.initializer}
    assert weights["w1q"].data_type == onnx.TensorProto.INT8 and weights["w1q"].dims[0] == 4


@pytest.mark.parametrize(
    ("text", "weights", "reason"),
    [
        pytest.param(QLINEAR, _int_weights(np.int8), "integer-op quantised layers are not pruned",
                     id="qlinearconv"),
        pytest.param(CONV_INTEGER, _int_weights(np.uint8),
                     "integer-op quantised layers are not pruned", id="convinteger"),
    ],
)
def test_quantised_models_are_barriers_with_a_reason(
    text: str, weights: dict[str, np.ndarray], reason: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _save(text, weights, tmp_path / "q.onnx")
    groups = onnxprune.load(model).groups.groups
    assert not any(g.prunable for g in groups)
    assert any(reason in b or "computed at run time" in b for g in groups for b in g.barriers)
    _refused(model, 3, ("no channel group can be pruned", "inspect"), capsys)
    code, out_err = _cli(["inspect", str(model)], capsys)
    assert code == 0


CUSTOM = """
g (float[1,3,8,8] x) => (float[1,5] y) {
  [conv1] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (x, w1)
  [relu] r = Relu(a)
  [conv2] b = Conv(r, w2)
  [mine] c = com.example.Swish(b)
  [gap] p = GlobalAveragePool(c)
  [flat] f = Flatten(p)
  [fc] y = Gemm <transB=1> (f, fw)
}"""


def test_custom_domain_op_is_a_barrier_and_unverifiable_models_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _save(CUSTOM, {"w1": (8, 3, 3, 3), "w2": (6, 8, 1, 1), "fw": (5, 6)},
                  tmp_path / "custom.onnx", domains=', "com.example" : 1')
    groups = {g.root_nodes: g for g in onnxprune.load(model).groups.groups}
    assert groups[("conv1",)].prunable
    assert any("Swish of domain 'com.example'" in b for b in groups[("conv2",)].barriers)
    # The model cannot run in onnxruntime, so no pruned model could be verified: exit 3.
    _refused(model, 3, ("custom op", "com.example::Swish", "nothing was written"), capsys)


MULTI_IO = """
g (float[1,3,8,8] x1, float[1,2,8,8] x2) => (float[1,5] logits, float[1,4,8,8] feat) {
  [conv_a] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (x1, wa)
  [conv_b] b = Conv <kernel_shape=[1,1]> (x2, wb)
  [add] s = Add(a, b)
  [relu] r = Relu(s)
  [conv_c] c = Conv(r, wc)
  [relu2] rc = Relu(c)
  [conv_out] feat = Conv(rc, wo)
  [gap] p = GlobalAveragePool(rc)
  [flat] f = Flatten(p)
  [fc] logits = Gemm <transB=1> (f, fw)
}"""


def test_several_inputs_and_outputs_prune_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = {"wa": (8, 3, 3, 3), "wb": (8, 2, 1, 1), "wc": (6, 8, 1, 1), "wo": (4, 6, 1, 1),
               "fw": (5, 6)}
    model = _save(MULTI_IO, weights, tmp_path / "multi.onnx")
    pruned = _pruned_exactly(model, tmp_path / "out.onnx", capsys)
    shapes = {t.name: tuple(t.dims) for t in pruned.graph.initializer}
    assert shapes["wa"][0] == shapes["wb"][0] == 4  # the Add ties both input branches


OUTPUT_CONV = """
g (float[1,3,8,8] x) => (float[1,8,8,8] a, float[1,4,8,8] y) {
  [conv1] a = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (x, w1)
  [relu] r = Relu(a)
  [conv2] c = Conv(r, w2)
  [relu2] rc = Relu(c)
  [conv3] y = Conv(rc, w3)
}"""


def test_a_conv_writing_a_graph_output_is_a_barrier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _save(OUTPUT_CONV, {"w1": (8, 3, 3, 3), "w2": (6, 8, 1, 1), "w3": (4, 6, 1, 1)},
                  tmp_path / "outconv.onnx")
    groups = {g.root_nodes: g for g in onnxprune.load(model).groups.groups}
    assert groups[("conv1",)].barriers == ("channels reach graph output 'a'",)
    pruned = _pruned_exactly(model, tmp_path / "out.onnx", capsys)
    shapes = {t.name: tuple(t.dims) for t in pruned.graph.initializer}
    assert shapes["w1"] == (8, 3, 3, 3) and shapes["w2"] == (3, 8, 1, 1)


def _old_opset_model(path: Path, opset: int) -> Path:
    """An opset-``opset`` (IR 3) model: initializers are listed as inputs, as IR 3 wants."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (4, 8, 1, 1)}.items()]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="conv1", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
    ]
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])]
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(
        nodes, "old", inputs,
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=3)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("opset", [1, 6])
def test_old_opset_is_converted_with_a_log_line(
    opset: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = _old_opset_model(tmp_path / "old.onnx", opset)
    before = model.read_bytes()
    out = tmp_path / "out.onnx"
    code, err = _cli(["prune", str(model), "-o", str(out), "--ratio", "0.5"], capsys)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert f"converted from opset {opset} to opset {ir.MIN_OPSET}" in warnings[0]
    assert f"{ir.MIN_OPSET}..{ir.MAX_OPSET}" in warnings[0]
    assert model.read_bytes() == before
    pruned = onnx.load(str(out))
    assert ir.opset_version(pruned) == ir.MIN_OPSET
    assert [tuple(t.dims) for t in pruned.graph.initializer if t.name == "w1"] == [(4, 3, 3, 3)]


def test_opset_above_the_supported_range_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _old_opset_model(tmp_path / "new.onnx", 7)
    proto = onnx.load(str(model))
    proto.opset_import[0].version = ir.MAX_OPSET + 1
    onnx.save(proto, str(model))
    _refused(model, 2, (f"opset {ir.MAX_OPSET + 1}", f"{ir.MIN_OPSET}..{ir.MAX_OPSET}",
                        "re-export"), capsys)


def test_dynamic_dims_without_input_shapes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CHAIN.format(t="float").replace("float[1,3,8,8] x", "float[N,3,H,W] x")
    text = text.replace("float[1,5] y", "float[N,5] y")
    model = _save(text, CHAIN_W, tmp_path / "dyn.onnx")
    _refused(model, 2, ("dynamic dims", "--input-shapes x:?,3,?,?"), capsys)
    code, err = _cli(["prune", str(model), "-o", str(tmp_path / "out.onnx"), "--ratio", "0.5",
                      "--input-shapes", "x:1,3,8,8"], capsys)
    assert (code, err) == (0, "")


def _external(tmp_path: Path, location: str) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    model = folder / "m.onnx"
    proto = wide_conv_stack(channels=16, layers=2)
    onnx.save_model(proto, str(model), save_as_external_data=True, location="m.onnx.data",
                    size_threshold=0)
    if location != "m.onnx.data":
        proto = onnx.load(str(model), load_external_data=False)
        for t in proto.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = location
        onnx.save(proto, str(model))
    return model


def test_missing_external_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _external(tmp_path, "m.onnx.data")
    (model.parent / "m.onnx.data").unlink()
    _refused(model, 2, ("external data file 'm.onnx.data'", "is missing", "copy it"), capsys)


def test_external_data_outside_the_model_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _external(tmp_path, "../secret.bin")
    (tmp_path / "secret.bin").write_bytes((model.parent / "m.onnx.data").read_bytes())
    _refused(model, 2, ("outside the model's folder", "'../secret.bin'", "refusing"), capsys)


def test_output_over_the_threshold_goes_to_external_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The >2 GB path (external-data save, verify through a temp file, load) on a small model.
    monkeypatch.setattr(ir.limits, "EXTERNAL_DATA_BYTES", 2_000)
    monkeypatch.setattr(ir.limits, "LIGHT_BYTES", 2_000)
    model = _external(tmp_path, "m.onnx.data")
    out = tmp_path / "m" / "out.onnx"
    pruned = _pruned_exactly(model, out, capsys)
    assert (out.parent / "out.onnx.data").stat().st_size > out.stat().st_size
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert pruned.graph.initializer  # loaded back with its external data
    skeleton = onnx.load(str(out), load_external_data=False)
    big = [t.name for t in pruned.graph.initializer if t.ByteSize() > 1024]
    assert big and [t.name for t in skeleton.graph.initializer if t.data_location == 1] == big
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "m.onnx", "m.onnx.data", "out.json", "out.onnx", "out.onnx.data"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_verification_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise VerificationError("pruned model fails in onnxruntime: simulated")

    monkeypatch.setattr("onnxprune.surgery.verify", broken)
    model = _save(CHAIN.format(t="float"), CHAIN_W, tmp_path / "m.onnx")
    _refused(model, 1, ("fails in onnxruntime",), capsys)


# -- SIGINT ----------------------------------------------------------------------------------

# Runs the CLI in a child process and sends itself SIGINT at a chosen point (deterministic).
DRIVER = textwrap.dedent("""
    import os, pathlib, signal, sys
    from onnxprune import ir, surgery
    from onnxprune.cli import main

    # A runner started as a background job ignores SIGINT, and so would this child: restore
    # Python's handler, as a foreground shell gives it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    point, argv = sys.argv[1], sys.argv[2:]
    def interrupt():
        os.kill(os.getpid(), signal.SIGINT)
    def before(owner, name):
        f = getattr(owner, name)
        def g(*a, **k):
            interrupt()
            return f(*a, **k)
        setattr(owner, name, g)
    if point.startswith("external"):
        ir.limits.EXTERNAL_DATA_BYTES = 1000
    if point == "load":
        before(ir, "infer_shapes")
    elif point == "verify":
        before(surgery, "verify")
    elif point == "mid-write":
        def half(self, data):
            with open(self, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                interrupt()
                f.write(data[len(data) // 2 :])
        pathlib.Path.write_bytes = half
    elif point in ("rename", "external-rename"):
        replace = os.replace
        def on_output(a, b):
            if pathlib.Path(b).name.startswith("out.onnx"):  # not verify's temp copy
                interrupt()
            return replace(a, b)
        os.replace = on_output
    elif point == "external-data":
        before(os, "fsync")
    sys.exit(main(argv))
""")


def _child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def sigint_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sigint") / "wide.onnx"
    ir.save_model(wide_conv_stack(channels=256, layers=6, image=4), path)
    return path


def _check_interrupted(folder: Path, model: Path, before: bytes, code: int, err: str,
                       out: Path) -> None:
    # -SIGINT: the signal came while the interpreter was starting or shutting down, when
    # Python's own handler is not installed (no onnxprune code was running).
    assert code in (0, 130, -signal.SIGINT), err
    assert model.read_bytes() == before
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    if code == 130:
        assert err.count("\n") == 1 and "interrupted" in err, err
    if out.exists():  # finished, or interrupted after the rename: a complete model
        onnx.checker.check_model(str(out), full_check=True)
    else:
        assert not out.with_name(out.name + ".data").exists()


@pytest.mark.parametrize(
    ("point", "finished"),
    [("load", False), ("verify", False), ("mid-write", False), ("rename", True),
     ("external-data", False), ("external-rename", True)],
)
def test_sigint_leaves_no_partial_output(
    point: str, finished: bool, sigint_model: Path, tmp_path: Path
) -> None:
    model = tmp_path / "in.onnx"
    model.write_bytes(sigint_model.read_bytes())
    before = model.read_bytes()
    out = tmp_path / "out.onnx"
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, point, "prune", str(model), "-o", str(out),
         "--ratio", "0.3"],
        capture_output=True, text=True, env=_child_env(), timeout=120, check=False)
    assert proc.returncode == 130, proc.stderr
    _check_interrupted(tmp_path, model, before, proc.returncode, proc.stderr, out)
    # A SIGINT during the rename is held back until it is done: the output is complete.
    assert out.exists() == finished


# Runs the CLI in a child that reports when it reaches a stage and then waits there; the
# test sends SIGINT from outside at that moment (no sleeps, so a loaded machine cannot move
# the signal to another stage).
WAITING_DRIVER = textwrap.dedent("""
    import pathlib, signal, sys, time
    from onnxprune import ir, surgery
    from onnxprune.commands import common
    from onnxprune.cli import main

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in DRIVER
    point, argv = sys.argv[1], sys.argv[2:]
    def wait_before(owner, name):
        f = getattr(owner, name)
        def g(*a, **k):
            print("reached", point, flush=True)
            for _ in range(600):  # the test's SIGINT ends this (KeyboardInterrupt)
                time.sleep(0.1)
            return f(*a, **k)
        setattr(owner, name, g)
    wait_before(*{"load": (ir, "infer_shapes"), "verify": (surgery, "verify"),
                  "write": (common, "write")}[point])
    sys.exit(main(argv))
""")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["load", "verify", "write"])
def test_sigint_from_outside_at_several_moments(point: str, sigint_model: Path,
                                                tmp_path: Path) -> None:
    model = tmp_path / "in.onnx"
    model.write_bytes(sigint_model.read_bytes())
    before = model.read_bytes()
    out = tmp_path / "out.onnx"
    argv = [sys.executable, "-c", WAITING_DRIVER, point, "prune", str(model), "-o", str(out),
            "--ratio", "0.3"]
    proc = subprocess.Popen(argv, env=_child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the child waits at the stage
    assert line.strip() == f"reached {point}", (line, proc.stderr.read() if proc.stderr else "")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    _check_interrupted(tmp_path, model, before, proc.returncode, err, out)
    assert not out.exists()


def test_interrupt_inside_an_extension_import_is_exit_130(monkeypatch, capsys) -> None:
    """Ctrl-C while onnxruntime initialises surfaces as ImportError caused by the interrupt."""
    from onnxprune import cli

    def broken() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as k:
            raise ImportError("initialization failed") from k

    monkeypatch.setattr(cli, "build_parser", broken)
    assert cli.main(["inspect", "x.onnx"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err
