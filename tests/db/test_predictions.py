"""Predictions stored with candidates, and measured values taking the place of predicted ones."""

from __future__ import annotations

import pytest

from hwsearch.db import Store
from hwsearch.errors import ConflictError, StorageError
from hwsearch.records import CandidateStatus, MetricValue, PredictionRecord, Provenance


def _candidate(store: Store) -> tuple[int, int]:
    job_id = store.create_job(name="job", family="mlp", target="cpu", spec={}).id
    (candidate,) = store.add_candidates(job_id, [("h1", {"width": 8}, 0)])
    return job_id, candidate.id


def _predictor(store: Store) -> int:
    return store.save_predictor(
        family="mlp",
        target="cpu",
        metric="latency_ms",
        kind="gp",
        features=["macs"],
        training_size=8,
        metrics={},
        state={},
    ).id


def test_predictions_list_with_the_value_measured_since(store: Store) -> None:
    job_id, cid = _candidate(store)
    predictor = _predictor(store)
    store.record_predictions([PredictionRecord(cid, "latency_ms", 1.5, 0.2, predictor)])
    (before,) = store.list_predictions(job_id)
    assert (before.value, before.std, before.measured) == (1.5, 0.2, None)
    assert before.predictor_version == 1
    store.record_result(cid, [MetricValue("latency_ms", 1.25, Provenance.MEASURED)], feasible=True)
    (after,) = store.list_predictions(job_id)
    assert after.measured == 1.25


def test_a_second_prediction_of_a_metric_is_refused_whole(store: Store) -> None:
    job_id, cid = _candidate(store)
    store.record_predictions([PredictionRecord(cid, "latency_ms", 1.5, 0.2, None)])
    with pytest.raises(ConflictError, match="nothing was recorded"):
        store.record_predictions(
            [
                PredictionRecord(cid, "accuracy", 0.9, 0.01, None),
                PredictionRecord(cid, "latency_ms", 2.0, 0.2, None),
            ]
        )
    assert [p.metric for p in store.list_predictions(job_id)] == ["latency_ms"]


def test_non_finite_prediction_names_the_field(store: Store) -> None:
    _, cid = _candidate(store)
    with pytest.raises(StorageError) as raised:
        store.record_predictions([PredictionRecord(cid, "latency_ms", float("nan"), 0.1, None)])
    assert raised.value.field == "predictions[0].value"


def test_measured_values_replace_predicted_ones_only(store: Store) -> None:
    job_id, cid = _candidate(store)
    predicted = MetricValue("latency_ms", 1.5, Provenance.PREDICTED)
    store.record_result(
        cid, [predicted, MetricValue("size_bytes", 100.0, Provenance.MEASURED)], feasible=True
    )
    store.replace_predicted(
        cid, [MetricValue("latency_ms", 1.7, Provenance.MEASURED)], feasible=False
    )
    (candidate,) = store.list_candidates(job_id)
    assert candidate.status == CandidateStatus.DONE and candidate.feasible is False
    assert candidate.metrics["latency_ms"].value == 1.7
    assert candidate.metrics["latency_ms"].provenance == Provenance.MEASURED
    with pytest.raises(ConflictError, match="already has measured size_bytes"):
        store.replace_predicted(
            cid, [MetricValue("size_bytes", 50.0, Provenance.MEASURED)], feasible=True
        )
    with pytest.raises(StorageError, match="only measured or estimated"):
        store.replace_predicted(cid, [predicted], feasible=True)
    (candidate,) = store.list_candidates(job_id)
    assert candidate.metrics["size_bytes"].value == 100.0
