"""Asynchronous driving: every free worker gets a candidate at once, asks and tells are
recorded in order, a resume replays them exactly, and a seed still fixes the search."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hwsearch.db import Store
from hwsearch.records import CandidateStatus, DriverEvent, JobState
from hwsearch.search._pymoo import PymooNSGA2
from hwsearch.search.driver import Driver, resume_job, run_job
from hwsearch.search.front import compute_front
from hwsearch.search.optimizer import Suggestion, register_optimizer
from hwsearch.search.spec import parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, InProcessExecutor, evaluate_safely
from hwsearch.workers.simulated import SimulatedExecutor

WORKERS = 4


def duration(task: EvalTask) -> float:
    """Uneven virtual evaluation times, a function of the config alone (1 to 9 s)."""
    return 1.0 + 8.0 * int(task.config_hash[:6], 16) / 2**24


class RecordingNSGA2(PymooNSGA2):
    """pymoo's NSGA-II (a stateful, generational optimizer), keeping every call made to it."""

    calls: ClassVar[list[list[tuple[Any, ...]]]] = []  # one list per optimizer made

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[Any, ...]] = []
        RecordingNSGA2.calls.append(self.log)

    def ask(self, n: int) -> list[Suggestion]:
        out = super().ask(n)
        self.log.append(("ask", n, [s.params for s in out]))
        return out

    def tell(
        self,
        suggestion_id: int,
        values: Sequence[float] | None,
        violations: Sequence[float] = (),
    ) -> None:
        self.log.append(("tell", suggestion_id, None if values is None else list(values)))
        super().tell(suggestion_id, values, violations)


register_optimizer("test-recording-nsga2", RecordingNSGA2)


