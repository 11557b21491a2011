"""``hwsearch.search(...)``: search your own model from Python.

The arguments become an ordinary job spec (``family: {model: ...}``, ``evaluation: {type:
python, ...}``) that is checked as a YAML spec is (the same :class:`~hwsearch.errors.SpecErrors`,
the same dry build of one config) and run by :class:`hwsearch.search.jobs.Job`, so that
``hwsearch jobs``, ``front``, ``export``, the API and the dashboard see the job. Callables
may be functions of any module (or closures: pool and Ray workers get them by cloudpickle)
or ``"module:attr"`` strings.

::

    front = hwsearch.search(model=build, evaluate=evaluate, input_shape=(8,),
                            space={"width": {"type": "choice", "values": [8, 16]}},
                            objectives=[("accuracy", "maximize"), ("latency_ms", "minimize")],
                            budget={"evaluations": 4}, db="sqlite:///my.db")
    for p in front.points:
        print(p.candidate_id, p.config, p.metrics["latency_ms"].value)
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsearch.errors import SpecError, SpecErrors
from hwsearch.records import FrontRecord, MetricValue

Code = Callable[..., Any] | str
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)")


@dataclass(frozen=True)
class Point:
    """One point of the front: the candidate, its config and every metric stored for it."""

    candidate_id: int
    config: dict[str, Any]
    metrics: dict[str, MetricValue]
    measured: bool


@dataclass(frozen=True)
class Front:
    """The job's last Pareto front."""

    job_id: int
    objectives: list[str]
    directions: list[str]
    hypervolume: float
    evaluations: int
    points: list[Point] = field(default_factory=list)
    record: FrontRecord | None = None


def _objectives(objectives: Sequence[Any]) -> list[dict[str, Any]]:
    if isinstance(objectives, Iterable) and not isinstance(objectives, str | bytes | Mapping):
        objectives = list(objectives)  # a generator or a dict's keys of pairs, too
    if not isinstance(objectives, list):
        raise SpecErrors(
            [
                SpecError(
                    "objectives",
                    "must be a list of (metric, direction) pairs, e.g. [('accuracy', "
                    f"'maximize')], got {objectives!r}",
                )
            ]
        )
    out = []
    for i, objective in enumerate(objectives):
        if isinstance(objective, Mapping):
            out.append(dict(objective))
        elif (
            isinstance(objective, Sequence)
            and not isinstance(objective, str)
            and len(objective) == 2
        ):
            out.append({"metric": objective[0], "direction": objective[1]})
        else:
            raise SpecErrors(
                [
                    SpecError(
                        f"objectives[{i}]",
                        "must be a (metric, direction) pair or {metric: ..., direction: ...}",
                    )
                ]
            )
    return out


def _folder(*callables: Any) -> str | None:
    """The folder of the first callable's source file: where its ``"module:attr"`` name
    resolves again when the stored spec is read (resume, export)."""
    for obj in callables:
        if callable(obj) and not isinstance(obj, str):
            try:
                source = inspect.getsourcefile(obj)
            except TypeError:
                continue
            if source:
                return str(Path(source).resolve().parent)
    return None


def _metrics_of(
    objectives: list[dict[str, Any]], constraints: Sequence[str], metrics: Mapping[str, str] | None
) -> dict[str, str]:
    """Declared metrics: given, else those the objectives and constraints name that hwsearch
    does not measure itself (``accuracy`` is yours; ``latency_ms`` is hwsearch's)."""
    if metrics is not None:
        return dict(metrics)
    from hwsearch.metrics import METRICS, get_metric, tagged

    own = tagged("trained") - {"accuracy"}
    out = {  # a bad direction is reported on the objective alone, not again here
        o["metric"]: o["direction"] if o.get("direction") == "minimize" else "maximize"
        for o in objectives
        if isinstance(o.get("metric"), str) and o["metric"] not in own
    }
    for text in constraints:
        match = _CONSTRAINT.match(text) if isinstance(text, str) else None
        if match is None:
            continue  # reported where the spec is read
        metric, op = match.group(1), match.group(2)
        if metric in own or metric in out:
            continue
        if metric in METRICS:
            out[metric] = "maximize" if get_metric(metric).better == "higher" else "minimize"
        else:
            out[metric] = "maximize" if op.startswith(">") else "minimize"
    return out


