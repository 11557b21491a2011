"""Candidates and their measurements."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from hwsearch.db import Store
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import CandidateStatus, MetricValue, Provenance

MEASURED_DETAILS: dict[str, Any] = {
    "device": "Intel Xeon 8480+ (4 threads)",
    "software": {"torch": "2.13.0", "python": "3.11.7"},
    "repeats": 50,
    "dispersion": {"iqr_ms": 0.0123456789012345, "cv": 1e-17},
    "samples_ms": [1.0000000000000002, 0.30000000000000004, 5e-324],
    "kernel": "aten::linear/mkldnn",
    "warm": True,
    "note": None,
    "unicode": "µs — ✓",
}


def _job(store: Store, target: str = "cpu") -> int:
    return store.create_job(name="job", family="mlp", target=target, spec={}).id


@contextmanager
def _count_selects(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def test_add_candidates_returns_existing_rows_for_known_hashes(store: Store) -> None:
    job_id = _job(store)
    first = store.add_candidates(job_id, [("h1", {"width": 16}, 0), ("h2", {"width": 32}, 0)])
    assert [c.config_hash for c in first] == ["h1", "h2"]
    assert all(c.status is CandidateStatus.PENDING and c.metrics == {} for c in first)
    assert first[0].config == {"width": 16} and first[0].generation == 0

    again = store.add_candidates(job_id, [("h3", {"width": 64}, 1), ("h1", {"width": 16}, 1)])
    assert again[1] == first[0]  # same row: id, generation 0 kept
    assert again[0].generation == 1
    assert store.count_candidates(job_id) == 3
    assert [c.config_hash for c in store.list_candidates(job_id)] == ["h1", "h2", "h3"]


def test_repeated_hash_within_one_call_is_stored_once(store: Store) -> None:
    job_id = _job(store)
    out = store.add_candidates(job_id, [("h", {"a": 1}, 0), ("h", {"a": 1}, 0)])
    assert len(out) == 2 and out[0] == out[1]
    assert store.count_candidates(job_id) == 1


def test_same_hash_in_two_jobs_is_two_candidates(store: Store) -> None:
    a, b = _job(store), _job(store)
    (ca,) = store.add_candidates(a, [("h", {}, 0)])
    (cb,) = store.add_candidates(b, [("h", {}, 0)])
    assert ca.id != cb.id and (ca.job_id, cb.job_id) == (a, b)


def test_add_candidates_to_missing_job(store: Store) -> None:
    with pytest.raises(NotFoundError, match="job 77"):
        store.add_candidates(77, [("h", {}, 0)])
    with pytest.raises(NotFoundError, match="job 77"):
        store.add_candidates(77, [])
    with pytest.raises(NotFoundError, match="job 77"):
        store.add_candidates_and_find(77, [("h", {}, 0)], target="cpu", context=None)


def test_add_candidates_and_find_is_one_transaction_of_both(store: Store) -> None:
    measured_in = _job(store)
    first = store.add_candidates(measured_in, [("h0", {"i": 0}, 0)])[0]
    store.record_result(
        first.id, [MetricValue("m", 3.0, Provenance.MEASURED)], feasible=True, context="ctx"
    )
    job_id = _job(store)
    items = [("h0", {"i": 0}, 2), ("h1", {"i": 1}, 2), ("h0", {"i": 0}, 2)]
    with _count_selects(store) as selects:
        added, found = store.add_candidates_and_find(job_id, items, target="cpu", context="ctx")
    assert len(selects) == 1  # the lookup; the rows come back from the INSERT
    assert [c.config_hash for c in added] == ["h0", "h1", "h0"] and added[0] == added[2]
    assert all(c.job_id == job_id and c.generation == 2 for c in added)
    assert list(found) == ["h0"] and found["h0"][0].value == 3.0
    origin = found["h0"][0].details["reused_from"]
    assert (origin["job_id"], origin["candidate_id"]) == (measured_in, first.id)
    assert store.find_measurements_many(["h0"], "cpu", context="ctx", with_origin=True) == found
    again, _ = store.add_candidates_and_find(job_id, items[:2], target="cpu", context="other")
    assert [c.id for c in again] == [c.id for c in added[:2]]  # known hashes: the same rows


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (("", {}, 0), "items[1].config_hash"),
        (("x" * 65, {}, 0), "items[1].config_hash"),
        (("h", "not a dict", 0), "items[1].config"),
        (("h", {}, -1), "items[1].generation"),
        (("h", {}, True), "items[1].generation"),
        (("h", {}), "items[1]"),
    ],
)
def test_add_candidates_rejects_bad_items_and_adds_none(
    store: Store, item: tuple[Any, ...], field: str
) -> None:
    job_id = _job(store)
    with pytest.raises(StorageError) as info:
        store.add_candidates(job_id, [("ok", {}, 0), item])
    assert info.value.field == field
    assert store.count_candidates(job_id) == 0


def test_record_result_round_trips_values_provenance_and_details(store: Store) -> None:
    job_id = _job(store, target="cpu-xeon")
    (cand,) = store.add_candidates(job_id, [("h", {"width": 32, "bits": [8, 4]}, 2)])
    metrics = [
        MetricValue("latency_ms", 0.1 + 0.2, Provenance.MEASURED, details=MEASURED_DETAILS),
        MetricValue("accuracy", 1 / 3, Provenance.MEASURED, target="any"),
        MetricValue(
            "energy_j",
            123456789.12345679,
            Provenance.PREDICTED,
            details={"predictor": "gbm-v3", "std": 2.5e-9},
        ),
        MetricValue("size_bytes", 1e300, Provenance.ESTIMATED, details={"model": "bits*params"}),
    ]
    store.record_result(cand.id, metrics, feasible=True)

    got = store.get_candidate(job_id, cand.id)
    assert got.status is CandidateStatus.DONE and got.feasible is True and got.error is None
    assert got.config == {"width": 32, "bits": [8, 4]} and got.generation == 2
    assert list(got.metrics) == ["latency_ms", "accuracy", "energy_j", "size_bytes"]
    for sent in metrics:
        back = got.metrics[sent.name]
        assert back.value == sent.value  # exact, not approximately
        assert back.provenance is sent.provenance
        assert back.details == sent.details
    # A metric without a target is stored under the job's target.
    assert got.metrics["latency_ms"].target == "cpu-xeon"
    assert got.metrics["accuracy"].target == "any"
    assert store.list_candidates(job_id) == [got]


def test_failing_record_result_leaves_nothing_half_written(store: Store) -> None:
    job_id = _job(store)
    (cand,) = store.add_candidates(job_id, [("h", {}, 0)])
    store.record_result(
        cand.id, [MetricValue("latency_ms", 2.0, Provenance.MEASURED)], feasible=True
    )
    before = store.get_candidate(job_id, cand.id)

    # 'energy_j' is new and inserted first; 'latency_ms' then violates UNIQUE(candidate, metric).
    clashing = [
        MetricValue("energy_j", 9.0, Provenance.MEASURED),
        MetricValue("latency_ms", 3.0, Provenance.MEASURED),
    ]
    with pytest.raises(ConflictError, match="already has stored 'latency_ms'") as info:
        store.record_result(cand.id, clashing, feasible=False)
    assert info.value.field == "metrics[1].name"
    assert store.get_candidate(job_id, cand.id) == before  # feasible still True, no energy_j
    assert store.find_measurements("h", "cpu") == [before.metrics["latency_ms"]]


def test_record_result_for_missing_candidate_writes_nothing(store: Store) -> None:
    job_id = _job(store)
    with pytest.raises(NotFoundError, match="candidate 31337"):
        store.record_result(31337, [MetricValue("x", 1.0, Provenance.MEASURED)], feasible=True)
    assert store.count_candidates(job_id) == 0
    assert store.find_measurements("h", "cpu") == []


@pytest.mark.parametrize(
    ("metric", "field"),
    [
        (MetricValue("", 1.0, Provenance.MEASURED), "metrics[0].name"),
        (MetricValue("m", float("nan"), Provenance.MEASURED), "metrics[0].value"),
        (MetricValue("m", float("inf"), Provenance.MEASURED), "metrics[0].value"),
        (MetricValue("m", "fast", Provenance.MEASURED), "metrics[0].value"),  # type: ignore[arg-type]
        (MetricValue("m", 1.0, "guessed"), "metrics[0].provenance"),  # type: ignore[arg-type]
        (MetricValue("m", 1.0, Provenance.MEASURED, details={"x": {1, 2}}), "metrics[0].details"),
    ],
)
def test_record_result_rejects_bad_metrics(store: Store, metric: MetricValue, field: str) -> None:
    job_id = _job(store)
    (cand,) = store.add_candidates(job_id, [("h", {}, 0)])
    with pytest.raises(StorageError) as info:
        store.record_result(cand.id, [metric], feasible=True)
    assert info.value.field == field
    assert store.get_candidate(job_id, cand.id).status is CandidateStatus.PENDING


def test_record_result_rejects_a_metric_given_twice(store: Store) -> None:
    job_id = _job(store)
    (cand,) = store.add_candidates(job_id, [("h", {}, 0)])
    twice = [MetricValue("m", 1.0, Provenance.MEASURED)] * 2
    with pytest.raises(StorageError, match="given twice") as info:
        store.record_result(cand.id, twice, feasible=True)
    assert info.value.field == "metrics[1].name"


def test_metrics_may_be_added_to_a_done_candidate(store: Store) -> None:
    job_id = _job(store)
    (cand,) = store.add_candidates(job_id, [("h", {}, 0)])
    store.record_result(
        cand.id, [MetricValue("latency_ms", 1.0, Provenance.MEASURED)], feasible=True
    )
    store.record_result(
        cand.id, [MetricValue("accuracy", 0.9, Provenance.MEASURED)], feasible=False
    )
    got = store.get_candidate(job_id, cand.id)
    assert set(got.metrics) == {"latency_ms", "accuracy"} and got.feasible is False


def test_record_failure(store: Store) -> None:
    job_id = _job(store)
    (cand,) = store.add_candidates(job_id, [("h", {}, 0)])
    store.record_failure(cand.id, "CUDA out of memory")
    got = store.get_candidate(job_id, cand.id)
    assert got.status is CandidateStatus.FAILED and got.error == "CUDA out of memory"
    with pytest.raises(NotFoundError, match="candidate 999"):
        store.record_failure(999, "boom")
    with pytest.raises(StorageError) as info:
        store.record_failure(cand.id, "  ")
    assert info.value.field == "error"


def test_get_candidate_checks_the_job(store: Store) -> None:
    a, b = _job(store), _job(store)
    (cand,) = store.add_candidates(a, [("h", {}, 0)])
    with pytest.raises(NotFoundError, match=f"candidate {cand.id} not found in job {b}"):
        store.get_candidate(b, cand.id)


def test_list_and_count_by_status(store: Store) -> None:
    job_id = _job(store)
    cands = store.add_candidates(job_id, [(f"h{i}", {"i": i}, 0) for i in range(5)])
    store.record_result(cands[3].id, [MetricValue("m", 1.0, Provenance.MEASURED)], feasible=True)
    store.record_result(cands[1].id, [MetricValue("m", 2.0, Provenance.MEASURED)], feasible=True)
    store.record_failure(cands[2].id, "boom")
    done = store.list_candidates(job_id, status=CandidateStatus.DONE)
    assert [c.id for c in done] == [cands[1].id, cands[3].id]
    assert [c.metrics["m"].value for c in done] == [2.0, 1.0]
    assert store.count_candidates(job_id, status=CandidateStatus.PENDING) == 2
    assert store.count_candidates(job_id, status=CandidateStatus.FAILED) == 1
    assert store.count_candidates(job_id) == 5
    with pytest.raises(NotFoundError):
        store.list_candidates(job_id + 100)
    with pytest.raises(NotFoundError):
        store.count_candidates(job_id + 100)


def test_list_candidates_query_count_does_not_grow_with_candidates(store: Store) -> None:
    def fill(n: int) -> int:
        job_id = _job(store)
        cands = store.add_candidates(job_id, [(f"h{i}", {}, 0) for i in range(n)])
        for c in cands:
            store.record_result(
                c.id,
                [
                    MetricValue("a", 1.0, Provenance.MEASURED),
                    MetricValue("b", 2.0, Provenance.PREDICTED),
                ],
                feasible=True,
            )
        return job_id

    small, large = fill(2), fill(20)
    with _count_selects(store) as few:
        assert len(store.list_candidates(small)) == 2
    with _count_selects(store) as many:
        listed = store.list_candidates(large)
    assert len(listed) == 20 and all(len(c.metrics) == 2 for c in listed)
    assert len(many) == len(few) <= 3


def test_find_measurements_reuses_across_jobs_per_target(store: Store) -> None:
    first, second = _job(store, target="cpu"), _job(store, target="cpu")
    gpu_job = _job(store, target="cuda")
    (c1,) = store.add_candidates(first, [("shared", {}, 0)])
    (c2,) = store.add_candidates(gpu_job, [("shared", {}, 0)])
    store.record_result(
        c1.id,
        [
            MetricValue("latency_ms", 4.25, Provenance.MEASURED, details=MEASURED_DETAILS),
            MetricValue("accuracy", 0.5, Provenance.PREDICTED, details={"predictor": "v1"}),
        ],
        feasible=True,
    )
    store.record_result(
        c2.id, [MetricValue("latency_ms", 0.75, Provenance.MEASURED)], feasible=True
    )

    # The second job has no candidate yet but finds the first job's measurement.
    found = store.find_measurements("shared", "cpu")
    assert found == [MetricValue("latency_ms", 4.25, Provenance.MEASURED, "cpu", MEASURED_DETAILS)]
    assert [m.value for m in store.find_measurements("shared", "cuda")] == [0.75]
    assert store.find_measurements("shared", "tpu") == []
    assert store.find_measurements("other-hash", "cpu") == []
    assert store.count_candidates(second) == 0


def test_find_measurements_returns_the_newest_per_metric(store: Store) -> None:
    jobs = [_job(store) for _ in range(2)]
    for job_id, value in zip(jobs, (1.0, 2.0), strict=True):
        (cand,) = store.add_candidates(job_id, [("h", {}, 0)])
        store.record_result(cand.id, [MetricValue("m", value, Provenance.MEASURED)], feasible=True)
    assert [m.value for m in store.find_measurements("h", "cpu")] == [2.0]


def test_concurrent_writers_on_one_database(db_url: str) -> None:
    """Two stores (as two processes would) adding the same configs and results at once."""
    with Store.open(db_url) as setup:
        job_id = _job(setup)
    errors: list[BaseException] = []
    results: list[list[int]] = []

    def work(offset: int) -> None:
        try:
            with Store.open(db_url) as store:
                ids = []
                for i in range(15):
                    (cand,) = store.add_candidates(job_id, [(f"h{i}", {"i": i}, 0)])
                    ids.append(cand.id)
                    metric = MetricValue(f"m{offset}", float(i), Provenance.MEASURED)
                    store.record_result(cand.id, [metric], feasible=True)
                results.append(ids)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results[0] == results[1]  # both saw the same rows for the same hashes
    with Store.open(db_url) as store:
        listed = store.list_candidates(job_id)
        assert len(listed) == 15
        assert all(set(c.metrics) == {"m0", "m1"} for c in listed)


def test_find_measurements_matches_the_context(store: Store) -> None:
    """A value taken under other settings (another seed, timing protocol) is not reused."""
    jobs = [_job(store) for _ in range(3)]
    for job_id, value, context in zip(jobs, (1.0, 2.0, 3.0), ("ctx-a", "ctx-b", None), strict=True):
        (cand,) = store.add_candidates(job_id, [("h", {}, 0)])
        store.record_result(
            cand.id, [MetricValue("m", value, Provenance.MEASURED)], feasible=True, context=context
        )
    assert [m.value for m in store.find_measurements("h", "cpu", context="ctx-a")] == [1.0]
    assert [m.value for m in store.find_measurements("h", "cpu", context="ctx-b")] == [2.0]
    assert store.find_measurements("h", "cpu", context="ctx-c") == []
    assert [m.value for m in store.find_measurements("h", "cpu")] == [3.0]  # newest of any


def test_find_measurements_many_answers_a_batch_in_one_query(store: Store) -> None:
    jobs = [_job(store) for _ in range(2)]
    for job_id, value in zip(jobs, (1.0, 2.0), strict=True):
        cands = store.add_candidates(job_id, [(f"h{i}", {"i": i}, 0) for i in range(3)])
        for c in cands[:2]:  # h2 is never measured
            metrics = [
                MetricValue("m", value, Provenance.MEASURED),
                MetricValue("a", value, Provenance.ESTIMATED),
                MetricValue("p", value, Provenance.PREDICTED),  # never reused
            ]
            store.record_result(c.id, metrics, feasible=True, context="ctx")
    hashes = ["h0", "h1", "h2", "unknown"]
    with _count_selects(store) as selects:
        found = store.find_measurements_many(hashes, "cpu", context="ctx")
    assert len(selects) == 1
    assert set(found) == {"h0", "h1"}
    for digest in ("h0", "h1"):  # the newest of each metric, by name, as find_measurements
        assert found[digest] == store.find_measurements(digest, "cpu", context="ctx")
        assert [(m.name, m.value) for m in found[digest]] == [("a", 2.0), ("m", 2.0)]
    assert store.find_measurements_many(hashes, "cpu", context="other") == {}
    assert store.find_measurements_many([], "cpu") == {}


def test_record_results_stores_all_in_one_transaction_or_nothing(store: Store) -> None:
    job_id = _job(store, target="cpu-xeon")
    a, b, c = store.add_candidates(job_id, [(f"h{i}", {}, 0) for i in range(3)])
    m = [MetricValue("m", 1.0, Provenance.MEASURED)]
    with pytest.raises(NotFoundError, match="candidate 31337"):
        store.record_results([(a.id, m, True), (31337, m, True)])
    with pytest.raises(StorageError, match="given twice") as info:
        store.record_results([(a.id, m, True), (a.id, m, False)])
    assert info.value.field == "results[1]"
    with pytest.raises(StorageError) as info:
        nan = [MetricValue("m", float("nan"), Provenance.MEASURED)]
        store.record_results([(a.id, m, True), (b.id, nan, True)])
    assert info.value.field == "results[1].metrics[0].value"
    assert store.count_candidates(job_id, status=CandidateStatus.PENDING) == 3

    store.record_result(b.id, m, feasible=True)
    with pytest.raises(ConflictError, match=f"candidate {b.id} already has stored 'm'") as info:
        store.record_results([(a.id, m, True), (b.id, m, False)], context="ctx")
    assert info.value.field == "results[1].metrics[0].name"
    assert store.get_candidate(job_id, a.id).status is CandidateStatus.PENDING

    store.record_results([(a.id, m, True), (c.id, m, False)], context="ctx")
    got = {x.id: x for x in store.list_candidates(job_id)}
    assert got[a.id].feasible is True and got[c.id].feasible is False
    assert all(x.status is CandidateStatus.DONE for x in got.values())
    assert got[c.id].metrics["m"].target == "cpu-xeon"
    assert [x.value for x in store.find_measurements("h2", "cpu-xeon", context="ctx")] == [1.0]
