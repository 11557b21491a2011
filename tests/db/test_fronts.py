"""Pareto fronts and their hypervolume history."""

from __future__ import annotations

from typing import Any

import pytest

from hwsearch.db import Store
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import CandidateRecord, FrontPoint, MetricValue, Provenance

OBJECTIVES = ["latency_ms", "accuracy"]
DIRECTIONS = ["minimize", "maximize"]


def _setup(store: Store) -> tuple[int, list[CandidateRecord]]:
    """A job with three evaluated candidates (the third predicted, not measured)."""
    job_id = store.create_job(name="job", family="mlp", target="cpu", spec={}).id
    cands = store.add_candidates(job_id, [(f"h{i}", {"i": i}, i) for i in range(3)])
    values = [(1.25, 0.875), (0.5, 0.75), (2.0, 0.9375)]
    for cand, (latency, accuracy) in zip(cands, values, strict=True):
        provenance = Provenance.PREDICTED if cand.config_hash == "h2" else Provenance.MEASURED
        store.record_result(
            cand.id,
            [
                MetricValue("latency_ms", latency, provenance),
                MetricValue("accuracy", accuracy, Provenance.MEASURED),
                MetricValue("size_bytes", 4096.0, Provenance.ESTIMATED),
            ],
            feasible=True,
        )
    return job_id, cands


def _point(cand: CandidateRecord, measured: bool = True) -> FrontPoint:
    return FrontPoint(cand.id, cand.config_hash, {}, measured)


def _save(
    store: Store, job_id: int, generation: int, points: list[FrontPoint], /, **kw: Any
) -> Any:
    args: dict[str, Any] = {
        "generation": generation,
        "objectives": OBJECTIVES,
        "directions": DIRECTIONS,
        "reference_point": [10.0, 0.0],
        "hypervolume": 1.5 * (generation + 1),
        "evaluations": 3 * (generation + 1),
        "points": points,
    }
    args.update(kw)
    return store.save_front(job_id, **args)


def test_front_round_trip_reads_values_from_measurements(store: Store) -> None:
    job_id, (a, b, c) = _setup(store)
    saved = _save(store, job_id, 0, [_point(b), _point(a), _point(c, measured=False)])
    latest = store.latest_front(job_id)
    assert latest == saved
    assert latest is not None
    assert (latest.generation, latest.hypervolume, latest.evaluations) == (0, 1.5, 3)
    assert latest.objectives == OBJECTIVES and latest.directions == DIRECTIONS
    assert latest.reference_point == [10.0, 0.0]
    # Points keep their order; values are the stored metrics of the front's objectives only.
    assert [(p.candidate_id, p.config_hash, p.measured) for p in latest.points] == [
        (b.id, "h1", True),
        (a.id, "h0", True),
        (c.id, "h2", False),
    ]
    assert latest.points[0].values == {"latency_ms": 0.5, "accuracy": 0.75}
    assert latest.points[2].values == {"latency_ms": 2.0, "accuracy": 0.9375}


def test_history_is_in_generation_order_and_latest_is_highest(store: Store) -> None:
    job_id, (a, b, c) = _setup(store)
    assert store.latest_front(job_id) is None
    assert store.list_fronts(job_id) == []
    _save(store, job_id, 2, [_point(a), _point(b), _point(c)])
    _save(store, job_id, 0, [_point(a)])
    _save(store, job_id, 1, [_point(a), _point(b)])
    history = store.list_fronts(job_id)
    assert [f.generation for f in history] == [0, 1, 2]
    assert [f.hypervolume for f in history] == [1.5, 3.0, 4.5]
    assert [len(f.points) for f in history] == [1, 2, 3]
    latest = store.latest_front(job_id)
    assert latest is not None and latest.generation == 2 and latest == history[-1]


def test_fronts_belong_to_their_job(store: Store) -> None:
    job_id, (a, _, _) = _setup(store)
    other, _ = _setup(store)
    _save(store, job_id, 0, [_point(a)])
    assert store.list_fronts(other) == []
    with pytest.raises(NotFoundError, match="job 5555"):
        store.latest_front(5555)
    with pytest.raises(NotFoundError, match="job 5555"):
        store.list_fronts(5555)


def test_a_generation_is_saved_once(store: Store) -> None:
    job_id, (a, b, _) = _setup(store)
    first = _save(store, job_id, 0, [_point(a)])
    with pytest.raises(ConflictError, match="already has a front for generation 0") as info:
        _save(store, job_id, 0, [_point(a), _point(b)], hypervolume=9.0)
    assert info.value.field == "generation"
    assert store.list_fronts(job_id) == [first]


def test_front_with_a_candidate_of_another_job_is_refused(store: Store) -> None:
    job_id, _ = _setup(store)
    _, (foreign, _, _) = _setup(store)
    with pytest.raises(NotFoundError, match=f"candidate {foreign.id} not found in job {job_id}"):
        _save(store, job_id, 0, [_point(foreign)])
    assert store.list_fronts(job_id) == []


def test_front_point_without_stored_objective_is_refused(store: Store) -> None:
    job_id, (a, _, _) = _setup(store)
    (pending,) = store.add_candidates(job_id, [("new", {}, 3)])
    with pytest.raises(StorageError, match="has no stored 'latency_ms', 'accuracy'") as info:
        _save(store, job_id, 0, [_point(a), _point(pending)])
    assert info.value.field == "points[1]"
    assert store.list_fronts(job_id) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"objectives": []}, "objectives"),
        ({"objectives": ["accuracy", "accuracy"]}, "objectives"),
        ({"directions": ["minimize"]}, "directions"),
        ({"directions": ["minimize", "up"]}, "directions[1]"),
        ({"reference_point": [1.0]}, "reference_point"),
        ({"reference_point": [1.0, float("inf")]}, "reference_point[1]"),
        ({"hypervolume": -1.0}, "hypervolume"),
        ({"hypervolume": float("nan")}, "hypervolume"),
        ({"generation": -1}, "generation"),
        ({"evaluations": 2.5}, "evaluations"),
    ],
)
def test_save_front_rejects_bad_input(store: Store, kwargs: dict[str, Any], field: str) -> None:
    job_id, (a, _, _) = _setup(store)
    with pytest.raises(StorageError) as info:
        _save(store, job_id, 0, [_point(a)], **kwargs)
    assert info.value.field == field
    assert store.list_fronts(job_id) == []


def test_save_front_rejects_mismatched_hash_and_repeated_point(store: Store) -> None:
    job_id, (a, b, _) = _setup(store)
    with pytest.raises(StorageError) as info:
        _save(store, job_id, 0, [FrontPoint(a.id, b.config_hash, {}, True)])
    assert info.value.field == "points[0].config_hash"
    with pytest.raises(StorageError) as info:
        _save(store, job_id, 0, [_point(a), _point(b), _point(a)])
    assert info.value.field == "points[2].candidate_id"
    assert store.list_fronts(job_id) == []


def test_empty_front_is_allowed(store: Store) -> None:
    job_id, _ = _setup(store)
    saved = _save(store, job_id, 0, [], hypervolume=0.0)
    assert saved.points == [] and store.latest_front(job_id) == saved
