"""Executors run real evaluations and turn failures into outcomes, never into crashes."""

from __future__ import annotations

from typing import Any

import pytest

from hwsearch.errors import UnknownNameError
from hwsearch.models import get_family
from hwsearch.records import Provenance
from hwsearch.workers import EvalTask, InProcessExecutor, ProcessPoolExecutor, make_executor

FAST_EVALUATION = {"epochs": 1, "finetune_epochs": 0, "batch_size": 64, "learning_rate": 0.05}
FAST_MEASUREMENT = {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "max_seconds": 2.0}


def _task(candidate_id: int, config: dict[str, Any]) -> EvalTask:
    family = get_family("mlp")
    return EvalTask(
        candidate_id=candidate_id,
        family="mlp",
        config=family.canonical(config),
        config_hash=f"hash-{candidate_id}",
        target="cpu",
        seed=0,
        evaluation=FAST_EVALUATION,
        measurement=FAST_MEASUREMENT,
    )


def test_in_process_evaluation_reports_every_metric_with_provenance() -> None:
    outcome = next(InProcessExecutor().run([_task(1, {"depth": 1, "width": 32})]))
    assert outcome.ok, outcome.error
    metrics = {m.name: m for m in outcome.metrics}
    assert 0.5 < metrics["accuracy"].value <= 1.0
    assert metrics["latency_ms"].provenance == Provenance.MEASURED
    assert metrics["latency_ms"].value > 0
    timing = metrics["latency_ms"].details
    assert 5 <= timing["repeats"] <= 20
    assert timing["environment"]["threads"] == 1
    assert metrics["size_bytes"].provenance == Provenance.ESTIMATED
    # A 64-32-10 MLP: (64*32 + 32*10) multiply-accumulates per input.
    assert metrics["macs"].value == 64 * 32 + 32 * 10
    assert all(m.target == "cpu" for m in outcome.metrics)


def test_a_failing_candidate_becomes_a_failed_outcome() -> None:
    bad = EvalTask(
        candidate_id=7,
        family="mlp",
        config={"depth": 1, "width": 16},
        config_hash="x",
        target="cpu",
        seed=0,
        evaluation={"epochs": -1},
        measurement=FAST_MEASUREMENT,
    )
    good = _task(8, {"depth": 1, "width": 8})
    outcomes = {o.candidate_id: o for o in InProcessExecutor().run([bad, good])}
    assert not outcomes[7].ok
    assert "epochs" in (outcomes[7].error or "")
    assert outcomes[8].ok


def test_process_pool_runs_tasks_in_worker_processes() -> None:
    tasks = [_task(i, {"depth": 1, "width": 8 * i}) for i in (1, 2)]
    with ProcessPoolExecutor(workers=2) as pool:
        outcomes = sorted(pool.run(tasks), key=lambda o: o.candidate_id)
    assert [o.candidate_id for o in outcomes] == [1, 2]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    params = [o.values()["params"] for o in outcomes]
    assert params[0] < params[1]


def test_executors_stream_a_task_per_free_worker_and_return_what_is_ready() -> None:
    local = InProcessExecutor()
    for i in (1, 2, 3):
        local.submit(_task(i, {"depth": 1, "width": 8}))
    assert local.in_flight == 3
    # one worker: the oldest task, one per wait
    assert [[o.candidate_id for o in local.wait()] for _ in range(3)] == [[1], [2], [3]]
    assert local.wait() == [] and local.in_flight == 0

    with ProcessPoolExecutor(workers=2) as pool:
        for i in (1, 2, 3):
            pool.submit(_task(i, {"depth": 1, "width": 8 * i}))
        seen: list[int] = []
        while pool.in_flight:
            ready = pool.wait(timeout=120)
            assert ready, "nothing finished within two minutes"
            seen += [o.candidate_id for o in ready]
            assert all(o.ok for o in ready), [o.error for o in ready]
        assert sorted(seen) == [1, 2, 3]
        assert pool.wait() == []


def test_unknown_executor_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="local, pool"):
        make_executor("gpu-farm")
