"""The Ray executor on a real local Ray instance: routing, retries, timeouts, worker deaths.

One Ray instance (2 CPUs, one declared GPU so that the GPU actor path is scheduled as on a
cluster, and one ``fake_gpu``, a custom resource standing in for a GPU in the placement
tests) serves the whole module. The evaluation wrappers below are shipped to the
workers by value; they add a pid file, a sleep or a kill around the real evaluation.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from hwsearch.db import Store  # noqa: E402
from hwsearch.errors import SpecError  # noqa: E402
from hwsearch.models import get_family  # noqa: E402
from hwsearch.records import CandidateStatus, JobState, MetricValue, Provenance  # noqa: E402
from hwsearch.search.driver import run_job  # noqa: E402
from hwsearch.search.jobs import Job  # noqa: E402
from hwsearch.search.spec import parse_spec  # noqa: E402
from hwsearch.workers import EvalOutcome, EvalTask, evaluate_safely, make_executor  # noqa: E402
from hwsearch.workers.ray_executor import RayExecutor  # noqa: E402

FAST_EVALUATION = {"epochs": 1, "finetune_epochs": 0, "batch_size": 64, "learning_rate": 0.05}
FAST_MEASUREMENT = {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "max_seconds": 2.0}


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module, on 127.0.0.1, stopped afterwards."""
    if ray.is_initialized():
        ray.shutdown()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        address="local",  # a new instance, never a cluster started on this node
        num_cpus=2,
        num_gpus=1,
        resources={"fake_gpu": 1},
        include_dashboard=False,
        object_store_memory=96 * 1024**2,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _task(candidate_id: int, width: int, target: str = "cpu") -> EvalTask:
    family = get_family("mlp")
    return EvalTask(
        candidate_id=candidate_id,
        family="mlp",
        config=family.canonical({"depth": 1, "width": width}),
        config_hash=f"hash-{candidate_id}",
        target=target,
        seed=0,
        evaluation=FAST_EVALUATION,
        measurement=FAST_MEASUREMENT,
    )


# -- evaluations run on the workers ------------------------------------------------------------


class SlowEvaluation:
    """The real evaluation, after writing this worker's pid to ``folder`` and sleeping."""

    def __init__(self, folder: Path, sleep_s: float) -> None:
        self.folder = folder
        self.sleep_s = sleep_s

    def __call__(self, task: EvalTask) -> EvalOutcome:
        (self.folder / f"{task.candidate_id}-{os.getpid()}.pid").write_text(str(os.getpid()))
        time.sleep(self.sleep_s)
        return evaluate_safely(task)


class Recorded:
    """Records where and when a task ran, as metrics; no model is built."""

    def __init__(self, sleep_s: float, folder: Path | None = None) -> None:
        self.sleep_s = sleep_s
        self.folder = folder

    def __call__(self, task: EvalTask) -> EvalOutcome:
        if self.folder is not None:
            (self.folder / f"{task.candidate_id}-{os.getpid()}.pid").write_text(str(os.getpid()))
        start = time.time()
        time.sleep(self.sleep_s)
        gpus = ray.get_gpu_ids()
        values = {
            "pid": os.getpid(),
            "start": start,
            "end": time.time(),
            "gpu": float(gpus[0]) if gpus else -1.0,
        }
        metrics = [
            MetricValue(k, float(v), Provenance.MEASURED, task.target) for k, v in values.items()
        ]
        return EvalOutcome(task.candidate_id, metrics)


class Gathered:
    """Records when a task ran, after waiting (up to ``wait_s``) until ``count`` tasks have
    started: it finishes early only if that many can run at once."""

    def __init__(self, folder: Path, count: int, wait_s: float) -> None:
        self.folder, self.count, self.wait_s = folder, count, wait_s

    def __call__(self, task: EvalTask) -> EvalOutcome:
        start = time.time()
        (self.folder / f"{task.candidate_id}.started").write_text("")
        deadline = time.monotonic() + self.wait_s
        while len(list(self.folder.glob("*.started"))) < self.count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        together = len(list(self.folder.glob("*.started"))) >= self.count
        values = {"start": start, "end": time.time(), "together": float(together)}
        metrics = [
            MetricValue(k, float(v), Provenance.MEASURED, task.target) for k, v in values.items()
        ]
        return EvalOutcome(task.candidate_id, metrics)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of ``(start, end)`` spans that overlap."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _exit_for(candidate_ids: set[int]) -> Any:
    """An evaluation whose worker process dies (exit without a reply) for these candidates."""

    def evaluate(task: EvalTask) -> EvalOutcome:
        if task.candidate_id in candidate_ids:
            os._exit(17)
        return evaluate_safely(task)

    return evaluate


