"""The spec's sections besides the space and the evaluation: objectives, budget,
optimizer, targets, measurement, active learning, prior."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from hwsearch.errors import SpecError
from hwsearch.search.objectives import (
    METRICS,
    Constraint,
    Direction,
    Objective,
    unknown_metric_reason,
)
from hwsearch.search.spec.base import SpecModel, describe
from hwsearch.workers.table_paths import TableColumn, TablePath


def _known_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(unknown_metric_reason(name))
    return name


class ObjectiveSpec(SpecModel):
    metric: Annotated[str, AfterValidator(_known_metric)]
    direction: Direction
    reference: float | None = None

    def to_objective(self) -> Objective:
        return Objective(self.metric, self.direction, self.reference)


def constraint_text(text: str) -> str:
    try:
        return str(Constraint.parse(text))
    except SpecError as exc:
        raise ValueError(exc.reason) from None


class Budget(SpecModel):
    """When to stop: after ``evaluations`` candidates or ``wall_time_s`` seconds, first wins."""

    evaluations: int | None = Field(default=None, ge=1)
    wall_time_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _at_least_one(self) -> Budget:
        if self.evaluations is None and self.wall_time_s is None:
            raise ValueError("give at least one of evaluations, wall_time_s")
        return self


class OptimizerSpec(SpecModel):
    """``{name: ..., <option>: ...}`` in the spec; the options are kept in ``options``."""

    name: str = "optuna-nsga2"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            rest = {k: v for k, v in data.items() if k != "name"}
            out: dict[str, Any] = {"options": rest}
            if "name" in data:
                out["name"] = data["name"]
            return out
        return data

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


class DeviceTargetSpec(SpecModel):
    """A device of this machine with energy and carbon factors that differ from its
    defaults (:mod:`hwsearch.hardware.profiles`)."""

    name: Annotated[str, StringConstraints(min_length=1)]
    tdp_w: float | None = Field(default=None, gt=0)
    cores: int | None = Field(default=None, ge=1)
    embodied_kgco2e: float | None = Field(default=None, ge=0)
    lifetime_years: float | None = Field(default=None, gt=0)
    busy_share: float | None = Field(default=None, gt=0, le=1)
    region: Annotated[str, StringConstraints(min_length=1)] | None = None
    pue: float | None = Field(default=None, ge=1)
    grid_gco2e_per_kwh: float | None = Field(default=None, ge=0)
    meter: Literal["auto", "nvml", "rapl", "estimate"] | None = None

    def overrides(self) -> dict[str, Any]:
        """The factors given, by name."""
        return self.model_dump(exclude={"name"}, exclude_none=True)


class TableTargetSpec(SpecModel):
    """A device that is not here; its latencies (ms) are the ``column`` of a table."""

    name: Annotated[str, StringConstraints(min_length=1)]
    table: TablePath
    column: TableColumn
    key: TableColumn = "arch"

    @model_validator(mode="before")
    @classmethod
    def _column_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("column") is None and "name" in data:
            data = {**data, "column": data["name"]}
        return data

    def lookup(self) -> TableMeasurement:
        return TableMeasurement(type="table", table=self.table, column=self.column, key=self.key)


class TableMeasurement(SpecModel):
    """How the latency of a table target is obtained: looked up, not timed.

    Not written by users (they give a table target); it is derived from the target so that
    ``dict(spec.measurement)`` hands the lookup to the workers like timing settings.
    """

    type: Literal["table"]
    table: TablePath
    column: TableColumn
    key: TableColumn = "arch"


class MeasurementSettings(SpecModel):
    """The timing protocol on the target."""

    batch_size: int = Field(default=1, ge=1)
    threads: int = Field(default=1, ge=1)
    warmup: int = Field(default=10, ge=0)
    min_repeats: int = Field(default=20, ge=2)
    max_repeats: int = Field(default=200, ge=2)
    target_cv: float = Field(default=0.05, gt=0)
    max_seconds: float = Field(default=10.0, gt=0)
    # Derived from a device target's profile factors; not written by users.
    target_profile: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _repeats(self) -> MeasurementSettings:
        if self.max_repeats < self.min_repeats:
            raise ValueError(
                f"max_repeats ({self.max_repeats}) is smaller than min_repeats ({self.min_repeats})"
            )
        return self


def _thread_count(value: Any) -> Any:
    """An integer >= 1 or ``auto`` (one error, not one per form of the union)."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"must be an integer >= 1 or 'auto', got {describe(value)}")


ThreadCount = Annotated[int | Literal["auto"], BeforeValidator(_thread_count)]


class ThreadsSpec(SpecModel):
    """Intra-op threads per worker for training and for the test-set evaluation of each
    candidate (the measurement's are ``measurement.threads``); ``auto``: the cores of one
    worker (see :mod:`hwsearch.hardware.threads`)."""

    training: ThreadCount = 1
    evaluation: ThreadCount = 1


class ActiveLearningSpec(SpecModel):
    """Predict instead of measure where a measurement would not pay (see
    :mod:`hwsearch.search.active`)."""

    predictor: Literal["ridge", "forest", "gp"] = "gp"
    min_measured: int = Field(default=8, ge=3)
    optimism: float = Field(default=1.0, ge=0)
    verify_front: bool = True


class SearchSettings(SpecModel):
    """How the driver runs the search (see :mod:`hwsearch.search.driver`).

    ``driving``: ``async`` gives a worker its next candidate the moment it is free;
    ``generational`` asks a batch, waits for all of it, tells, and asks again. Unset: async
    where the executor has more than one worker, generational otherwise (and always with
    ``active_learning``, which settles candidates a batch at a time)."""

    driving: Literal["async", "generational"] | None = None


def _prior_targets(value: Any) -> Any:
    """``all`` or a list of target names (one error, not one per form of the union)."""
    if value is None or value == "all":
        return value
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(map(repr, repeated))} more than once")
        return value
    raise ValueError(f"must be 'all' or a list of target names, got {describe(value)}")


class PriorTableSpec(SpecModel):
    """Columns of a table measured elsewhere (one column per device), looked up by each
    config's key; ``columns`` defaults to every numeric column but the job's own target's
    and a row number (``index``)."""

    table: TablePath
    columns: list[TableColumn] | None = Field(default=None, min_length=1)
    key: TableColumn = "arch"

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: list[str] | None) -> list[str] | None:
        repeated = sorted({c for c in columns or [] if (columns or []).count(c) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(map(repr, repeated))} more than once")
        return columns


class PriorSpec(SpecModel):
    """Values of one metric known before the search measures anything (see
    :mod:`hwsearch.search.prior`): ``tables`` of other devices' numbers and ``targets``
    whose measurements the database holds (``all``: every other target with at least
    ``min_measured`` of them; configs they lack are predicted by a ``predictor`` fitted on
    what they have)."""

    metric: Annotated[str, StringConstraints(min_length=1)] = "latency_ms"
    tables: list[PriorTableSpec] = Field(default_factory=list)
    targets: Annotated[Literal["all"] | list[str] | None, BeforeValidator(_prior_targets)] = None
    min_measured: int = Field(default=20, ge=3)
    predictor: Literal["ridge", "forest", "gp"] = "ridge"

    @model_validator(mode="after")
    def _some_source(self) -> PriorSpec:
        if not self.tables and not self.targets:
            raise ValueError("give tables, targets or both")
        return self