@pytest.fixture
def spec(nb201_active_spec: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """NAS-Bench-201 on the Pixel 3 (table lookups: fast, deterministic), driven async."""
    data = nb201_active_spec(40)
    del data["active_learning"]
    data["optimizer"] = {"name": "test-recording-nsga2", "population_size": 8}
    data["search"] = {"driving": "async"}
    return data


def _tells(events: Sequence[DriverEvent]) -> list[int]:
    return [e.value for e in events if e.kind == "tell"]


def test_a_free_worker_gets_its_next_candidate_at_once_and_results_are_told_as_they_finish(
    store: Store, spec: dict[str, Any], tmp_path: Path
) -> None:
    executor = SimulatedExecutor(workers=WORKERS, duration=duration)
    driver = Driver(parse_spec(spec), store, executor=executor)
    job = driver.run()
    assert driver.driving == "async"
    assert job.state == JobState.FINISHED and job.evaluations == 40

    # No worker waits for another: every task after the first WORKERS starts at the
    # instant an earlier one finished, and WORKERS run at once until the budget runs out.
    history = executor.history
    finishes = sorted(finish for _, _, finish in history)
    for k, (_, start, _) in enumerate(history):
        if k < WORKERS:
            assert start == 0.0
        else:
            assert start in finishes[: k - WORKERS + 1], f"task {k} waited for a batch"
    assert len({start for _, start, _ in history}) > len(history) // 2  # truly staggered

    # Told in the order they finished (the events say which suggestion was told when).
    events = store.list_events(job.id)
    assert events[0] == DriverEvent("async", 0)
    by_id = {c.id: c for c in store.list_candidates(job.id)}
    finish_of = {by_id[cid].config_hash: finish for cid, _, finish in history}
    asked = [e for e in events if e.kind == "ask"]
    assert asked[0] == DriverEvent("ask", WORKERS)
    assert all(e.value >= 1 for e in asked)
    (log,) = RecordingNSGA2.calls[-1:]
    suggested = [p for call in log if call[0] == "ask" for p in call[2]]
    order = _tells(events)
    first_tells = list(dict.fromkeys(_hash(driver, suggested[k]) for k in order))
    told_finishes = [finish_of[h] for h in first_tells]
    assert told_finishes == sorted(told_finishes)
    assert sorted(order) == list(range(len(suggested)))  # every suggestion told once

    # Generational driving on the same workers waits for the slowest of each batch.
    spec["search"] = {"driving": "generational"}
    batches = SimulatedExecutor(workers=WORKERS, duration=duration)
    with Store.open(f"sqlite:///{tmp_path / 'generational.db'}") as other:
        run_job(parse_spec(spec), other, executor=batches)
    assert executor.efficiency() > batches.efficiency()
    assert executor.now < batches.now


def _hash(driver: Driver, params: dict[str, Any]) -> str:
    from hwsearch.search.hashing import config_hash

    return config_hash(driver.family.name, driver.family.canonical(driver.space.to_config(params)))


def test_an_interrupted_async_job_resumes_by_replaying_its_asks_and_tells_in_order(
    tmp_path: Path, spec: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'job.db'}"
    evaluated: list[int] = []

    def interrupted_after_17(task: EvalTask) -> EvalOutcome:
        if len(evaluated) == 17:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a group of outcomes
        evaluated.append(task.candidate_id)
        return evaluate_safely(task)

    with Store.open(url) as store:
        executor = SimulatedExecutor(
            workers=WORKERS, duration=duration, evaluate=interrupted_after_17
        )
        with pytest.raises(KeyboardInterrupt):
            run_job(parse_spec(spec), store, executor=executor)
        (job,) = store.list_jobs()
        first_calls = RecordingNSGA2.calls[-1]
        before = store.list_events(job.id)
        done = {c.id: c for c in store.list_candidates(job.id) if c.status == CandidateStatus.DONE}
        assert 0 < len(done) < 40
        assert store.count_candidates(job.id, status=CandidateStatus.PENDING) > 0  # in flight

        again: list[int] = []

        def counted(task: EvalTask) -> EvalOutcome:
            again.append(task.candidate_id)
            return evaluate_safely(task)

        resumed = resume_job(
            job.id,
            store,
            executor=SimulatedExecutor(workers=WORKERS, duration=duration, evaluate=counted),
        )
        assert resumed.state == JobState.FINISHED and resumed.evaluations == 40
        assert not set(again) & set(done), "finished candidates were evaluated again"
        assert len(again) == 40 - len(done)

        # The resumed optimizer was asked and told exactly what the interrupted one was,
        # in the same order, before anything new.
        second_calls = RecordingNSGA2.calls[-1]
        assert second_calls[: len(first_calls)] == first_calls
        after = store.list_events(job.id)
        assert after[: len(before)] == before  # appended to, never rewritten
        assert sorted(_tells(after)) == list(range(len(_tells(after))))  # each told once

        # And the record is complete: replaying it alone reproduces the job's candidates.
        replay = Driver(parse_spec(spec), store)
        replay._optimizer = replay._make_optimizer(job.created_at)
        replay.optimizer.drive_asynchronously()
        stored = {c.config_hash: c for c in store.list_candidates(job.id)}
        replay._stored = stored
        replay.job_id = job.id
        replay._replay_events(after[1:])
        assert {h for _, h, _ in replay._asked} == set(stored)
        assert getattr(replay.optimizer, "log", None) == second_calls
        front = store.latest_front(job.id)
        assert front is not None
        points, _ = compute_front(list(stored.values()), replay.objectives, front.reference_point)
        assert sorted(p.candidate_id for p in points) == sorted(
            p.candidate_id for p in front.points
        )


def test_a_seed_fixes_an_async_search_on_the_simulated_and_the_in_process_executor(
    tmp_path: Path, spec: dict[str, Any]
) -> None:
    def search(name: str, executor: Any) -> tuple[list[Any], list[DriverEvent]]:
        with Store.open(f"sqlite:///{tmp_path / name}.db") as store:
            job = run_job(parse_spec(spec), store, executor=executor)
            configs = [
                (c.config, c.metrics["accuracy"].value) for c in store.list_candidates(job.id)
            ]
            return configs, store.list_events(job.id)

    first = search("sim-1", SimulatedExecutor(workers=WORKERS, duration=duration))
    second = search("sim-2", SimulatedExecutor(workers=WORKERS, duration=duration))
    assert first == second
    local = [search(f"local-{k}", InProcessExecutor()) for k in (1, 2)]
    assert local[0] == local[1]
    # one worker, async: ask one, evaluate it, tell it, ask the next
    assert [e.kind for e in local[0][1][1:5]] == ["ask", "tell", "ask", "tell"]


def test_in_process_with_one_worker_is_generational_unless_asked(
    store: Store, spec: dict[str, Any]
) -> None:
    del spec["search"]
    driver = Driver(parse_spec(spec), store, executor=InProcessExecutor())
    job = driver.run()
    assert driver.driving == "generational"
    assert store.list_events(job.id) == [DriverEvent("generational", 0)]
    many = Driver(parse_spec(spec), store, executor=SimulatedExecutor(workers=2, duration=duration))
    many.run()
    assert many.driving == "async"


def test_async_driving_refuses_active_learning(
    nb201_active_spec: Callable[..., dict[str, Any]],
) -> None:
    from hwsearch.errors import SpecErrors

    data = nb201_active_spec(20)
    data["search"] = {"driving": "async"}
    with pytest.raises(SpecErrors, match=r"search\.driving"):
        parse_spec(data)


def test_pymoo_closes_a_full_generation_under_async_driving_and_carries_what_is_out() -> None:
    from hwsearch.search.objectives import Objective
    from hwsearch.search.space import ChoiceVar, IntVar, SearchSpace

    def make(asynchronous: bool) -> PymooNSGA2:
        space = SearchSpace((IntVar("a", 0, 50), ChoiceVar("b", ("x", "y", "z"))))
        made = PymooNSGA2(
            space=space,
            objectives=[Objective("latency_ms", "minimize"), Objective("params", "minimize")],
            seed=3,
            options={"population_size": 6},
        )
        if asynchronous:
            made.drive_asynchronously()
        return made

    for asynchronous in (False, True):
        optimizer = make(asynchronous)
        out = optimizer.ask(10)  # more workers than the population: 4 more of generation 0
        for s in out[:6]:
            optimizer.tell(s.id, [s.params["a"], 50 - s.params["a"]])
        # generational: waits for all 10; async: the population is full, generation 1 starts
        assert optimizer.algorithm.n_gen == (2 if asynchronous else 1)
        nxt = optimizer.ask(3)
        for s in [*out[6:], *nxt]:  # the 4 carried over are told with generation 1
            optimizer.tell(s.id, [s.params["a"], 50 - s.params["a"]])
        assert optimizer.algorithm.n_gen == (3 if asynchronous else 2)


def test_an_optimizer_that_searches_worse_async_is_driven_generationally_unless_asked(
    store: Store, spec: dict[str, Any]
) -> None:
    from hwsearch.search.optimizer import get_optimizer_class

    assert get_optimizer_class("optuna-nsga2").asynchronous is False
    assert get_optimizer_class("default").asynchronous is True
    del spec["search"]
    spec["optimizer"] = {"name": "optuna-nsga2", "population_size": 8}
    spec["budget"]["evaluations"] = 16
    workers = SimulatedExecutor(workers=WORKERS, duration=duration)
    driver = Driver(parse_spec(spec), store, executor=workers)
    job = driver.run()
    assert driver.driving == "generational"
    assert store.list_events(job.id) == [DriverEvent("generational", 0)]
    spec["search"] = {"driving": "async"}  # asked for explicitly, it is still async
    asked = Driver(
        parse_spec(spec), store, executor=SimulatedExecutor(workers=WORKERS, duration=duration)
    )
    job = asked.run()
    assert asked.driving == "async" and job.state == JobState.FINISHED
    assert any(e.kind == "tell" for e in store.list_events(job.id))


class WaitingNSGA2(RecordingNSGA2):
    """Asks only once three workers are free (or nothing runs, or the budget leaves fewer)."""

    def min_free_workers(self, workers: int) -> int:
        return 3


register_optimizer("test-waiting-nsga2", WaitingNSGA2)


def test_async_driving_waits_for_the_optimizers_fewest_free_workers(
    store: Store, spec: dict[str, Any], tmp_path: Path
) -> None:
    from hwsearch.search._strategy import SurrogateStrategy

    rule = SurrogateStrategy.min_free_workers
    assert [rule(None, w) for w in (1, 4, 10, 512)] == [1, 1, 2, 64]  # type: ignore[arg-type]
    spec["optimizer"]["name"] = "test-waiting-nsga2"
    executor = SimulatedExecutor(workers=WORKERS, duration=duration)
    job = Driver(parse_spec(spec), store, executor=executor).run()
    assert job.state == JobState.FINISHED and job.evaluations == 40
    asks = [e.value for e in store.list_events(job.id) if e.kind == "ask"]
    assert asks[0] == WORKERS
    assert all(n >= 3 for n in asks[:-1]), asks  # the last may be what the budget left
    assert sum(asks) >= 40
    # the default rule (one free worker) asks one at a time as workers free up
    spec["optimizer"]["name"] = "test-recording-nsga2"
    with Store.open(f"sqlite:///{tmp_path / 'eager.db'}") as other:
        eager = SimulatedExecutor(workers=WORKERS, duration=duration)
        job = Driver(parse_spec(spec), other, executor=eager).run()
        eager_asks = [e.value for e in other.list_events(job.id) if e.kind == "ask"]
    assert min(eager_asks) < 3 and len(eager_asks) > len(asks)
