"""Evaluation on a Ray cluster: CPU tasks, and one measurement actor per GPU.

Routing. A task whose target is a CUDA device goes to a *measurement actor*: a Ray actor
holding one GPU alone (``num_gpus=1``) that evaluates one candidate at a time, so nothing
else runs on its GPU while it times. Every other task (the ``cpu`` target, table targets)
is a Ray task of ``cpus_per_task`` CPUs from the cluster's pool.

One unit per candidate. Training, compression, materialisation and measurement of a
candidate run in one task (or one actor call), not as a training task followed by a
measurement call. The model that is measured is the one materialised in that process for
the target's kernels (quantized modules, physically pruned layers): moving it between
processes would mean pickling converted kernels, which is not reliable across torch
builds, and the training this project does (small models on digits) costs less than the
measurement. On a GPU target the actor's GPU therefore idles while the actor trains; the
answer on a large cluster is more GPU actors (``gpu_actors``), not a split.

Tasks are started as workers free up: at most one task per free CPU slot (or per idle
actor) is in flight, so a task's timeout counts from when it starts rather than while it
queues. ``run`` takes a batch; ``submit`` and ``wait`` stream (the asynchronous driver),
``wait`` returning every outcome that finished together. A task that times out is
cancelled (its worker process is killed); a task whose worker or actor dies (killed, out
of memory, node lost) is retried up to ``max_retries`` times. A candidate still failing
after that comes back as a failed outcome naming the last error, and the driver stores it
as failed. An exception raised by the evaluation itself is deterministic for the config,
so it is not retried.

Placement. Each candidate task asks for ``cpus_per_task`` CPUs, the custom ``resources``
given (``{"hwsearch_worker": 1}`` keeps candidates on the nodes that offer it) and a share
``gpus_per_task`` of a GPU (0.25: four tasks on one GPU); a measurement actor holds one
whole GPU and ``actor_resources``. ``gpu_resource`` names the resource that counts GPUs:
``GPU`` (Ray's ``num_gpus``) by default, or a custom resource standing in for them. The
slots of :attr:`RayExecutor.max_workers` follow from the cluster's totals of everything a
task asks for.

Provenance and cost. Every outcome says where it ran (host, Ray node id, pid) and the CPU
seconds its process spent on it; the same record goes into each metric's details as
``worker``. The executor sums the CPU seconds by host (:meth:`worker_cpu_seconds`) for the
job's footprint, since the driver's own counters do not see other processes.

Only the driver writes to the database: workers return outcomes, never touch it.
"""

from __future__ import annotations

import collections
import logging
import os
import resource
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from hwsearch.errors import HwsearchError, SpecError
from hwsearch.hardware.targets import parse_target_name, target_kind
from hwsearch.workers.base import Executor
from hwsearch.workers.evaluation import EvalOutcome, EvalTask, evaluate_safely

log = logging.getLogger(__name__)

__all__ = ["MeasurementActor", "RayExecutor", "evaluate_here", "needs_gpu"]

Evaluate = Callable[[EvalTask], EvalOutcome]


def needs_gpu(task: EvalTask) -> bool:
    """Whether ``task``'s target kind asks for a GPU (so the task goes to a GPU actor)."""
    if task.measurement.get("type") == "table":  # looked up, not measured
        return False
    try:
        target = parse_target_name(task.target)
    except SpecError:
        return False  # not a device: the evaluation reports it
    return target_kind(target).resources(target).get("num_gpus", 0.0) > 0


def _cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def evaluate_here(evaluate: Evaluate, task: EvalTask) -> EvalOutcome:
    """``evaluate(task)`` with where it ran and its CPU seconds: on the outcome as
    ``worker``, and in every metric's details."""
    cpu0 = _cpu_seconds()
    outcome = evaluate(task)
    worker = {
        "executor": "ray",
        "host": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "cpu_seconds": max(0.0, _cpu_seconds() - cpu0),
    }
    metrics = [replace(m, details={**m.details, "worker": worker}) for m in outcome.metrics]
    return replace(outcome, metrics=metrics, worker=worker)


def _run_one(evaluate: Evaluate, task: EvalTask) -> EvalOutcome:
    return evaluate_here(evaluate, task)


class MeasurementActor:
    """Holds one GPU and evaluates the candidates sent to it, one at a time."""

    def __init__(self, evaluate: Evaluate) -> None:
        self._evaluate = evaluate

    def pid(self) -> int:
        return os.getpid()

    def evaluate(self, task: EvalTask) -> EvalOutcome:
        return evaluate_here(self._evaluate, task)


