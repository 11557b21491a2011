"""Group commit: results and failures stored together, in one transaction, and the driver's
holding of outcomes that arrive close together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from hwsearch.db import Store
from hwsearch.db.group_commit import GroupCommit
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import (
    CandidateFailure,
    CandidateResult,
    CandidateStatus,
    FrontPoint,
    MetricValue,
    NewCandidate,
    NewFront,
    PredictionRecord,
    Provenance,
)


def _candidates(store: Store, n: int, target: str = "cpu") -> tuple[int, list[int]]:
    job_id = store.create_job(name="job", family="mlp", target=target, spec={}).id
    added = store.add_candidates(job_id, [NewCandidate(f"h{i}", {"i": i}, 0) for i in range(n)])
    return job_id, [c.id for c in added]


def _metrics(i: int) -> list[MetricValue]:
    return [
        MetricValue("accuracy", 0.5 + i / 1000, Provenance.MEASURED, details={"i": i}),
        MetricValue("latency_ms", 1.0 + i, Provenance.ESTIMATED, target="elsewhere"),
    ]


@contextmanager
def _commits(store: Store) -> Iterator[list[int]]:
    """Counts the transactions committed (as the benchmark does)."""
    seen: list[int] = []

    def commit(*args: Any) -> None:
        seen.append(1)

    event.listen(store.engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(store.engine, "commit", commit)


def test_results_and_failures_land_in_one_transaction(store: Store) -> None:
    job_id, ids = _candidates(store, 40)
    results = [CandidateResult(c, _metrics(i), i % 3 != 0) for i, c in enumerate(ids[:-2])]
    failures = [CandidateFailure(ids[-2], "out of memory"), CandidateFailure(ids[-1], "boom")]
    with _commits(store) as commits:
        store.record_results(results, context="ctx", failures=failures)
    assert len(commits) == 1
    got = {c.id: c for c in store.list_candidates(job_id)}
    for i, c in enumerate(ids[:-2]):
        assert got[c].status is CandidateStatus.DONE and got[c].feasible is (i % 3 != 0)
        assert got[c].metrics["accuracy"].value == 0.5 + i / 1000
        assert got[c].metrics["accuracy"].details == {"i": i}
        assert got[c].metrics["accuracy"].target == "cpu"  # the job's target
        assert got[c].metrics["latency_ms"].target == "elsewhere"
        assert got[c].metrics["latency_ms"].provenance is Provenance.ESTIMATED
    assert [(got[c].status, got[c].error) for c in ids[-2:]] == [
        (CandidateStatus.FAILED, "out of memory"),
        (CandidateStatus.FAILED, "boom"),
    ]
    found = store.find_measurements_many([f"h{i}" for i in range(3)], "cpu", context="ctx")
    assert sorted(found) == ["h0", "h1", "h2"]  # reusable under their context


def test_a_bad_item_stores_nothing_of_the_group(store: Store) -> None:
    job_id, ids = _candidates(store, 3)
    store.record_result(ids[1], _metrics(1)[:1], feasible=True)
    with pytest.raises(ConflictError, match="accuracy"):  # ids[1] has it already
        store.record_results(
            [
                CandidateResult(ids[0], _metrics(0), True),
                CandidateResult(ids[1], _metrics(1), True),
            ],
            failures=[CandidateFailure(ids[2], "boom")],
        )
    with pytest.raises(NotFoundError, match="31337"):
        store.record_results(
            [CandidateResult(ids[0], _metrics(0), True)], failures=[CandidateFailure(31337, "boom")]
        )
    got = {c.id: c for c in store.list_candidates(job_id)}
    assert got[ids[0]].status is CandidateStatus.PENDING and not got[ids[0]].metrics
    assert got[ids[2]].status is CandidateStatus.PENDING and got[ids[2]].error is None
    assert list(got[ids[1]].metrics) == ["accuracy"]


def test_bad_groups_are_refused_naming_the_field(store: Store) -> None:
    _, ids = _candidates(store, 2)
    ok = CandidateResult(ids[0], _metrics(0), True)
    with pytest.raises(StorageError, match=r"failures\[0\]"):
        store.record_results([ok], failures=[CandidateFailure(ids[0], "twice")])
    with pytest.raises(StorageError, match=r"failures\[0\].error"):
        store.record_results([], failures=[CandidateFailure(ids[1], " ")])
    with pytest.raises(StorageError, match=r"failures\[0\].candidate_id"):
        store.record_results([], failures=[("7", "boom")])  # type: ignore[list-item]
    with pytest.raises(StorageError, match=r"results\[0\].candidate_id"):
        store.record_results([CandidateResult(True, _metrics(0), True)])
    with pytest.raises(StorageError, match=r"failures\[0\]"):
        store.record_results([], failures=[(ids[1],)])  # type: ignore[list-item]
    with _commits(store) as commits:
        store.record_results([])
    assert commits == []  # nothing to store: no transaction


def _front(job_id: int, ids: list[int], generation: int = 0) -> NewFront:
    """A one-objective front of the candidates ``ids`` (results of :func:`_metrics`)."""
    points = [
        FrontPoint(c, f"h{i}", {"accuracy": 0.5 + i / 1000}, measured=True)
        for i, c in enumerate(ids)
    ]
    return NewFront(job_id, generation, ["accuracy"], ["maximize"], [0.0], 0.5, len(ids), points)


def test_a_front_lands_with_the_results_it_follows_from(store: Store) -> None:
    job_id, ids = _candidates(store, 5)
    results = [CandidateResult(c, _metrics(i), True) for i, c in enumerate(ids[:3])]
    with _commits(store) as commits:
        store.record_results(results, context="ctx", front=_front(job_id, ids[:3]))
    assert len(commits) == 1
    stored = store.latest_front(job_id)
    assert stored is not None and stored.generation == 0 and stored.evaluations == 3
    assert [p.candidate_id for p in stored.points] == ids[:3]
    assert stored.points[2].values == {"accuracy": 0.502}  # as stored with the results
    store.record_results([], front=_front(job_id, ids[:3], generation=1))  # a front alone
    assert [f.generation for f in store.list_fronts(job_id)] == [0, 1]


def test_a_bad_front_stores_nothing_of_its_group(store: Store) -> None:
    job_id, ids = _candidates(store, 4)
    results = [CandidateResult(c, _metrics(i), True) for i, c in enumerate(ids[:2])]
    # ids[2] has no stored result: the front cannot show it, and the results stay pending
    with pytest.raises(StorageError, match=r"points\[2\]"):
        store.record_results(results, front=_front(job_id, ids[:3]))
    bad_reference = _front(job_id, ids[:2])._replace(reference_point=[float("nan")])
    with pytest.raises(StorageError, match=r"reference_point\[0\]"):
        store.record_results(results, front=bad_reference)
    assert store.count_candidates(job_id, status=CandidateStatus.DONE) == 0
    assert store.latest_front(job_id) is None
    store.record_results(results, front=_front(job_id, ids[:2]))
    later = [CandidateResult(ids[2], _metrics(2), True)]
    with pytest.raises(ConflictError, match="generation 0"):  # that generation has its front
        store.record_results(later, front=_front(job_id, ids[:3]))
    assert store.count_candidates(job_id, status=CandidateStatus.DONE) == 2
    with pytest.raises(NotFoundError, match="job 31337"):
        store.record_results([], front=_front(31337, []))


def test_outcomes_are_kept_when_the_front_with_them_fails(store: Store) -> None:
    job_id, ids = _candidates(store, 3)
    writes = GroupCommit(store, context="ctx")
    for i, c in enumerate(ids[:2]):
        writes.add_result(c, _metrics(i), feasible=True)
    with pytest.raises(StorageError, match=r"points\[2\]"):
        writes.flush(front=_front(job_id, ids))  # ids[2] has no result
    assert store.count_candidates(job_id, status=CandidateStatus.DONE) == 2
    assert store.latest_front(job_id) is None and writes.pending == 0
    writes.flush(front=_front(job_id, ids[:2]))  # nothing held: the front alone
    assert store.latest_front(job_id) is not None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Recorder:
    """A store that records each call of :meth:`record_results`."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], list[int]]] = []

    def record_results(
        self, results: Any, *, context: str | None = None, failures: Any = (), front: Any = None
    ) -> None:
        self.calls.append(([r.candidate_id for r in results], [f.candidate_id for f in failures]))


