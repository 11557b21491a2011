"""Thread counts per worker: set inside whatever process evaluates, and stored.

Each search runs through the driver with a real executor (in process, a process pool, Ray
tasks); the counts torch reported inside training, evaluation and measurement come back in
the candidates' provenance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from hwsearch.db import Store
from hwsearch.errors import SpecErrors
from hwsearch.hardware.threads import WorkerThreads, cores_per_worker, usable_cores
from hwsearch.records import CandidateRecord
from hwsearch.search.driver import measurement_context, run_job
from hwsearch.search.spec import parse_spec
from hwsearch.workers import (
    EvalOutcome,
    EvalTask,
    Executor,
    InProcessExecutor,
    ProcessPoolExecutor,
    evaluate_safely,
)

FAST = {"epochs": 1, "finetune_epochs": 0, "batch_size": 64, "learning_rate": 0.05}
TIMING = {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "max_seconds": 1.0}


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'threads.db'}")
    try:
        yield store
    finally:
        store.close()


def _search(
    store: Store,
    spec: dict[str, Any],
    threads: dict[str, Any],
    executor: Executor,
    measurement_threads: int = 1,
) -> list[CandidateRecord]:
    data = {
        **spec,
        "budget": {"evaluations": 2},
        "optimizer": {"name": "random"},
        "evaluation": FAST,
        "measurement": {**TIMING, "threads": measurement_threads},
        "threads": threads,
    }
    with executor:
        job = run_job(parse_spec(data), store, executor=executor)
    candidates = store.list_candidates(job.id)
    assert len(candidates) == 2 and all(c.metrics for c in candidates), candidates
    return candidates


def _seen(candidate: CandidateRecord) -> tuple[dict[str, int], int]:
    """The counts torch reported: training and evaluation, and the measurement's."""
    accuracy = candidate.metrics["accuracy"].details
    latency = candidate.metrics["latency_ms"].details
    return accuracy["threads"], latency["environment"]["torch_threads"]


def test_in_process_threads_are_set_per_phase_and_restored(
    sqlite_store: Store, tiny_spec: dict[str, Any]
) -> None:
    before = torch.get_num_threads()
    candidates = _search(
        sqlite_store, tiny_spec, {"training": 2, "evaluation": "auto"}, InProcessExecutor()
    )
    for candidate in candidates:
        phases, measured = _seen(candidate)
        # auto in process: every usable core of this machine for the one worker
        assert phases == {"training": 2, "evaluation": usable_cores()}
        assert measured == 1
    assert torch.get_num_threads() == before


def test_pool_workers_apply_the_counts_in_their_own_processes(
    sqlite_store: Store, tiny_spec: dict[str, Any]
) -> None:
    candidates = _search(
        sqlite_store,
        tiny_spec,
        {"training": "auto", "evaluation": 3},
        ProcessPoolExecutor(workers=2),
        measurement_threads=2,
    )
    for candidate in candidates:
        phases, measured = _seen(candidate)
        # auto: the usable cores shared among the pool's two workers
        assert phases == {"training": cores_per_worker(2), "evaluation": 3}
        assert measured == 2


def test_ray_tasks_apply_the_counts_and_auto_takes_the_cpus_ray_reserves(
    sqlite_store: Store, tiny_spec: dict[str, Any]
) -> None:
    ray = pytest.importorskip("ray")
    from hwsearch.workers.ray_executor import RayExecutor

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",  # a throwaway instance of this test's own
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=96 * 1024**2,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        executor = RayExecutor(cpus_per_task=2.0)
        candidates = _search(
            sqlite_store, tiny_spec, {"training": "auto", "evaluation": 1}, executor
        )
    finally:
        ray.shutdown()
    for candidate in candidates:
        phases, measured = _seen(candidate)
        assert phases == {"training": 2, "evaluation": 1}
        assert measured == 1


def test_without_a_threads_section_each_phase_runs_one_thread(
    sqlite_store: Store, tiny_spec: dict[str, Any]
) -> None:
    data = {**tiny_spec, "budget": {"evaluations": 1}, "evaluation": FAST, "measurement": TIMING}
    job = run_job(parse_spec(data), sqlite_store)
    (candidate,) = sqlite_store.list_candidates(job.id)
    assert _seen(candidate) == ({"training": 1, "evaluation": 1}, 1)


def test_auto_resolves_from_the_executor_or_the_workers() -> None:
    assert WorkerThreads.from_task({}) == WorkerThreads(1, 1)
    assert WorkerThreads.from_task({"training": "auto", "cores_per_worker": 4}).training == 4
    pooled = WorkerThreads.from_task({"evaluation": "auto", "workers": 2, "cores_per_worker": None})
    assert pooled == WorkerThreads(1, cores_per_worker(2))
    assert cores_per_worker(8, cores=2) == 1  # never below one
    with pytest.raises(ValueError, match="integer >= 1 or 'auto'"):
        WorkerThreads.from_task({"training": 0})