@dataclass
class _Flight:
    task: EvalTask
    started: float
    actor: Any | None  # the measurement actor running it; None for a CPU task


class RayExecutor(Executor):
    """Evaluates tasks on a Ray cluster; see the module docstring for the design.

    ``address`` is passed to :func:`ray.init` (``None``: the cluster of ``RAY_ADDRESS``, as
    inside ``ray job submit``, else a new local one). If Ray is already initialised in this
    process that connection is used and left open on :meth:`close`. ``resources``,
    ``gpus_per_task``, ``gpu_resource`` and ``actor_resources`` place the work (module
    docstring); a spec sets them in its ``executor`` section.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_task: float = 1.0,
        resources: Mapping[str, float] | None = None,
        gpus_per_task: float = 0.0,
        gpu_resource: str = "GPU",
        gpu_actors: int | None = None,
        actor_resources: Mapping[str, float] | None = None,
        timeout_s: float | None = 3600.0,
        max_retries: int = 2,
        evaluate: Evaluate = evaluate_safely,
        init_options: Mapping[str, Any] | None = None,
        poll_s: float = 0.5,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        if cpus_per_task <= 0:
            raise ValueError(f"cpus_per_task must be positive, got {cpus_per_task!r}")
        if gpus_per_task < 0:
            raise ValueError(f"gpus_per_task must be at least 0, got {gpus_per_task!r}")
        if not gpu_resource:
            raise ValueError("gpu_resource must name a resource")
        for name, amount in {**(resources or {}), **(actor_resources or {})}.items():
            if not amount > 0:
                raise ValueError(f"resource {name!r} needs a positive amount, got {amount!r}")
        if gpu_actors is not None and gpu_actors < 1:
            raise ValueError(f"gpu_actors must be at least 1, got {gpu_actors!r}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries!r}")
        if poll_s <= 0:
            raise ValueError(f"poll_s must be positive, got {poll_s!r}")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                ray.init(address=address, **dict(init_options or {}))
            except ConnectionError as exc:
                where = address or os.environ.get("RAY_ADDRESS") or "(local)"
                auth = (
                    ""
                    if os.environ.get("RAY_AUTH_MODE") == "token"
                    else " (a cluster that requires a token also needs RAY_AUTH_MODE=token in "
                    "this process's environment, and the token in ~/.ray/auth_token or "
                    "RAY_AUTH_TOKEN)"
                )
                raise HwsearchError(
                    f"cannot connect to the Ray cluster at {where}: {exc}{auth}"
                ) from exc
        self._workers = workers
        self._cpus = cpus_per_task
        self._gpu_actors = gpu_actors
        self._timeout = timeout_s
        self._max_retries = max_retries
        self._evaluate = evaluate
        self._poll = poll_s
        self._gpu_resource = gpu_resource
        #: what each candidate task asks for, in Ray's names (CPU, GPU and custom ones)
        self.task_demand: dict[str, float] = {"CPU": cpus_per_task, **dict(resources or {})}
        if gpus_per_task > 0:
            self.task_demand[gpu_resource] = gpus_per_task
        #: what each measurement actor holds: one whole GPU, alone
        self.actor_demand: dict[str, float] = {gpu_resource: 1.0, **dict(actor_resources or {})}
        self._remote = ray.remote(max_retries=0, **_ray_request(self.task_demand))(_run_one)
        # One call at a time (max_concurrency 1): a candidate is timed alone on the GPU.
        self._actor_class: Any = ray.remote(
            max_restarts=0, max_task_retries=0, **_ray_request(self.actor_demand, cpus=0.0)
        )(MeasurementActor).options(max_concurrency=1)
        self._actors: list[Any] = []
        self._cpu_by_host: dict[str, float] = collections.defaultdict(float)
        self._closed = False
        # the streaming state (submit, wait): queued, running, finished and not yet returned
        self._cpu_queue: collections.deque[EvalTask] = collections.deque()
        self._gpu_queue: collections.deque[EvalTask] = collections.deque()
        self._flight: dict[Any, _Flight] = {}
        self._ready: list[EvalOutcome] = []
        self._attempts: collections.Counter[int] = collections.Counter()
        #: infrastructure failures retried so far (worker deaths, timeouts), for reports
        self.retries = 0
        self._warn_if_nothing_fits()

    def _warn_if_nothing_fits(self) -> None:
        """Say so where the cluster's nodes together offer less than a candidate task asks
        for: its tasks wait, with no progress, until a node that has it joins (an
        autoscaler may add one, so this is a warning, not an error). Totals only: a task
        whose resources no single node holds together is not caught here."""
        totals = ray.cluster_resources()
        short = {n: a for n, a in self.task_demand.items() if float(totals.get(n, 0.0)) < a}
        if short:
            has = ", ".join(f"{n}: {float(totals.get(n, 0.0)):g}" for n in sorted(short))
            log.warning(
                "the Ray cluster offers less than a candidate task asks for (%s; the cluster "
                "has %s in all): its tasks wait until a node that has it joins; check the "
                "executor's resources, num_cpus and num_gpus",
                ", ".join(f"{n}: {a:g}" for n, a in sorted(short.items())),
                has,
            )

    # -- sizes ------------------------------------------------------------------------------

    @property
    def max_workers(self) -> int:
        """Task slots: ``workers`` if given, else as many tasks as the cluster's totals of
        what a task asks for (CPUs, custom resources, GPU shares) hold now."""
        if self._workers is not None:
            return self._workers
        totals = ray.cluster_resources()
        fits = min(
            float(totals.get(name, 0.0)) // amount for name, amount in self.task_demand.items()
        )
        return max(1, int(fits))

    @property
    def cores_per_worker(self) -> int:
        """The CPUs Ray reserves for each task (``threads: auto`` uses that many)."""
        return max(1, int(self._cpus))

    def _gpu_actor_count(self) -> int:
        if self._gpu_actors is not None:
            return self._gpu_actors
        return int(ray.cluster_resources().get(self._gpu_resource, 0.0))

    def worker_cpu_seconds(self) -> dict[str, float]:
        return dict(self._cpu_by_host)

    @property
    def actors(self) -> list[Any]:
        """The measurement actors started so far (handles, for inspection)."""
        return list(self._actors)

    # -- running ----------------------------------------------------------------------------

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        for task in tasks:
            self.submit(task)
        wanted = {task.candidate_id for task in tasks}
        while wanted:
            for outcome in self.wait():
                wanted.discard(outcome.candidate_id)
                yield outcome

    def submit(self, task: EvalTask) -> None:
        """Queue ``task``; it starts when a CPU slot (or a GPU actor) is free, at the next
        :meth:`wait`, so that its timeout counts from its start."""
        if self._closed:
            raise RuntimeError("this RayExecutor is closed")
        if not needs_gpu(task):
            self._cpu_queue.append(task)
        elif self._ensure_actors():
            self._gpu_queue.append(task)
        else:
            self._ready.append(
                EvalOutcome(
                    task.candidate_id,
                    error=f"no GPU in the Ray cluster to measure on target {task.target!r}",
                )
            )

    @property
    def in_flight(self) -> int:
        return len(self._cpu_queue) + len(self._gpu_queue) + len(self._flight) + len(self._ready)

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        """Start what the free workers can take, then return every outcome ready: at least
        one, unless nothing is submitted or ``timeout`` seconds pass first."""
        if self._closed:
            raise RuntimeError("this RayExecutor is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready and (self._cpu_queue or self._gpu_queue or self._flight):
            self._pump()
            if deadline is not None and time.monotonic() >= deadline:
                break
        ready, self._ready = self._ready, []
        return ready

    def cancel(self) -> None:
        for ref, flight in self._flight.items():
            if flight.actor is None:
                ray.cancel(ref, force=True)
            else:
                self._replace_actor(flight.actor)
        self._flight.clear()
        self._cpu_queue.clear()
        self._gpu_queue.clear()
        self._ready.clear()

    def _pump(self) -> None:
        """Start queued tasks on free workers, wait up to ``poll_s`` for one to finish, and
        collect everything finished (retried or failed where the worker was lost)."""
        flight = self._flight
        cpu_queue, gpu_queue, attempts = self._cpu_queue, self._gpu_queue, self._attempts
        busy = {id(f.actor) for f in flight.values() if f.actor is not None}
        while gpu_queue:
            idle = next((a for a in self._actors if id(a) not in busy), None)
            if idle is None:
                break
            task = gpu_queue.popleft()
            flight[idle.evaluate.remote(task)] = _Flight(task, time.monotonic(), idle)
            busy.add(id(idle))
        slots = self.max_workers
        while cpu_queue and sum(f.actor is None for f in flight.values()) < slots:
            task = cpu_queue.popleft()
            ref = self._remote.remote(self._evaluate, task)
            flight[ref] = _Flight(task, time.monotonic(), None)
        if not flight:
            return
        ready, _ = ray.wait(list(flight), num_returns=1, timeout=self._poll)
        if ready:  # and whatever else finished meanwhile: outcomes that arrive together
            ready, _ = ray.wait(list(flight), num_returns=len(flight), timeout=0)
        for ref in ready:
            done = flight.pop(ref)
            try:
                outcome: EvalOutcome | None = ray.get(ref)
                self._count(outcome)
            except RayTaskError as exc:  # the evaluation itself raised: not retried
                outcome = EvalOutcome(done.task.candidate_id, error=_one_line(exc))
            except RayError as exc:  # the worker or actor died, or the task was lost
                outcome = self._retry(done, exc, attempts, cpu_queue, gpu_queue)
            if outcome is not None:
                self._ready.append(outcome)
        if self._timeout is not None:
            now = time.monotonic()
            for ref, late in list(flight.items()):
                if now - late.started <= self._timeout:
                    continue
                del flight[ref]
                if late.actor is None:
                    ray.cancel(ref, force=True)
                reason = TimeoutError(f"evaluation timed out after {self._timeout:g} s")
                outcome = self._retry(late, reason, attempts, cpu_queue, gpu_queue)
                if outcome is not None:
                    self._ready.append(outcome)

    def _count(self, outcome: EvalOutcome | None) -> None:
        worker = outcome.worker if outcome is not None else None
        if worker:
            self._cpu_by_host[str(worker.get("host", ""))] += float(worker["cpu_seconds"])

    def _retry(
        self,
        flight: _Flight,
        error: BaseException,
        attempts: collections.Counter[int],
        cpu_queue: collections.deque[EvalTask],
        gpu_queue: collections.deque[EvalTask],
    ) -> EvalOutcome | None:
        """Queue the task again, or give it up as a failed outcome after ``max_retries``."""
        if flight.actor is not None:
            self._replace_actor(flight.actor)
        task = flight.task
        attempts[task.candidate_id] += 1
        tries = attempts[task.candidate_id]
        if tries > self._max_retries:
            return EvalOutcome(
                task.candidate_id,
                error=f"failed {tries} time(s) on the Ray cluster; last: {_one_line(error)}",
            )
        self.retries += 1
        (gpu_queue if flight.actor is not None else cpu_queue).append(task)
        return None

    def _ensure_actors(self) -> bool:
        want = self._gpu_actor_count()
        while len(self._actors) < want:
            self._actors.append(self._actor_class.remote(self._evaluate))
        return bool(self._actors)

    def _replace_actor(self, actor: Any) -> None:
        """Kill ``actor`` (dead already, or stuck past its timeout) and start a fresh one."""
        ray.kill(actor, no_restart=True)
        index = next(i for i, a in enumerate(self._actors) if a is actor)
        self._actors[index] = self._actor_class.remote(self._evaluate)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:  # tasks left running would hold a remote cluster's CPUs until their timeout
            self.cancel()
        except Exception as error:  # the cluster may be gone already
            log.warning("cancelling the Ray tasks still in flight failed: %s", error)
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()


def _ray_request(demand: Mapping[str, float], *, cpus: float | None = None) -> dict[str, Any]:
    """``demand`` as :func:`ray.remote` options: ``num_cpus``, ``num_gpus`` and the rest
    as ``resources`` (``cpus`` overrides the CPUs asked for, 0 for actors)."""
    rest = {k: v for k, v in demand.items() if k not in ("CPU", "GPU")}
    options: dict[str, Any] = {"num_cpus": demand.get("CPU", 0.0) if cpus is None else cpus}
    if "GPU" in demand:
        options["num_gpus"] = demand["GPU"]
    if rest:
        options["resources"] = rest
    return options


def _one_line(error: BaseException) -> str:
    """The first line of an error's message, with its type."""
    cause = error.cause if isinstance(error, RayTaskError) else None
    shown = cause if isinstance(cause, BaseException) else error
    text = str(shown).strip().splitlines()
    return f"{type(shown).__name__}: {text[0] if text else ''}".rstrip(": ")