def test_fast_outcomes_wait_for_their_group_slow_ones_are_written_at_once() -> None:
    clock, store = _Clock(), _Recorder()
    writes = GroupCommit(store, window_s=0.05, clock=clock)
    writes.start()
    for i in range(5):  # 1 ms apart: one group
        clock.now += 0.001
        writes.add_result(i, [], feasible=True)
    assert store.calls == [] and writes.pending == 5
    clock.now += 0.001
    writes.add_failure(5, "boom")
    writes.flush()  # as the driver does before telling the optimizer
    assert store.calls == [([0, 1, 2, 3, 4], [5])] and writes.pending == 0
    writes.flush()
    assert len(store.calls) == 1  # nothing held: no write
    writes.start()
    clock.now += 1.0  # a real evaluation: stored before the next one starts
    writes.add_result(6, [], feasible=True)
    assert store.calls[-1] == ([6], []) and writes.pending == 0


def test_a_group_is_written_once_older_than_the_window_or_full() -> None:
    clock, store = _Clock(), _Recorder()
    writes = GroupCommit(store, window_s=0.05, max_size=4, clock=clock)
    writes.start()
    for i in range(30):  # 10 ms apart
        clock.now += 0.01
        writes.add_result(i, [], feasible=True)
    assert [ids for ids, _ in store.calls][:2] == [[0, 1, 2, 3], [4, 5, 6, 7]]  # full at 4
    writes = GroupCommit(store, window_s=4 / 64, clock=clock)
    store.calls.clear()
    writes.start()
    for i in range(12):  # 1/64 s apart (exact in binary): a group spans at most the window
        clock.now += 1 / 64
        writes.add_result(i, [], feasible=True)
    assert [ids for ids, _ in store.calls] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert writes.pending == 2