@pytest.mark.parametrize(
    ("threads", "field"),
    [
        ({"training": 0}, "threads.training"),
        ({"evaluation": "all"}, "threads.evaluation"),
        ({"training": True}, "threads.training"),
        ({"measurement": 2}, "threads.measurement"),  # the measurement's is measurement.threads
    ],
)
def test_bad_thread_counts_name_their_field(
    tiny_spec: dict[str, Any], threads: dict[str, Any], field: str
) -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_spec({**tiny_spec, "threads": threads})
    assert [e.field for e in caught.value.errors] == [field]


def test_a_threads_section_enters_the_measurement_context(tiny_spec: dict[str, Any]) -> None:
    plain = measurement_context(parse_spec(tiny_spec))
    one = measurement_context(parse_spec({**tiny_spec, "threads": {"training": 1}}))
    two = measurement_context(parse_spec({**tiny_spec, "threads": {"training": 2}}))
    assert plain != two and one != two  # weights trained on other counts are not reused


def test_auto_enters_the_measurement_context_as_the_count_it_resolves_to(
    tiny_spec: dict[str, Any],
) -> None:
    auto = parse_spec({**tiny_spec, "threads": {"training": "auto"}})
    two = parse_spec({**tiny_spec, "threads": {"training": 2}})
    on_two_cores = measurement_context(auto, cores_per_worker=2)
    assert on_two_cores == measurement_context(two, cores_per_worker=2)
    assert on_two_cores != measurement_context(auto, cores_per_worker=4)


def test_the_driver_resolves_auto_with_its_executors_workers(
    sqlite_store: Store, tiny_spec: dict[str, Any]
) -> None:
    from hwsearch.hardware.threads import cores_per_worker
    from hwsearch.search.driver import Driver
    from hwsearch.workers import InProcessExecutor

    spec = parse_spec({**tiny_spec, "threads": {"training": "auto", "evaluation": "auto"}})
    driver = Driver(spec, sqlite_store, executor=InProcessExecutor())
    assert driver.context == measurement_context(spec, cores_per_worker=cores_per_worker(1))


class ThreeCoresPerWorker(Executor):
    """One worker in this process that is given three cores, as Ray gives a task the CPUs it
    reserved: ``auto`` means 3 here, whatever this machine's cores."""

    @property
    def max_workers(self) -> int:
        return 1

    @property
    def cores_per_worker(self) -> int:
        return 3

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        for task in tasks:
            yield evaluate_safely(task)


def test_auto_enters_the_stored_context_as_the_cores_the_executor_gives_a_worker(
    sqlite_store: Store, tiny_spec: dict[str, Any]
) -> None:
    auto = {"training": "auto", "evaluation": "auto"}
    candidates = _search(sqlite_store, tiny_spec, auto, ThreeCoresPerWorker())
    for candidate in candidates:
        assert _seen(candidate)[0] == {"training": 3, "evaluation": 3}
    # stored under the context of an explicit three threads: found by it, and only by it
    data = {
        **tiny_spec,
        "evaluation": FAST,
        "measurement": {**TIMING, "threads": 1},
        "threads": {"training": 3, "evaluation": 3},
    }
    three = measurement_context(parse_spec(data))
    hashes = [c.config_hash for c in candidates]
    found = sqlite_store.find_measurements_many(hashes, "cpu", context=three)
    assert set(found) == set(hashes)
    assert all({"accuracy", "latency_ms"} <= {m.name for m in found[h]} for h in hashes)
    other = measurement_context(parse_spec({**data, "threads": auto}), cores_per_worker=2)
    assert not sqlite_store.find_measurements_many(hashes, "cpu", context=other)


def test_export_rebuilds_with_the_counts_the_candidate_was_trained_with(
    sqlite_store: Store, tmp_path: Path
) -> None:
    from hwsearch.service.export import export_candidate

    # The demo's cnn: its trained weights differ between one and two training threads.
    spec = {
        "name": "threads-export",
        "family": "cnn",
        "target": "cpu",
        "space": {
            "stages": 2,
            "blocks": 2,
            "width": [16, 16, 16],
            "kernel_size": 3,
            "sparsity": {"type": "choice", "values": [0.25]},
            "sparsity_pattern": "unstructured",
            "weight_bits": [8, 8, 8],
            "act_bits": 8,
        },
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "budget": {"evaluations": 1},
        "optimizer": {"name": "random"},
        "evaluation": {"epochs": 4, "finetune_epochs": 1},
        "measurement": TIMING,
        "threads": {"training": 2, "evaluation": 2},
    }
    job = run_job(parse_spec(spec), sqlite_store)
    (candidate,) = sqlite_store.list_candidates(job.id)
    assert _seen(candidate)[0] == {"training": 2, "evaluation": 2}
    result = export_candidate(sqlite_store, job.id, candidate.id, tmp_path / "export")
    assert result.reproduced_accuracy == result.stored_accuracy
