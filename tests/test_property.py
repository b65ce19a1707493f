"""Property-based: random small CNNs x random plans prune to exactly the zeroed-channel oracle.

Each example draws a network (chains, residual Adds, Concats, Splits, depthwise and grouped
convs, SE gates, per-channel constants, pooling, Flatten→Gemm heads), exports it to ONNX, draws
a random kept subset for every prunable group, prunes (which verifies: checker, strict shapes,
onnxruntime, same I/O) and compares the pruned model with the original whose consumer weights of
the dropped channels are zeroed, in onnxruntime, to 1e-5 relative.

``ONNXPRUNE_HYPOTHESIS_EXAMPLES`` sets the number of legacy-exporter examples (default 200; the
dynamo exporter, ~3 s an example, gets a sixtieth of it, at least 3), ``ONNXPRUNE_HYPOTHESIS_RANDOM=1`` draws fresh
examples instead of the fixed derandomised sequence CI uses.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

import onnxprune
from onnxprune.channels.types import Space
from onnxprune.errors import CannotPruneError
from onnxprune.surgery import apply_plan
from onnxprune.testing import oracle
from onnxprune.testing.export import export_onnx
from onnxprune.testing.random_nets import (
    HEADS,
    KINDS,
    SIGNATURE,
    Block,
    NetSpec,
    build_net,
    input_shape,
)

EXAMPLES = int(os.environ.get("ONNXPRUNE_HYPOTHESIS_EXAMPLES", "200"))
DYNAMO_EXAMPLES = max(3, EXAMPLES // 60)
TOLERANCE = 1e-5
MOST_NOTHING_TO_PRUNE = 0.2
"""At most this share of the examples may have nothing to prune (else the suite is vacuous)."""
COUNTS = {"examples": 0, "nothing to prune": 0}

blocks = st.builds(
    Block,
    kind=st.sampled_from(KINDS),
    c=st.integers(1, 6),
    k=st.sampled_from([1, 3]),
    v=st.integers(0, 63),
)
specs = st.builds(
    NetSpec,
    cin=st.integers(1, 3),
    blocks=st.lists(blocks, min_size=1, max_size=5).map(tuple),
    head=st.sampled_from(HEADS),
    seed=st.integers(0, 2**16),
)


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=os.environ.get("ONNXPRUNE_HYPOTHESIS_RANDOM") != "1",
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
        # The explain phase re-runs failing examples hundreds of times; the shrunk one is enough.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="onnxprune-prop-") as d:
        yield Path(d)


def _draw_plan(data: st.DataObject, model: onnxprune.Model) -> dict[int, list[int]]:
    """A random non-empty kept subset for every prunable group."""
    plan = {}
    for g in model.groups.groups:
        if not g.prunable:
            continue
        mask = data.draw(st.lists(st.booleans(), min_size=g.size, max_size=g.size))
        kept = [i for i, m in enumerate(mask) if m]
        plan[g.id] = kept or [data.draw(st.integers(0, g.size - 1))]
    return plan


def _emptied(model: onnxprune.Model, plan: dict[int, list[int]]) -> list[Space]:
    return [s for s, k in model.groups.keep(plan).items() if not k.size]


def _repair(model: onnxprune.Model, plan: dict[int, list[int]]) -> dict[int, list[int]]:
    """Give back the first channel of every tensor the plan would empty (a Split part)."""
    plan = {gid: list(k) for gid, k in plan.items()}
    while empty := _emptied(model, plan):
        gid = next(gid for gid in plan if empty[0] in model.groups.group(gid).members)
        owner = model.groups.group(gid).members[empty[0]]
        plan[gid] = sorted({*plan[gid], int(owner[owner >= 0][0])})
    return plan


def _assert_built(spec: NetSpec, proto: onnx.ModelProto) -> None:
    """Every drawn block left its ops in the graph (none silently became an Identity)."""
    ops = {n.op_type for n in proto.graph.node}
    for b in spec.blocks:
        for alternatives in SIGNATURE[b.kind]:
            assert ops & set(alternatives.split("|")), (b, alternatives, sorted(ops))


def _check(spec: NetSpec, data: st.DataObject, path: Path, *, dynamo: bool) -> None:
    for b in spec.blocks:
        event(f"block {b.kind}")
    export_onnx(build_net(spec), input_shape(spec), path, dynamo=dynamo)
    model = onnxprune.load(path)
    _assert_built(spec, model.proto)
    outputs = {o.name for o in model.proto.graph.output}
    for g in model.groups.groups:
        # Graph outputs keep their shapes: a group that reaches one is never prunable.
        if any(space.tensor in outputs for space in g.members):
            assert not g.prunable, g
    plan = _draw_plan(data, model)
    if _emptied(model, plan):
        event("plan empties a tensor")
        with pytest.raises(CannotPruneError, match="removes every channel of tensor"):
            apply_plan(model, plan)
        plan = _repair(model, plan)
    dropped = sum(model.groups.group(gid).size - len(k) for gid, k in plan.items())
    event("pruned" if dropped else "nothing to prune")
    COUNTS["examples"] += 1
    COUNTS["nothing to prune"] += not dropped
    pruned = apply_plan(model, plan)  # verifies, or raises VerificationError
    feeds = oracle.random_feeds(model, seed=1)
    got = oracle.run(pruned, feeds)
    want = oracle.run(oracle.zeroed(model, plan), feeds)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert oracle.max_rel_error(got, want) <= TOLERANCE
    if dropped:
        assert _params(pruned) < _params(model.proto)


def _params(proto: onnx.ModelProto) -> int:
    """Float weights only: pruning may add small int64 constants (new Split sizes)."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    return sum(int(np.prod(t.dims)) for t in proto.graph.initializer if t.data_type in floats)


