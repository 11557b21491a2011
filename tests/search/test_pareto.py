from __future__ import annotations

import numpy as np
import pytest

from hwsearch.search.pareto import (
    default_reference_point,
    hypervolume,
    non_dominated_sort,
    pareto_front,
)

MIN2 = ["minimize", "minimize"]


def as_lists(fronts: list[np.ndarray]) -> list[list[int]]:
    return [sorted(f.tolist()) for f in fronts]


def test_non_dominated_sort_layers() -> None:
    values = np.array([[1, 3], [2, 2], [3, 1], [2, 3], [3, 3], [4, 4], [2, 2]])
    assert as_lists(non_dominated_sort(values, MIN2)) == [[0, 1, 2, 6], [3], [4], [5]]


def test_sort_with_maximised_objective() -> None:
    # (accuracy max, latency min): 0 is best in both, 3 is worst
    values = np.array([[0.9, 1.0], [0.8, 2.0], [0.95, 3.0], [0.7, 4.0]])
    assert as_lists(non_dominated_sort(values, ["maximize", "minimize"])) == [[0, 2], [1], [3]]


def test_sort_rejects_nan_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="NaN"):
        non_dominated_sort(np.array([[1.0, np.nan]]), MIN2)
    with pytest.raises(ValueError, match="3 directions for 2"):
        non_dominated_sort(np.ones((2, 2)), ["minimize"] * 3)
    assert non_dominated_sort(np.empty((0, 2)), MIN2) == []


def test_front_leaves_out_infeasible_points() -> None:
    values = np.array([[1, 3], [2, 2], [3, 1], [2.5, 2.5], [0, 0]])
    feasible = np.array([True, False, True, True, False])
    # 4 dominates everything but is infeasible; 1 is infeasible, so 3 comes onto the front
    assert pareto_front(values, MIN2, feasible).tolist() == [0, 2, 3]
    assert pareto_front(values, MIN2).tolist() == [4]
    assert pareto_front(values, MIN2, np.zeros(5, dtype=bool)).tolist() == []


def test_hypervolume_2d_hand_computed() -> None:
    points = np.array([[1, 3], [2, 2], [3, 1]])
    # staircase: 3*1 + 2*1 + 1*1
    assert hypervolume(points, MIN2, [4, 4]) == pytest.approx(6.0)
    # a dominated point and a point beyond the reference add nothing
    more = np.vstack([points, [[3, 3], [5, 0], [4, 1]]])
    assert hypervolume(more, MIN2, [4, 4]) == pytest.approx(6.0)
    assert hypervolume(np.array([[5.0, 5.0]]), MIN2, [4, 4]) == 0.0
    assert hypervolume(np.empty((0, 2)), MIN2, [4, 4]) == 0.0


def test_hypervolume_with_maximisation() -> None:
    # accuracy (max) and latency (min); reference accuracy 0, latency 4
    points = np.array([[0.5, 1.0], [0.8, 3.0]])
    # union of [0,0.5]x[1,4] (area 1.5) and [0,0.8]x[3,4] (area 0.8), overlap [0,0.5]x[3,4] 0.5
    assert hypervolume(points, ["maximize", "minimize"], [0.0, 4.0]) == pytest.approx(1.8)


def test_hypervolume_3d_hand_computed() -> None:
    directions = ["minimize"] * 3
    assert hypervolume(np.array([[1, 1, 1]]), directions, [2, 3, 4]) == pytest.approx(6.0)
    # two boxes of 2x1x1 from ref (3,3,3): [1,3]x[2,3]x[2,3]? use explicit ones:
    # a=(1,2,2): box 2*1*1=2 ; b=(2,1,2): box 1*2*1=2 ; overlap [2,3]x[2,3]x[2,3] = 1
    points = np.array([[1, 2, 2], [2, 1, 2]])
    assert hypervolume(points, directions, [3, 3, 3]) == pytest.approx(3.0)
    # with one maximised objective: negate the second coordinate everywhere
    flipped = points * np.array([1, -1, 1])
    assert hypervolume(flipped, ["minimize", "maximize", "minimize"], [3, -3, 3]) == pytest.approx(
        3.0
    )


def test_default_reference_point() -> None:
    values = np.array([[0.5, 1.0], [0.9, 3.0], [0.7, 2.0]])
    ref = default_reference_point(values, ["maximize", "minimize"])
    assert ref == pytest.approx([0.5 - 0.04, 3.0 + 0.2])
    # every point adds volume with respect to it
    assert hypervolume(values[:1], ["maximize", "minimize"], ref) > 0
    same = default_reference_point(np.array([[2.0, 0.0], [2.0, 0.0]]), MIN2)
    assert same == pytest.approx([2.2, 0.1])


def test_pareto_front_is_the_first_layer_of_the_sort() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        values = rng.integers(0, 6, size=(40, 3)).astype(float)  # many ties and equal points
        directions = ["minimize", "maximize", "minimize"]
        feasible = rng.random(40) < 0.8
        kept = np.flatnonzero(feasible)
        first = kept[non_dominated_sort(values[kept], directions)[0]]
        assert pareto_front(values, directions, feasible).tolist() == sorted(first.tolist())
