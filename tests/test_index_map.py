"""Index maps on their own: the (source, target) pairs each one ties, and invalid sizes."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.channels.index_map import Grouped, Identity, IndexMap, Merge, Offset


def _pairs(m: IndexMap, n_src: int, n_dst: int) -> set[tuple[int, int]]:
    src, dst = m.pairs(n_src, n_dst)
    assert src.dtype == np.int64 and dst.dtype == np.int64
    assert src.shape == dst.shape
    return set(zip(src.tolist(), dst.tolist(), strict=True))


@pytest.mark.parametrize(
    ("index_map", "n_src", "n_dst", "expected"),
    [
        pytest.param(Identity(), 1, 1, {(0, 0)}, id="identity-1"),
        pytest.param(Identity(), 3, 3, {(0, 0), (1, 1), (2, 2)}, id="identity-3"),
        pytest.param(Offset(0), 2, 5, {(0, 0), (1, 1)}, id="offset-0"),
        pytest.param(Offset(3), 2, 5, {(0, 3), (1, 4)}, id="offset-at-end"),
        pytest.param(Offset(1), 3, 4, {(0, 1), (1, 2), (2, 3)}, id="offset-1"),
        # Flatten of [N, 2, 3] -> [N, 6]: channel c owns features 3c..3c+2.
        pytest.param(
            Merge(inner=3), 2, 6, {(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5)},
            id="merge-inner3",
        ),
        # [2 (outer), 3 (channels)] -> [6]: channel c owns o*3 + c.
        pytest.param(
            Merge(outer=2), 3, 6, {(0, 0), (1, 1), (2, 2), (0, 3), (1, 4), (2, 5)},
            id="merge-outer2",
        ),
        # [2 (outer), 2 (channels), 2 (inner)] -> [8]: o*4 + c*2 + j.
        pytest.param(
            Merge(inner=2, outer=2), 2, 8,
            {(0, 0), (0, 1), (1, 2), (1, 3), (0, 4), (0, 5), (1, 6), (1, 7)},
            id="merge-inner2-outer2",
        ),
        pytest.param(Merge(), 3, 3, {(0, 0), (1, 1), (2, 2)}, id="merge-trivial"),
        # Depthwise (multiplier 1) is an identity.
        pytest.param(Grouped(1, 1), 3, 3, {(0, 0), (1, 1), (2, 2)}, id="grouped-depthwise"),
        # Depthwise with multiplier 2: input c feeds outputs 2c, 2c+1.
        pytest.param(
            Grouped(1, 2), 2, 4, {(0, 0), (1, 2), (0, 0), (0, 1), (1, 2), (1, 3)},
            id="grouped-multiplier2",
        ),
        # group=2, 4 in -> 2 out: every input of a group ties to the group's first output, and
        # every output to the group's first input (connectivity = whole groups).
        pytest.param(
            Grouped(2, 1), 4, 2, {(0, 0), (1, 0), (2, 1), (3, 1), (0, 0), (2, 1)},
            id="grouped-2-to-1",
        ),
    ],
)
def test_pairs(index_map: IndexMap, n_src: int, n_dst: int, expected: set[tuple[int, int]]) -> None:
    assert _pairs(index_map, n_src, n_dst) == expected


def _components(pairs: set[tuple[int, int]], n_src: int, n_dst: int) -> list[set[str]]:
    """Connected components over 's<i>' / 'd<j>' nodes, as sorted sets."""
    parent = {f"s{i}": f"s{i}" for i in range(n_src)} | {f"d{j}": f"d{j}" for j in range(n_dst)}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(f"s{a}")] = find(f"d{b}")
    comps: dict[str, set[str]] = {}
    for x in parent:
        comps.setdefault(find(x), set()).add(x)
    return sorted(comps.values(), key=lambda s: sorted(s))


@pytest.mark.parametrize(
    ("groups", "per_in", "per_out"),
    [pytest.param(2, 3, 2, id="g2-3to2"), pytest.param(3, 2, 4, id="g3-2to4"),
     pytest.param(4, 1, 1, id="depthwise-4")],
)
def test_grouped_ties_whole_conv_groups(groups: int, per_in: int, per_out: int) -> None:
    n_src, n_dst = groups * per_in, groups * per_out
    comps = _components(_pairs(Grouped(per_in, per_out), n_src, n_dst), n_src, n_dst)
    expected = [
        {f"s{g * per_in + i}" for i in range(per_in)}
        | {f"d{g * per_out + o}" for o in range(per_out)}
        for g in range(groups)
    ]
    assert comps == sorted(expected, key=lambda s: sorted(s))


def test_merge_every_target_index_has_one_owner() -> None:
    src, dst = Merge(inner=4, outer=3).pairs(5, 60)
    assert np.array_equal(np.sort(dst), np.arange(60))
    assert np.bincount(src).tolist() == [12] * 5
    # Target index o*20 + c*4 + j belongs to channel c.
    assert src[dst == 2 * 20 + 3 * 4 + 1].tolist() == [3]


@pytest.mark.parametrize(
    ("index_map", "n_src", "n_dst"),
    [
        pytest.param(Identity(), 3, 4, id="identity-mismatch"),
        pytest.param(Offset(3), 2, 4, id="offset-past-end"),
        pytest.param(Offset(-1), 2, 4, id="offset-negative"),
        pytest.param(Merge(inner=2), 3, 7, id="merge-inner-mismatch"),
        pytest.param(Merge(inner=2, outer=2), 3, 6, id="merge-outer-mismatch"),
        pytest.param(Grouped(2, 1), 5, 2, id="grouped-src-not-multiple"),
        pytest.param(Grouped(2, 2), 4, 6, id="grouped-dst-mismatch"),
    ],
)
def test_invalid_sizes_raise(index_map: IndexMap, n_src: int, n_dst: int) -> None:
    with pytest.raises(ValueError, match="."):
        index_map.pairs(n_src, n_dst)


@pytest.mark.parametrize(
    "index_map", [Identity(), Offset(1), Merge(2, 3), Grouped(2, 1)], ids=lambda m: type(m).__name__
)
def test_maps_are_frozen_values(index_map: IndexMap) -> None:
    assert index_map == type(index_map)(**vars(index_map))
    assert hash(index_map) == hash(type(index_map)(**vars(index_map)))
    with pytest.raises(AttributeError):
        index_map.offset = 5  # type: ignore[union-attr,misc]