@_settings(EXAMPLES)
@given(spec=specs, data=st.data())
def test_random_net_legacy_export_prunes_to_the_oracle(
    spec: NetSpec, data: st.DataObject, scratch: Path
) -> None:
    _check(spec, data, scratch / "legacy.onnx", dynamo=False)


@pytest.mark.slow
@_settings(DYNAMO_EXAMPLES)
@given(spec=specs, data=st.data())
def test_random_net_dynamo_export_prunes_to_the_oracle(
    spec: NetSpec, data: st.DataObject, scratch: Path
) -> None:
    _check(spec, data, scratch / "dynamo.onnx", dynamo=True)


def test_most_examples_had_something_to_prune() -> None:
    """Report (and bound) how many property examples had nothing to prune."""
    if not COUNTS["examples"]:
        pytest.skip("the property tests did not run in this session")
    share = COUNTS["nothing to prune"] / COUNTS["examples"]
    print(f"property examples: {COUNTS['examples']}, nothing to prune: "
          f"{COUNTS['nothing to prune']} ({share:.0%})")
    assert share <= MOST_NOTHING_TO_PRUNE, COUNTS


def _block_tensors(proto: onnx.ModelProto, ops: set[str]) -> set[str]:
    """Outputs of the block's nodes of these op types (the legacy exporter names them /body/…)."""
    return {o for n in proto.graph.node if n.op_type in ops and n.name.startswith("/body/")
            for o in n.output}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("c", "side"), [(4, 8), (1, 8), (8, 1)], ids=["c4", "c1", "c8-side1"])
def test_every_block_kind_is_built_and_prunable_through_it(kind: str, c: int, side: int,
                                                          tmp_path: Path) -> None:
    # Guards the generator against silently degenerating (a block that cannot be built at
    # this width or side must not become an Identity) and the rules against turning the
    # block into a barrier: a prunable group must reach *through* the block's own ops (the
    # stem group alone being prunable proves nothing). The stem is a 1x1 conv without a
    # pool, so a side of 1 is the image's. A single channel cannot be pruned, so at c=1
    # only the building is checked.
    spec = NetSpec(cin=3, blocks=(Block("conv", c, 1, 1), Block(kind, 4, 3, 0)),
                   head="gap_gemm", seed=0, image=side)
    path = export_onnx(build_net(spec), input_shape(spec), tmp_path / "m.onnx", dynamo=False)
    model = onnxprune.load(path)
    _assert_built(spec, model.proto)
    if c == 1:
        return
    own = _block_tensors(model.proto, {a for alt in SIGNATURE[kind] for a in alt.split("|")})
    assert own, [n.name for n in model.proto.graph.node]
    reach = [g for g in model.groups.groups if g.prunable and {s.tensor for s in g.members} & own]
    assert reach, [(g.size, g.barriers, [s.tensor for s in g.members])
                   for g in model.groups.groups]
