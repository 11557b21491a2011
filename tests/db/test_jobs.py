"""Jobs: create, read, list, state transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hwsearch.db import JOB_TRANSITIONS, Store
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import JobState, MetricValue, Provenance

SPEC = {"family": "mlp", "space": {"width": [16, 32, 64]}, "budget": {"evaluations": 12}}


def _job(store: Store, name: str = "job") -> int:
    return store.create_job(name=name, family="mlp", target="cpu", spec=SPEC).id


def test_create_and_get_job_round_trip(store: Store) -> None:
    before = datetime.now(UTC)
    created = store.create_job(name="digits", family="cnn", target="cuda:0", spec=SPEC)
    got = store.get_job(created.id)
    assert got == created
    assert (got.name, got.family, got.target, got.spec) == ("digits", "cnn", "cuda:0", SPEC)
    assert got.state is JobState.QUEUED
    assert got.evaluations == 0
    assert got.started_at is None and got.finished_at is None and got.error is None
    assert got.created_at.utcoffset() == timedelta(0)
    assert before <= got.created_at <= datetime.now(UTC)


def test_get_missing_job_names_the_id(store: Store) -> None:
    with pytest.raises(NotFoundError, match="job 424242"):
        store.get_job(424242)


def test_list_jobs_newest_first_with_filter_limit_offset(store: Store) -> None:
    ids = [_job(store, f"job{i}") for i in range(5)]
    store.set_job_state(ids[1], JobState.RUNNING)
    store.set_job_state(ids[3], JobState.RUNNING)
    assert [j.id for j in store.list_jobs()] == ids[::-1]
    assert [j.id for j in store.list_jobs(limit=2)] == [ids[4], ids[3]]
    assert [j.id for j in store.list_jobs(limit=2, offset=2)] == [ids[2], ids[1]]
    assert [j.id for j in store.list_jobs(state=JobState.RUNNING)] == [ids[3], ids[1]]
    assert store.list_jobs(state=JobState.FINISHED) == []


def test_state_transitions_stamp_times(store: Store) -> None:
    job_id = _job(store)
    running = store.set_job_state(job_id, JobState.RUNNING)
    assert running.state is JobState.RUNNING
    assert running.started_at is not None and running.finished_at is None
    assert running.started_at >= running.created_at

    failed = store.set_job_state(job_id, JobState.FAILED, error="worker died")
    assert failed.state is JobState.FAILED and failed.error == "worker died"
    assert failed.finished_at is not None and failed.finished_at >= running.started_at
    assert store.get_job(job_id) == failed

    requeued = store.set_job_state(job_id, JobState.QUEUED)
    assert requeued.error is None and requeued.started_at is None
    assert requeued.finished_at is None

    store.set_job_state(job_id, JobState.RUNNING)
    finished = store.set_job_state(job_id, JobState.FINISHED)
    assert finished.state is JobState.FINISHED and finished.finished_at is not None


def test_finished_job_is_final(store: Store) -> None:
    job_id = _job(store)
    store.set_job_state(job_id, JobState.RUNNING)
    store.set_job_state(job_id, JobState.FINISHED)
    with pytest.raises(ConflictError, match="finished and cannot become running") as info:
        store.set_job_state(job_id, JobState.RUNNING)
    assert info.value.field == "state"
    assert store.get_job(job_id).state is JobState.FINISHED


def test_every_listed_transition_is_accepted_and_others_refused(store: Store) -> None:
    for start, allowed in JOB_TRANSITIONS.items():
        for target in JobState:
            job_id = _job(store)
            # Walk to `start` along allowed steps.
            path = {
                JobState.QUEUED: [],
                JobState.RUNNING: [JobState.RUNNING],
                JobState.FINISHED: [JobState.RUNNING, JobState.FINISHED],
                JobState.FAILED: [JobState.FAILED],
                JobState.CANCELLED: [JobState.CANCELLED],
                JobState.INTERRUPTED: [JobState.RUNNING, JobState.INTERRUPTED],
            }[start]
            for step in path:
                store.set_job_state(job_id, step)
            if target in allowed:
                assert store.set_job_state(job_id, target).state is target
            else:
                with pytest.raises(ConflictError):
                    store.set_job_state(job_id, target)
                assert store.get_job(job_id).state is start


def test_set_state_of_missing_job_and_unknown_state(store: Store) -> None:
    with pytest.raises(NotFoundError, match="job 99"):
        store.set_job_state(99, JobState.RUNNING)
    job_id = _job(store)
    with pytest.raises(StorageError, match="unknown value 'exploded'"):
        store.set_job_state(job_id, "exploded")  # type: ignore[arg-type]


def test_evaluations_counts_done_candidates(store: Store) -> None:
    job_id = _job(store)
    other = _job(store, "other")
    a, b, c = store.add_candidates(job_id, [("a", {}, 0), ("b", {}, 0), ("c", {}, 0)])
    (d,) = store.add_candidates(other, [("d", {}, 0)])
    metric = [MetricValue("latency_ms", 1.5, Provenance.MEASURED)]
    store.record_result(a.id, metric, feasible=True)
    store.record_result(b.id, metric, feasible=False)
    store.record_failure(c.id, "out of memory")
    store.record_result(d.id, metric, feasible=True)
    assert store.get_job(job_id).evaluations == 2
    assert {j.id: j.evaluations for j in store.list_jobs()} == {job_id: 2, other: 1}
    assert store.set_job_state(job_id, JobState.RUNNING).evaluations == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"family": 3}, "family"),
        ({"target": " "}, "target"),
        ({"spec": ["not", "a", "dict"]}, "spec"),
        ({"spec": {"x": float("nan")}}, "spec"),
        ({"spec": {"x": object()}}, "spec"),
    ],
)
def test_create_job_rejects_bad_input(store: Store, kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"name": "j", "family": "mlp", "target": "cpu", "spec": {}}
    args.update(kwargs)
    with pytest.raises(StorageError) as info:
        store.create_job(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert store.list_jobs() == []


@pytest.mark.parametrize(("limit", "offset", "field"), [(0, 0, "limit"), (10, -1, "offset")])
def test_list_jobs_rejects_bad_paging(store: Store, limit: int, offset: int, field: str) -> None:
    with pytest.raises(StorageError) as info:
        store.list_jobs(limit=limit, offset=offset)
    assert info.value.field == field


def test_returned_record_equals_what_a_read_gives(store: Store) -> None:
    """JSON has no tuples or integer keys; the write returns what the database keeps."""
    created = store.create_job(
        name="j", family="mlp", target="cpu", spec={"widths": (16, 32), "per_layer": {0: 8}}
    )
    assert created.spec == {"widths": [16, 32], "per_layer": {"0": 8}}
    assert store.get_job(created.id) == created


def test_an_interrupted_job_is_stamped_resumable_and_cancellable(store: Store) -> None:
    job_id = _job(store)
    store.set_job_state(job_id, JobState.RUNNING)
    interrupted = store.set_job_state(job_id, JobState.INTERRUPTED, error="interrupted (Ctrl-C)")
    assert interrupted.state is JobState.INTERRUPTED and interrupted.finished_at is not None
    assert store.list_jobs(state=JobState.INTERRUPTED)[0].id == job_id
    assert store.count_jobs(state=JobState.INTERRUPTED) == 1
    assert store.set_job_state(job_id, JobState.QUEUED).finished_at is None  # resumed
    store.set_job_state(job_id, JobState.RUNNING)
    store.set_job_state(job_id, JobState.INTERRUPTED)
    cancelled = store.request_cancel(job_id)  # at once: no driver runs it
    assert cancelled.state is JobState.CANCELLED


def test_a_stale_running_job_is_shown_interrupted(store: Store) -> None:
    from hwsearch.db.leases import LeaseOwner, Leases

    job_id = _job(store)
    store.set_job_state(job_id, JobState.RUNNING)
    Leases(store).take(job_id, LeaseOwner(), 30.0)
    job = store.get_job(job_id)
    assert job.shown_state() is JobState.RUNNING
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert job.stale(later) and job.shown_state(later) is JobState.INTERRUPTED
    assert job.state is JobState.RUNNING  # the row is left for a runner to adopt