def _kill_first_worker(folder: Path, killed: list[int], timeout_s: float = 60.0) -> None:
    """Kill (SIGKILL) the first worker process that writes a pid file into ``folder``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = sorted(folder.glob("*.pid"))
        if found:
            pid = int(found[0].read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


# -- tests ---------------------------------------------------------------------------------


def test_ray_tasks_evaluate_real_candidates_in_worker_processes() -> None:
    with RayExecutor() as executor:
        assert executor.max_workers == 2  # every CPU of the instance
        outcomes = sorted(executor.run([_task(1, 8), _task(2, 32)]), key=lambda o: o.candidate_id)
    assert [o.candidate_id for o in outcomes] == [1, 2]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    params = [o.values()["params"] for o in outcomes]
    assert params[0] < params[1]
    assert ray.is_initialized()  # a connection the executor did not open stays open
    node = ray.get_runtime_context().get_node_id()
    for outcome in outcomes:  # where it ran, on the outcome and on every metric
        worker = outcome.worker or {}
        assert worker["node_id"] == node and worker["pid"] != os.getpid()
        assert worker["host"] and worker["cpu_seconds"] > 0
        assert all(m.details["worker"] == worker for m in outcome.metrics)


def test_make_executor_registers_ray_and_address_is_for_ray_only() -> None:
    with make_executor("ray", workers=1) as executor:
        assert isinstance(executor, RayExecutor)
        assert executor.max_workers == 1
    with pytest.raises(SpecError, match="address"):
        make_executor("pool", address="auto")


def test_bad_settings_are_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        RayExecutor(timeout_s=0)


def test_gpu_tasks_run_one_at_a_time_on_an_actor_holding_the_gpu() -> None:
    tasks = [replace(_task(i, 8), target="cuda:0") for i in range(1, 4)] + [_task(9, 8)]
    with RayExecutor(evaluate=Recorded(0.3)) as executor:
        outcomes = {o.candidate_id: o.values() for o in executor.run(tasks)}
        assert len(executor.actors) == 1  # one GPU declared: one measurement actor
    gpu = sorted((outcomes[i] for i in (1, 2, 3)), key=lambda v: v["start"])
    assert {v["gpu"] for v in gpu} == {0.0}
    assert len({v["pid"] for v in gpu}) == 1
    for earlier, later in itertools.pairwise(gpu):
        assert later["start"] >= earlier["end"]  # never two candidates on the GPU at once
    assert outcomes[9]["gpu"] == -1.0  # the CPU task holds no GPU
    assert outcomes[9]["pid"] != gpu[0]["pid"]


def test_gpu_shares_of_a_custom_resource_limit_how_many_tasks_run_at_once(
    tmp_path: Path,
) -> None:
    tasks = [_task(i, 8) for i in range(1, 5)]
    # Half of the one fake GPU each: never more than two at once, even with four slots.
    half = RayExecutor(
        evaluate=Recorded(0.5),
        workers=4,
        cpus_per_task=0.5,
        gpus_per_task=0.5,
        gpu_resource="fake_gpu",
    )
    with half:
        assert half.task_demand == {"CPU": 0.5, "fake_gpu": 0.5}
        spans = [(o.values()["start"], o.values()["end"]) for o in half.run(tasks)]
    assert len(spans) == 4
    assert _most_at_once(spans) <= 2
    # A quarter each: the cluster's totals give four slots, and all four run together.
    quarter = RayExecutor(
        evaluate=Gathered(tmp_path, count=4, wait_s=60.0),
        cpus_per_task=0.5,
        gpus_per_task=0.25,
        gpu_resource="fake_gpu",
    )
    with quarter:
        assert quarter.max_workers == 4
        outcomes = list(quarter.run(tasks))
    assert [o.values()["together"] for o in outcomes] == [1.0] * 4


def test_a_resource_that_no_node_offers_is_warned_of_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its tasks would wait with no progress and no word (Ray's autoscaler logs one line)."""
    with caplog.at_level("WARNING", logger="hwsearch.workers.ray_executor"):
        with RayExecutor(evaluate=Recorded(0.0), resources={"hwsearch_worker": 1}):
            pass
        with RayExecutor(evaluate=Recorded(0.0), resources={"fake_gpu": 1}):
            pass  # offered: no warning
    warned = [r.getMessage() for r in caplog.records if "cluster offers less" in r.getMessage()]
    assert len(warned) == 1
    assert "hwsearch_worker: 1; the cluster has hwsearch_worker: 0 in all" in warned[0]


def test_measurement_actors_hold_a_whole_custom_gpu_resource_alone() -> None:
    tasks = [replace(_task(i, 8), target="cuda:0") for i in range(1, 4)]
    with RayExecutor(evaluate=Recorded(0.3), gpu_resource="fake_gpu") as executor:
        assert executor.actor_demand == {"fake_gpu": 1.0}
        outcomes = [o.values() for o in executor.run(tasks)]
        assert len(executor.actors) == 1  # one actor per fake GPU of the instance
        deadline = time.monotonic() + 20  # Ray's view of free resources lags a little
        free = ray.available_resources()
        while (free.get("fake_gpu", 0.0), free.get("GPU")) != (0.0, 1.0):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
            free = ray.available_resources()
        assert free.get("fake_gpu", 0.0) == 0.0  # held whole while the actor lives
        assert free.get("GPU") == 1.0  # Ray's own GPU is not asked for
    spans = [(v["start"], v["end"]) for v in outcomes]
    assert _most_at_once(spans) == 1  # one candidate at a time on the GPU
    assert {v["gpu"] for v in outcomes} == {-1.0}
    assert len({v["pid"] for v in outcomes}) == 1


