"""Active learning in the driver: predicted candidates, stored predictions, verified fronts."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import pytest

from hwsearch.db import Store
from hwsearch.errors import SpecErrors
from hwsearch.records import CandidateStatus, JobState, Provenance
from hwsearch.search.active import ActiveLearner
from hwsearch.search.driver import Driver
from hwsearch.search.spec import parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, InProcessExecutor, evaluate_safely

BUDGET = 40


def _is_predicted(candidate: Any) -> bool:
    return any(m.provenance == Provenance.PREDICTED for m in candidate.metrics.values())


def test_unpromising_candidates_are_predicted_and_the_front_verified(
    store: Store, nb201_active_spec: Any
) -> None:
    driver = Driver(parse_spec(nb201_active_spec(BUDGET)), store)
    job = driver.run()
    assert job.state == JobState.FINISHED
    done = store.list_candidates(job.id, status=CandidateStatus.DONE)
    predicted = [c for c in done if _is_predicted(c)]
    measured = [c for c in done if not _is_predicted(c)]
    assert predicted and len(predicted) == driver.predicted
    assert len(measured) <= BUDGET  # predictions cost no budget; measurements do

    versions = {(p.metric, p.version): p for p in store.list_predictors(family="nb201")}
    assert {metric for metric, _ in versions} == {"accuracy", "latency_ms"}
    for candidate in predicted:
        for metric in ("accuracy", "latency_ms"):
            value = candidate.metrics[metric]
            fitted = versions[(metric, value.details["predictor_version"])]
            assert value.details["predictor_id"] == fitted.id
            assert value.details["std"] > 0
            assert fitted.training_size >= 8

    front = store.latest_front(job.id)
    assert front is not None and front.points
    assert all(p.measured for p in front.points)  # every front point verified

    predictions = store.list_predictions(job.id)
    forecast = {p.candidate_id for p in predictions}
    assert {c.id for c in predicted} <= forecast
    for p in predictions:
        candidate = next(c for c in done if c.id == p.candidate_id)
        if _is_predicted(candidate):
            assert p.measured is None
            assert candidate.metrics[p.metric].value == pytest.approx(p.value)
        else:  # predicted before it was measured
            assert p.measured == pytest.approx(candidate.metrics[p.metric].value)


def test_a_resumed_active_learning_job_ends_as_the_uninterrupted_one(
    tmp_path: Path, nb201_active_spec: Any
) -> None:
    spec = parse_spec(nb201_active_spec(BUDGET, verify_front=False))
    with Store.open(f"sqlite:///{tmp_path / 'whole.db'}") as store:
        whole = Driver(spec, store).run()
        expected = {c.config_hash: _is_predicted(c) for c in store.list_candidates(whole.id)}
    with Store.open(f"sqlite:///{tmp_path / 'cut.db'}") as store:
        asked = iter(range(100))
        cut = Driver(spec, store, should_stop=lambda: next(asked) >= 3).run()
        assert cut.state == JobState.CANCELLED
        driver = Driver(spec, store)
        resumed = driver.resume(cut.id)
        got = {c.config_hash: _is_predicted(c) for c in store.list_candidates(resumed.id)}
    assert resumed.state == JobState.FINISHED
    assert got == expected


def test_bad_active_learning_settings_name_the_field(nb201_active_spec: Any) -> None:
    with pytest.raises(SpecErrors) as raised:
        parse_spec(nb201_active_spec(BUDGET, predictor="svm", min_measured=1))
    fields = {e.field for e in raised.value.errors}
    assert {"active_learning.predictor", "active_learning.min_measured"} <= fields


def test_a_search_that_predicts_everything_says_so_when_it_stops_early(
    store: Store, nb201_active_spec: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # Once the predictors are fitted nothing is worth measuring: five generations of new
    # configs settled by prediction alone end the search, and the log says that, not that
    # the optimizer proposed only configs evaluated before.
    monkeypatch.setattr(
        ActiveLearner, "worth_measuring", lambda self, forecasts, front: [False] * len(forecasts)
    )
    caplog.set_level(logging.WARNING, logger="hwsearch.driver")
    driver = Driver(parse_spec(nb201_active_spec(BUDGET, verify_front=False)), store)
    job = driver.run()
    assert job.state == JobState.FINISHED
    done = store.list_candidates(job.id, status=CandidateStatus.DONE)
    measured = [c for c in done if not _is_predicted(c)]
    assert len(measured) == 16  # the first generation, measured to fit the predictors
    assert 0 < driver.predicted == len(done) - 16
    said = [r.getMessage() for r in caplog.records if r.name == "hwsearch.driver"]
    (why,) = [m for m in said if "exhausted" in m]
    # five generations of 16 suggestions, some of them configs suggested before
    expected = f"{driver.predicted} of the 80 were new configs settled by prediction"
    assert expected in why, why
    assert "proposed only configs evaluated before" not in why
    assert f"exhausted after 16 evaluations of the budget's {BUDGET}" in why


class _Driver(Driver):
    """The driver, saying when it has reached the verification of the front."""

    verifying = False

    def _verify_front(self, *args: Any, **kwargs: Any) -> None:
        self.verifying = True
        super()._verify_front(*args, **kwargs)


def _counting() -> tuple[InProcessExecutor, list[str]]:
    seen: list[str] = []

    def evaluate(task: EvalTask) -> EvalOutcome:
        seen.append(task.config_hash)
        return evaluate_safely(task)

    return InProcessExecutor(evaluate=evaluate), seen


def _state(store: Store, job_id: int, driver: Driver) -> dict[str, Any]:
    fronts = store.list_fronts(job_id)
    return {
        "counts": (driver.predicted, driver._evaluations),
        "candidates": sorted(
            (c.config_hash, c.status, _is_predicted(c)) for c in store.list_candidates(job_id)
        ),
        "fronts": [
            (f.generation, f.evaluations, f.hypervolume, sorted(p.config_hash for p in f.points))
            for f in fronts
        ],
    }


@pytest.mark.parametrize("cut", ["within a later generation", "before the front is verified"])
def test_an_active_learning_job_cut_after_its_predictors_are_fitted_resumes_exactly(
    tmp_path: Path, nb201_active_spec: Any, cut: str
) -> None:
    # Cut within a generation whose candidates were forecast (the pending ones were found
    # worth measuring then: measured on resume, not forecast again), or as the front's
    # verification starts (the replay prunes its pool to each stored front, so that it
    # keeps back for verification what the uninterrupted run kept back).
    spec = parse_spec(nb201_active_spec(BUDGET))
    with Store.open(f"sqlite:///{tmp_path / 'whole.db'}") as store:
        whole = _Driver(spec, store)
        expected = _state(store, whole.run().id, whole)
    with Store.open(f"sqlite:///{tmp_path / 'cut.db'}") as store:
        checks = itertools.count()
        drivers: list[_Driver] = []

        def stop() -> bool:
            if cut == "within a later generation":
                return next(checks) >= 20  # after the first batch forecast
            return drivers[0].verifying

        first, seen_first = _counting()
        cut_driver = _Driver(spec, store, executor=first, should_stop=stop)
        drivers.append(cut_driver)
        job = cut_driver.run()
        assert job.state == JobState.CANCELLED
        if cut == "within a later generation":
            assert store.list_predictions(job.id)  # cut after predictions were made
            assert store.list_candidates(job.id, status=CandidateStatus.PENDING)
        second, seen_second = _counting()
        resumed = _Driver(spec, store, executor=second)
        assert resumed.resume(job.id).state == JobState.FINISHED
        got = _state(store, job.id, resumed)
    assert not set(seen_first) & set(seen_second)  # nothing measured twice
    assert got == expected
