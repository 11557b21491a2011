"""The Optuna study of a job lives in the job's database, and a resumed job keeps it whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from hwsearch.db import Store
from hwsearch.db.engine import normalize_url
from hwsearch.models import get_family
from hwsearch.records import CandidateStatus, JobState, MetricValue, Provenance
from hwsearch.search.driver import resume_job, run_job, study_name
from hwsearch.search.hashing import config_hash
from hwsearch.search.space import SearchSpace
from hwsearch.search.spec import parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, InProcessExecutor


class Killed(Exception):
    """The driver dying mid-generation."""


def _spec() -> dict[str, Any]:
    return {
        "name": "optuna-in-db",
        "family": "mlp",
        "target": "cpu",
        "space": {
            "depth": {"type": "int", "low": 1, "high": 3},
            "width": {"type": "int", "low": 8, "high": 256, "per_layer": 3},
            "weight_bits": {"type": "choice", "values": [8, 16, 32]},
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "budget": {"evaluations": 24},
        "optimizer": {"name": "optuna-nsga2", "population_size": 8},
        "seed": 3,
    }


def _cheap(task: EvalTask) -> EvalOutcome:
    """Values from the config hash (deterministic, no model); about one config in five
    fails, so failed trials are covered too."""
    a = int(task.config_hash[:8], 16) / 2**32
    b = int(task.config_hash[8:16], 16) / 2**32
    if int(task.config_hash[16:18], 16) % 5 == 0:
        return EvalOutcome(task.candidate_id, error="RuntimeError: worker lost")
    metrics = [
        MetricValue("accuracy", a, Provenance.ESTIMATED, task.target),
        MetricValue("latency_ms", 0.1 + a * b + b, Provenance.ESTIMATED, task.target),
    ]
    return EvalOutcome(task.candidate_id, metrics)


def _killed_after(evaluations: int) -> InProcessExecutor:
    calls = 0

    def evaluate(task: EvalTask) -> EvalOutcome:
        nonlocal calls
        calls += 1
        if calls > evaluations:
            raise Killed
        return _cheap(task)

    return InProcessExecutor(evaluate=evaluate)


def _study(db_url: str, job_id: int) -> optuna.Study:
    # Optuna is given the URL with the driver named (postgresql+psycopg://), as hwsearch uses.
    url = normalize_url(db_url).render_as_string(hide_password=False)
    return optuna.load_study(storage=url, study_name=study_name(job_id))


def _trials(study: optuna.Study) -> list[tuple[str, dict[str, Any], list[float] | None]]:
    return [(t.state.name, t.params, t.values) for t in study.trials]


def _check_matches_the_job(study: optuna.Study, store: Store, job_id: int) -> None:
    """Every trial is finished; the completed ones are the job's done candidates with
    their objective values, the failed ones its failed candidates."""
    spec = parse_spec(_spec())
    family, space = get_family(spec.family), SearchSpace.from_spec(spec)
    candidates = {c.config_hash: c for c in store.list_candidates(job_id)}
    complete: set[str] = set()
    failed: set[str] = set()
    for trial in study.trials:
        digest = config_hash(family.name, family.canonical(space.to_config(trial.params)))
        candidate = candidates[digest]
        if trial.state == optuna.trial.TrialState.COMPLETE:
            complete.add(digest)
            assert trial.values == [
                candidate.metrics["accuracy"].value,
                candidate.metrics["latency_ms"].value,
            ]
        else:
            assert trial.state == optuna.trial.TrialState.FAIL, trial.state
            failed.add(digest)
    statuses = {h: c.status for h, c in candidates.items()}
    assert complete == {h for h, s in statuses.items() if s == CandidateStatus.DONE}
    assert failed == {h for h, s in statuses.items() if s == CandidateStatus.FAILED}
    assert complete and failed


def test_the_study_of_an_optuna_job_is_in_the_job_s_database(db_url: str) -> None:
    with Store.open(db_url) as store:
        job = run_job(parse_spec(_spec()), store, executor=InProcessExecutor(evaluate=_cheap))
        assert job.state == JobState.FINISHED
        study = _study(db_url, job.id)
        assert study.directions == [
            optuna.study.StudyDirection.MAXIMIZE,
            optuna.study.StudyDirection.MINIMIZE,
        ]
        # optuna-dashboard labels the values by these names
        assert study.metric_names == [o["metric"] for o in _spec()["objectives"]]
        _check_matches_the_job(study, store, job.id)


def test_a_resumed_job_rebuilds_its_study_with_every_trial_once(
    db_url: str, tmp_path: Path
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
        whole = run_job(parse_spec(_spec()), reference, executor=InProcessExecutor(evaluate=_cheap))
        url = str(reference.url)
        expected = _trials(_study(url, whole.id))

    with Store.open(db_url) as store:
        with pytest.raises(Killed):
            run_job(parse_spec(_spec()), store, executor=_killed_after(11))
        (job,) = store.list_jobs()
        interrupted = _study(db_url, job.id)
        states = {t.state for t in interrupted.trials}
        assert optuna.trial.TrialState.RUNNING in states  # asked, never told

        resumed = resume_job(job.id, store, executor=InProcessExecutor(evaluate=_cheap))

        assert resumed.state == JobState.FINISHED
        study = _study(db_url, job.id)
        assert _trials(study) == expected  # the uninterrupted study: no trial twice
        _check_matches_the_job(study, store, job.id)
        storage = normalize_url(db_url).render_as_string(hide_password=False)
        assert optuna.get_all_study_names(storage=storage) == [study_name(job.id)]