def test_a_killed_measurement_actor_is_replaced_and_its_candidate_retried(tmp_path: Path) -> None:
    tasks = [replace(_task(i, 8), target="cuda") for i in range(1, 4)]
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_worker, args=(tmp_path, killed))
    killer.start()
    with RayExecutor(evaluate=Recorded(1.0, tmp_path), max_retries=2) as executor:
        outcomes = {o.candidate_id: o for o in executor.run(tasks)}
        retries = executor.retries
    killer.join()
    assert len(killed) == 1
    assert sorted(outcomes) == [1, 2, 3]
    assert all(o.ok for o in outcomes.values()), [o.error for o in outcomes.values()]
    assert retries == 1
    assert killed[0] not in {o.values()["pid"] for o in outcomes.values()}


def test_a_task_past_its_timeout_is_cancelled_and_failed_with_the_reason() -> None:
    with RayExecutor(evaluate=Recorded(30.0), timeout_s=1.0, max_retries=0, poll_s=0.1) as ex:
        started = time.monotonic()
        outcomes = list(ex.run([_task(1, 8)]))
    assert time.monotonic() - started < 20
    assert len(outcomes) == 1
    assert not outcomes[0].ok
    assert "timed out after 1 s" in (outcomes[0].error or "")


def test_driver_on_ray_stores_every_candidate_a_front_and_the_workers_footprint(
    db_url: str, tiny_spec: dict[str, Any]
) -> None:
    with Store.open(db_url) as store, RayExecutor() as executor:
        run = Job(parse_spec(tiny_spec), store, executor=executor)
        job = run.run()
        candidates = store.list_candidates(job.id)
        front = store.latest_front(job.id)
        stored = store.get_job_footprint(job.id) or {}
    assert job.state == JobState.FINISHED
    assert job.evaluations == 6
    assert all(c.status == CandidateStatus.DONE for c in candidates)
    assert front is not None and front.points
    # Ray's workers are not the driver's children: the CPU seconds each task reported are
    # the footprint's workers part, on top of the driver's own
    reported = sum(c.metrics["latency_ms"].details["worker"]["cpu_seconds"] for c in candidates)
    [part] = [p for p in stored["parts"] if p["device"] == "workers"]
    assert reported > 0 and part["cpu_seconds"] == pytest.approx(reported)
    assert part["energy_j"] > 0
    driver = [p for p in stored["parts"] if p["device"] != "workers"]
    assert stored["energy_j"] == pytest.approx(
        sum(p["energy_j"] for p in driver) + part["energy_j"]
    )
    assert run.footprint is not None and run.footprint["cpu_seconds"] > reported


def test_worker_killed_mid_job_costs_a_retry_and_loses_no_candidate(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_worker, args=(tmp_path, killed))
    killer.start()
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    evaluate = SlowEvaluation(tmp_path, sleep_s=1.0)
    with Store.open(url) as store, RayExecutor(evaluate=evaluate, max_retries=2) as executor:
        job = run_job(parse_spec(tiny_spec), store, executor=executor)
        candidates = store.list_candidates(job.id)
        retries = executor.retries
    killer.join()
    assert len(killed) == 1
    assert retries == 1
    assert job.state == JobState.FINISHED
    assert len(candidates) == 6
    assert all(c.status == CandidateStatus.DONE for c in candidates), [c.error for c in candidates]
    assert all("latency_ms" in c.metrics for c in candidates)


def test_a_candidate_that_keeps_killing_its_worker_is_stored_failed_and_the_job_goes_on(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    with Store.open(url) as store:
        # The first candidate the driver adds gets the lowest id in this fresh database.
        executor = RayExecutor(evaluate=_exit_for({1}), max_retries=1)
        with executor:
            job = run_job(parse_spec(tiny_spec), store, executor=executor)
        candidates = {c.id: c for c in store.list_candidates(job.id)}
    assert job.state == JobState.FINISHED
    assert candidates[1].status == CandidateStatus.FAILED
    assert "failed 2 time(s) on the Ray cluster" in (candidates[1].error or "")
    others = [c for i, c in candidates.items() if i != 1]
    assert len(others) == 5
    assert all(c.status == CandidateStatus.DONE for c in others)


def test_without_ray_installed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.delitem(sys.modules, "hwsearch.workers.ray_executor")
    with pytest.raises(ImportError, match=r"pip install 'ray\[default\]"):
        make_executor("ray")