def test_nothing_is_written_once_the_lease_is_lost() -> None:
    store = _Recorder()

    def lost() -> None:
        raise RuntimeError("lease lost")

    writes = GroupCommit(store, before_write=lost)
    writes.add_result(1, [], feasible=True)  # arrived fast: held
    with pytest.raises(RuntimeError, match="lease lost"):
        writes.flush()
    assert store.calls == [] and writes.pending == 0  # let go: the job's next holder redoes it
    with pytest.raises(ValueError, match="window_s"):
        GroupCommit(store, window_s=-1)
    with pytest.raises(ValueError, match="max_size"):
        GroupCommit(store, max_size=0)


def test_a_retried_front_that_landed_is_not_a_conflict(store: Store) -> None:
    job_id, ids = _candidates(store, 3)
    results = [CandidateResult(c, _metrics(i), True) for i, c in enumerate(ids[:2])]
    store.record_results(results, front=_front(job_id, ids[:2]))
    # the same writes again, as a retry after a COMMIT whose answer was lost sends them
    store.record_results([], front=_front(job_id, ids[:2]))
    store.record_results(results, front=_front(job_id, ids[:2]))
    fields = _front(job_id, ids[:2])._asdict()
    again = store.save_front(fields.pop("job_id"), **fields)
    assert [p.candidate_id for p in again.points] == ids[:2]
    assert len(store.list_fronts(job_id)) == 1
    other = _front(job_id, ids[:1])  # a different front for the same generation
    with pytest.raises(ConflictError, match="generation 0"):
        store.record_results([], front=other)
    bare = [CandidateResult(ids[2], [], True)]  # nothing to compare: not taken as landed
    with pytest.raises(ConflictError, match="generation 0"):
        store.record_results(bare, front=other)
    assert store.get_candidate(job_id, ids[2]).status is CandidateStatus.PENDING


def test_predictions_land_with_the_candidates_they_settle(store: Store) -> None:
    job_id, ids = _candidates(store, 3)
    said = [PredictionRecord(c, "accuracy", 0.7, 0.01, None) for c in ids]
    predicted = [MetricValue("accuracy", 0.7, Provenance.PREDICTED)]
    with _commits(store) as commits:
        store.record_results([CandidateResult(ids[0], predicted, True)], predictions=said)
    assert len(commits) == 1
    assert sorted(p.candidate_id for p in store.list_predictions(job_id)) == ids
    assert store.get_candidate(job_id, ids[0]).status is CandidateStatus.DONE
    with pytest.raises(ConflictError, match="predictions"):  # ids[1] has one: nothing lands
        store.record_results([CandidateResult(ids[1], predicted, True)], predictions=said[1:2])
    assert store.get_candidate(job_id, ids[1]).status is CandidateStatus.PENDING
    with pytest.raises(StorageError, match=r"predictions\[0\].value"):
        store.record_results([], predictions=[PredictionRecord(ids[2], "m", float("nan"), 0, None)])