def search(
    *,
    model: Code,
    evaluate: Code,
    space: Mapping[str, Any],
    objectives: Sequence[Any],
    budget: Mapping[str, Any] | int,
    input_shape: Sequence[int] | None = None,
    example_input: Code | None = None,
    metrics: Mapping[str, str] | None = None,
    constraints: Sequence[str] = (),
    target: Any = "cpu",
    db: str | None = None,
    seed: int = 0,
    finetune: Code | None = None,
    calibrate: Code | None = None,
    executor: Any = "local",
    workers: int = 2,
    optimizer: Any = None,
    measurement: Mapping[str, Any] | None = None,
    name: str = "python",
) -> Front:
    """Run a search of your own model and return its last front (see the module docs).

    ``metrics`` declares what ``evaluate`` returns (``{name: maximize|minimize}``); by
    default the metrics of the objectives and constraints that hwsearch does not measure
    itself (``accuracy`` is yours, ``latency_ms`` hwsearch's). ``budget`` is the spec's
    mapping (``{"evaluations": N, "wall_time_s": S}``) or a number of evaluations. ``executor`` is
    ``"local"``, ``"pool"`` (``workers`` processes), ``"ray"`` or an
    :class:`~hwsearch.workers.Executor`; ``optimizer`` a name or ``{name: ..., options}``.
    """
    from hwsearch.db import Store
    from hwsearch.search.jobs import Job
    from hwsearch.search.spec import parse_spec
    from hwsearch.workers import Executor, make_executor

    listed = _objectives(objectives)
    family: dict[str, Any] = {"model": model}
    if input_shape is not None:
        family["input_shape"] = list(input_shape)
    if example_input is not None:
        family["example_input"] = example_input
    evaluation: dict[str, Any] = {
        "type": "python",
        "evaluate": evaluate,
        "metrics": _metrics_of(listed, constraints, metrics),
    }
    if finetune is not None:
        evaluation["finetune"] = finetune
    if calibrate is not None:
        evaluation["calibrate"] = calibrate
    folder = _folder(model, evaluate)
    if folder is not None:
        evaluation["folder"] = folder
    data: dict[str, Any] = {
        "name": name,
        "family": family,
        "evaluation": evaluation,
        "space": dict(space) if isinstance(space, Mapping) else space,
        "objectives": listed,
        "constraints": list(constraints),
        "target": target,
        "budget": _budget(budget),
        "seed": seed,
    }
    if optimizer is not None:
        data["optimizer"] = {"name": optimizer} if isinstance(optimizer, str) else dict(optimizer)
    if measurement is not None:
        data["measurement"] = dict(measurement)
    spec = parse_spec(data)
    if executor != "local":  # pool, Ray or an executor object: the callables travel
        _check_shippable(spec.evaluation)
    _warn_unnamed(spec.evaluation)
    runner: Executor = (
        make_executor(executor, workers=workers) if isinstance(executor, str) else executor
    )
    store = Store.open(db)
    try:
        job = Job(spec, store, executor=runner)
        record = job.run()
        return front_of(store, record.id)
    finally:
        runner.close()
        store.close()


def _budget(budget: Any) -> Any:
    """The spec's budget of ``budget``: a whole number is the evaluations; anything else
    but a mapping is left for the spec's check to report on ``budget``."""
    if isinstance(budget, int) and not isinstance(budget, bool):
        return {"evaluations": budget}
    return dict(budget) if isinstance(budget, Mapping) else budget


def _warn_unnamed(settings: Any) -> None:
    """Warn of callables a stored spec cannot name again (lambdas, nested functions): the
    search runs, but resuming or exporting its job will fail on them."""
    import warnings

    from hwsearch.models.custom.callables import unnamed_reason
    from hwsearch.workers.python_kind import CODE_FIELDS, Shipped

    for key, path in CODE_FIELDS.items():
        value = getattr(settings, key, None)
        if isinstance(value, Shipped) and "<" in value.ref:
            warnings.warn(f"{path}: {unnamed_reason(value.ref)}", UserWarning, stacklevel=4)


def _check_shippable(settings: Any) -> None:
    """Every Python callable must survive cloudpickle for pool and Ray workers."""
    from hwsearch.models.custom.callables import CallableRef, check_shippable
    from hwsearch.workers.python_kind import CODE_FIELDS, Shipped

    problems = []
    for key, path in CODE_FIELDS.items():
        value = getattr(settings, key, None)
        if isinstance(value, Shipped):
            try:
                check_shippable(CallableRef(field=path, obj=value.obj))
            except SpecError as exc:
                problems.append(exc)
    if problems:
        raise SpecErrors(problems)


def front_of(store: Any, job_id: int) -> Front:
    """The last front of job ``job_id`` with each point's candidate and stored metrics."""
    record: FrontRecord | None = store.latest_front(job_id)
    if record is None:
        return Front(job_id, [], [], 0.0, 0)
    points = []
    for point in record.points:
        candidate = store.get_candidate(job_id, point.candidate_id)
        points.append(
            Point(
                point.candidate_id, dict(candidate.config), dict(candidate.metrics), point.measured
            )
        )
    return Front(
        job_id,
        list(record.objectives),
        list(record.directions),
        record.hypervolume,
        record.evaluations,
        points,
        record,
    )
