"""The job spec: what to search, for which target, towards which objectives, within what budget.

A spec is YAML or JSON (see ``examples/``). :func:`parse_spec` checks it in two passes: the
shape and types (pydantic models, unknown fields rejected everywhere), then the meaning (knobs
of the family, values each knob accepts, known metrics, a registered optimizer and its
options). Every problem becomes one :class:`~hwsearch.errors.SpecError` whose ``field`` is a
dotted path (``space.width.values[1]``, ``objectives[0].metric``) and all of them are raised
together as :class:`~hwsearch.errors.SpecErrors`.

Defaults of the optional sections:

* ``evaluation``: ``epochs: 4, finetune_epochs: 1, batch_size: 64, learning_rate: 0.05``
  (training of each candidate; fine-tuning after compression);
  ``{type: table, table: FILE, column: COL}`` takes the quality from a table instead;
* ``measurement``: ``batch_size: 1, threads: 1, warmup: 10, min_repeats: 20,
  max_repeats: 200, target_cv: 0.05, max_seconds: 10`` (timing repeats stop once the
  coefficient of variation is below ``target_cv`` after ``min_repeats``, at ``max_repeats``,
  or when the timed phase has lasted ``max_seconds`` with ``min_repeats`` taken);
* ``optimizer``: ``{name: optuna-nsga2}`` with that optimizer's default options;
* ``constraints``: none; ``seed``: 0; ``name``: the file name, else the family name.

Tables of metrics measured elsewhere (CSV files with one row per architecture, see
:mod:`hwsearch.hardware.tables`) come in two places:

* a **table target**, ``target: {name: pixel3, table: latency_ms.csv, column: pixel3}``: a
  device that is not here, whose latencies were measured elsewhere (``column`` defaults to
  ``name``). Its latency is looked up, not timed, so it takes no ``measurement`` section;
  internally the lookup travels to the workers as ``measurement: {type: table, ...}``;
* a **table evaluation**, ``evaluation: {type: table, table: accuracy.csv, column:
  cifar10_acc, scale: 0.01}``: the ``accuracy`` metric is the table's value times ``scale``.

A **device target** with a profile, ``target: {name: cpu, region: FR, pue: 1.2, tdp_w: 95,
embodied_kgco2e: 800, lifetime_years: 5, busy_share: 0.3, cores: 16, grid_gco2e_per_kwh:
60, meter: auto}``: a device of this machine whose energy and carbon factors
(:mod:`hwsearch.hardware.profiles`) differ from the defaults; every factor is optional.
Internally the factors travel to the workers as ``measurement.target_profile``.

The ``transformer`` family takes an LM evaluation, ``evaluation: {type: lm, steps: 150,
finetune_steps: 30, batch_size: 16, seq_len: 64, learning_rate: 0.003, eval_windows: 32,
prompt_len: 32, new_tokens: 32}`` (``type: lm`` and every setting may be left out for it);
``measurement.batch_size`` is the serving batch of its prefill and decode timings.

Both need a family whose configs have a table key (``nb201``: its architecture string) and
both take ``key`` (the key column, default ``arch``). A relative ``table`` path is read from
the spec file's folder (:func:`load_spec`), else from ``base_dir`` or the current directory
(:func:`parse_spec`); the spec keeps the absolute path, so a stored spec finds its tables.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hwsearch.errors import HwsearchError, SpecError, SpecErrors, UnknownNameError
from hwsearch.search.objectives import (
    METRICS,
    Constraint,
    Direction,
    Objective,
    format_number,
    unknown_metric_reason,
)

if TYPE_CHECKING:
    from hwsearch.models.base import Knob, ModelFamily
    from hwsearch.search.limits import SpecLimits

Scalar = bool | int | float | str


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_scalar(value: Any) -> Scalar:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value
    raise ValueError(f"must be a number, a string or a boolean, got {_describe(value)}")


def _check_constant(value: Any) -> Scalar | list[Scalar]:
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty list is not a value; give one value or one per block")
        for i, item in enumerate(value):
            try:
                _check_scalar(item)
            except ValueError as exc:
                raise ValueError(f"item [{i}] {exc}") from None
        return value
    try:
        return _check_scalar(value)
    except ValueError as exc:
        raise ValueError(
            f"a constant {exc}, or a list of those; "
            "a variable is a mapping with type: int, float or choice"
        ) from None


ScalarValue = Annotated[Any, AfterValidator(_check_scalar)]
ConstantValue = Annotated[Any, AfterValidator(_check_constant)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _multiple_of(span: float, step: float) -> bool:
    ratio = span / step
    return abs(ratio - round(ratio)) <= 1e-9 * max(1.0, abs(ratio))


class IntVarSpec(_Model):
    """An integer knob searched over ``low..high`` (inclusive) in ``step`` increments."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, gt=0)
    log: bool = False
    per_layer: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> IntVarSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError("log scale cannot be combined with a step other than 1")
        if (self.high - self.low) % self.step:
            raise ValueError(
                f"high - low ({self.high - self.low}) is not a multiple of step ({self.step})"
            )
        return self


class FloatVarSpec(_Model):
    """A real knob searched over ``[low, high]``: uniform, on a ``step`` grid or log-uniform."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(default=None, gt=0)
    log: bool = False
    per_layer: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FloatVarSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is greater than high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("log scale cannot be combined with step")
        if self.step is not None and not _multiple_of(self.high - self.low, self.step):
            raise ValueError(
                f"high - low ({self.high - self.low:g}) is not a multiple of step ({self.step:g})"
            )
        return self


class ChoiceVarSpec(_Model):
    """A knob searched over a list of distinct values."""

    type: Literal["choice"]
    values: list[ScalarValue] = Field(min_length=1)
    per_layer: int | None = Field(default=None, ge=1)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[Scalar]) -> list[Scalar]:
        # Linear: keyed by type too, since True == 1 == 1.0 must stay distinct from 1 only
        # for booleans (1 and 1.0 are the same value).
        seen: set[tuple[bool, Scalar]] = set()
        for value in values:
            key = (isinstance(value, bool), value)
            if key in seen:
                raise ValueError(f"{_describe(value)} is listed twice; values must be distinct")
            seen.add(key)
        return values


VariableSpec = IntVarSpec | FloatVarSpec | ChoiceVarSpec
_VARIABLE_MODELS: dict[str, type[_Model]] = {
    "int": IntVarSpec,
    "float": FloatVarSpec,
    "choice": ChoiceVarSpec,
}


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, IntVarSpec | FloatVarSpec | ChoiceVarSpec):
        return value.type
    if isinstance(value, Mapping):
        kind = value.get("type")
        return kind if isinstance(kind, str) and kind in _VARIABLE_MODELS else None
    return "constant"


SpaceEntry = Annotated[
    Annotated[IntVarSpec, Tag("int")]
    | Annotated[FloatVarSpec, Tag("float")]
    | Annotated[ChoiceVarSpec, Tag("choice")]
    | Annotated[ConstantValue, Tag("constant")],
    Discriminator(_entry_kind, custom_error_type="space_entry", custom_error_message="bad type"),
]


def _known_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(unknown_metric_reason(name))
    return name


class ObjectiveSpec(_Model):
    metric: Annotated[str, AfterValidator(_known_metric)]
    direction: Direction
    reference: float | None = None

    def to_objective(self) -> Objective:
        return Objective(self.metric, self.direction, self.reference)


def _constraint_text(text: str) -> str:
    try:
        return str(Constraint.parse(text))
    except SpecError as exc:
        raise ValueError(exc.reason) from None


class Budget(_Model):
    """When to stop: after ``evaluations`` candidates or ``wall_time_s`` seconds, first wins."""

    evaluations: int | None = Field(default=None, ge=1)
    wall_time_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _at_least_one(self) -> Budget:
        if self.evaluations is None and self.wall_time_s is None:
            raise ValueError("give at least one of evaluations, wall_time_s")
        return self


class OptimizerSpec(_Model):
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


class EvaluationSettings(_Model):
    """How each candidate is trained and fine-tuned before its quality is measured."""

    epochs: int = Field(default=4, ge=1)
    finetune_epochs: int = Field(default=1, ge=0)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)


class LMEvaluation(_Model):
    """How a language model (family ``transformer``) is trained, evaluated and served; see
    :class:`hwsearch.models.lm_pipeline.LMSettings`."""

    type: Literal["lm"]
    steps: int = Field(default=150, ge=1)
    finetune_steps: int = Field(default=30, ge=0)
    batch_size: int = Field(default=16, ge=1)
    seq_len: int = Field(default=64, ge=2, le=512)
    learning_rate: float = Field(default=3e-3, gt=0)
    eval_windows: int = Field(default=32, ge=1)
    prompt_len: int = Field(default=32, ge=1)
    new_tokens: int = Field(default=32, ge=1)

    @model_validator(mode="after")
    def _context(self) -> LMEvaluation:
        if self.prompt_len + self.new_tokens > 512:
            raise ValueError(
                f"prompt_len + new_tokens ({self.prompt_len + self.new_tokens}) exceeds the "
                "models' context of 512"
            )
        return self


class DeviceTargetSpec(_Model):
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


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """``value`` as a final absolute path (:func:`hwsearch.files.resolve`: ``~``, ``..`` and
    links resolved; a relative one taken from the context's base_dir), confined to the
    context's ``file_roots`` where it has them (a server's table folders)."""
    from hwsearch.files import FileAccessError, confine, resolve

    context = info.context or {}
    try:
        path = resolve(value, context.get("base_dir"))
    except FileAccessError as exc:
        raise ValueError(exc.reason) from None
    roots = context.get("file_roots")
    try:
        return str(confine(path, roots))
    except FileAccessError:
        if not roots:
            raise ValueError(
                "this server reads no table files (start it with --tables DIR)"
            ) from None
        shown = ", ".join(str(r) for r in roots)
        raise ValueError(f"{value!r} is outside the server's table folders ({shown})") from None


TablePath = Annotated[str, StringConstraints(min_length=1), AfterValidator(_resolve_path)]
TableColumn = Annotated[str, StringConstraints(min_length=1)]


class TableEvaluation(_Model):
    """Quality looked up in a table: ``accuracy`` = the ``column`` of the candidate's row
    times ``scale`` (``0.01`` turns percent into 0..1)."""

    type: Literal["table"]
    table: TablePath
    column: TableColumn
    scale: float = Field(default=1.0, gt=0)
    key: TableColumn = "arch"


class TableTargetSpec(_Model):
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


class TableMeasurement(_Model):
    """How the latency of a table target is obtained: looked up, not timed.

    Not written by users (they give a table target); it is derived from the target so that
    ``dict(spec.measurement)`` hands the lookup to the workers like timing settings.
    """

    type: Literal["table"]
    table: TablePath
    column: TableColumn
    key: TableColumn = "arch"


def _target_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "device-name"
    if isinstance(value, DeviceTargetSpec):
        return "device-profile"
    if isinstance(value, Mapping) and not {"table", "column", "key"} & set(value):
        return "device-profile"
    if isinstance(value, Mapping | TableTargetSpec):
        return "device-table"
    return None


def _evaluation_kind(value: Any) -> str | None:
    if isinstance(value, TableEvaluation):
        return "table-lookup"
    if isinstance(value, LMEvaluation):
        return "lm"
    if isinstance(value, Mapping) and "type" in value:
        return {"table": "table-lookup", "lm": "lm"}.get(value["type"])
    return "training"


def _measurement_kind(value: Any) -> str:
    if isinstance(value, TableMeasurement):
        return "table-measurement"
    if isinstance(value, Mapping) and value.get("type") == "table":
        return "table-measurement"
    return "timing"


TargetSpec = Annotated[
    Annotated[Annotated[str, StringConstraints(min_length=1)], Tag("device-name")]
    | Annotated[TableTargetSpec, Tag("device-table")]
    | Annotated[DeviceTargetSpec, Tag("device-profile")],
    Discriminator(_target_kind, custom_error_type="target_kind", custom_error_message="bad"),
]
EvaluationSpec = Annotated[
    Annotated[EvaluationSettings, Tag("training")]
    | Annotated[TableEvaluation, Tag("table-lookup")]
    | Annotated[LMEvaluation, Tag("lm")],
    Discriminator(
        _evaluation_kind, custom_error_type="evaluation_type", custom_error_message="bad"
    ),
]


class MeasurementSettings(_Model):
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


class ActiveLearningSpec(_Model):
    """Predict instead of measure where a measurement would not pay (see
    :mod:`hwsearch.search.active`)."""

    predictor: Literal["ridge", "forest", "gp"] = "gp"
    min_measured: int = Field(default=8, ge=3)
    optimism: float = Field(default=1.0, ge=0)
    verify_front: bool = True


def _prior_targets(value: Any) -> Any:
    """``all`` or a list of target names (one error, not one per form of the union)."""
    if value is None or value == "all":
        return value
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(map(repr, repeated))} more than once")
        return value
    raise ValueError(f"must be 'all' or a list of target names, got {_describe(value)}")


class PriorTableSpec(_Model):
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


class PriorSpec(_Model):
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


class JobSpec(_Model):
    """A validated job spec. Build it with :func:`parse_spec` or :func:`load_spec`."""

    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    target: TargetSpec
    space: dict[str, SpaceEntry] = Field(min_length=1)
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    constraints: list[Annotated[str, AfterValidator(_constraint_text)]] = Field(
        default_factory=list
    )
    budget: Budget
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSettings)
    measurement: Annotated[
        Annotated[MeasurementSettings, Tag("timing")]
        | Annotated[TableMeasurement, Tag("table-measurement")],
        Discriminator(_measurement_kind),
    ] = Field(default_factory=MeasurementSettings)
    active_learning: ActiveLearningSpec | None = None
    prior: PriorSpec | None = None
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # numpy's seed range

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Mapping) and data.get("name") is None:
            default = (info.context or {}).get("default_name") or data.get("family")
            if isinstance(default, str) and default:
                data = {**data, "name": default}
        return data

    @model_validator(mode="before")
    @classmethod
    def _table_target_lookup(cls, data: Any, info: ValidationInfo) -> Any:
        """A valid table target without a measurement section gets its lookup as one."""
        if isinstance(data, Mapping) and "measurement" not in data:
            target = data.get("target")
            if isinstance(target, Mapping):
                try:
                    parsed = TableTargetSpec.model_validate(target, context=info.context)
                except ValidationError:
                    return data  # reported where the target itself is validated
                data = {**data, "measurement": parsed.lookup().model_dump()}
        return data

    @model_validator(mode="before")
    @classmethod
    def _device_profile_and_lm(cls, data: Any) -> Any:
        """A device target's factors travel as ``measurement.target_profile``; a transformer
        without an evaluation type gets the LM evaluation."""
        if not isinstance(data, Mapping):
            return data
        target = data.get("target")
        measurement = data.get("measurement", {})
        if (
            isinstance(target, Mapping)
            and "table" not in target
            and isinstance(measurement, Mapping)
            and "target_profile" not in measurement
        ):
            factors = {k: v for k, v in target.items() if k != "name" and v is not None}
            if factors:
                data = {**data, "measurement": {**measurement, "target_profile": factors}}
        if data.get("family") == "transformer":
            evaluation = data.get("evaluation")
            if evaluation is None:
                data = {**data, "evaluation": {"type": "lm"}}
            elif isinstance(evaluation, Mapping) and "type" not in evaluation:
                data = {**data, "evaluation": {"type": "lm", **evaluation}}
        return data

    @property
    def target_name(self) -> str:
        """The target's name: a device here (``cpu``) or a table target's ``name``."""
        if isinstance(self.target, TableTargetSpec | DeviceTargetSpec):
            return self.target.name
        return self.target

    @property
    def target_overrides(self) -> dict[str, Any]:
        """The profile factors the spec gives its device target (none for a plain name)."""
        return self.target.overrides() if isinstance(self.target, DeviceTargetSpec) else {}

    def target_profile(self) -> Any:
        """The target's :class:`~hwsearch.hardware.profiles.TargetProfile`: its defaults
        with the spec's factors applied."""
        from hwsearch.hardware.profiles import resolve_profile

        if self.target_table is not None:
            return resolve_profile(self.target_name, self.target_overrides, kind="table")
        return resolve_profile(self.target_name, self.target_overrides)

    @property
    def target_table(self) -> TableTargetSpec | None:
        return self.target if isinstance(self.target, TableTargetSpec) else None

    @property
    def evaluation_table(self) -> TableEvaluation | None:
        return self.evaluation if isinstance(self.evaluation, TableEvaluation) else None

    def get_objectives(self) -> list[Objective]:
        return [o.to_objective() for o in self.objectives]

    def get_constraints(self) -> list[Constraint]:
        return [Constraint.parse(text) for text in self.constraints]

    def variables(self) -> dict[str, VariableSpec]:
        """The searched knobs (constants left out), in spec order."""
        return {k: v for k, v in self.space.items() if isinstance(v, VariableSpec)}

    def constants(self) -> dict[str, Any]:
        return {k: v for k, v in self.space.items() if not isinstance(v, VariableSpec)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable data that :func:`parse_spec` turns back into an equal spec."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["optimizer"] = self.optimizer.to_dict()
        if self.target_table is not None:  # derived from the target again when parsed
            data.pop("measurement", None)
        if isinstance(data.get("measurement"), dict):  # derived from the target, likewise
            data["measurement"].pop("target_profile", None)
        return data


# --------------------------------------------------------------------------------------------
# Loading and parsing


def load_spec(path: str | Path) -> JobSpec:
    """Read a YAML or JSON spec file (by extension; otherwise JSON, then YAML), under the
    limits of :mod:`hwsearch.search.spec_files` (size, encoding, nesting, aliases)."""
    from hwsearch.search.spec_files import read_spec_data

    resolved, data = read_spec_data(path)
    return parse_spec(data, default_name=Path(path).stem, base_dir=resolved.parent)


def parse_spec(
    data: Mapping[str, Any],
    *,
    default_name: str | None = None,
    base_dir: str | Path | None = None,
    file_roots: tuple[Path, ...] | None = None,
    limits: SpecLimits | None = None,
) -> JobSpec:
    """Validate ``data`` into a :class:`JobSpec`; raises :class:`SpecErrors` listing every
    problem found. ``default_name`` names the job when ``data`` has no ``name``; relative
    table paths are read from ``base_dir`` (default: the current directory); with
    ``file_roots`` (resolved folders), every file the spec names must lie inside one.
    ``limits`` (default: the process's, :mod:`hwsearch.search.limits`) are checked first."""
    if not isinstance(data, Mapping):
        raise SpecErrors(
            [SpecError("", f"a job spec must be a mapping of fields, got {type(data).__name__}")]
        )
    from hwsearch.search.limits import check_limits

    over = check_limits(data, limits)
    if over:  # before any model is built or file opened
        raise SpecErrors(over)
    context = {"default_name": default_name, "base_dir": base_dir, "file_roots": file_roots}
    try:
        spec = JobSpec.model_validate(dict(data), context=context)
    except ValidationError as exc:
        problems = _convert_errors(exc)
        raise SpecErrors(problems + _meaning_of_the_rest(data, problems, context)) from None
    problems = _check_meaning(spec)
    if problems:
        raise SpecErrors(problems)
    stored = check_limits(spec.to_dict(), limits)  # the stored form is re-read under them
    if stored:
        raise SpecErrors(stored)
    return spec


# Stand-ins for required sections whose own errors are already reported, so that the rest
# of a broken spec can still be checked for meaning (and every problem reported at once).
_STAND_INS: dict[str, Any] = {
    "budget": {"evaluations": 1},
    "objectives": [{"metric": "accuracy", "direction": "maximize"}],
    "target": "cpu",
    "space": {},
}


def _meaning_of_the_rest(
    data: Mapping[str, Any], reported: list[SpecError], context: dict[str, Any]
) -> list[SpecError]:
    """Meaning problems of the parts of ``data`` that parsed, beside the ``reported`` ones."""
    broken_sections = {_section(p.field) for p in reported}
    broken_entries = {
        p.field.split(".")[1].split("[")[0] for p in reported if p.field.startswith("space.")
    }
    rest = dict(data)
    for section in broken_sections - {"space", "family"}:
        if section in _STAND_INS:
            rest[section] = _STAND_INS[section]
        else:
            rest.pop(section, None)
    if isinstance(rest.get("space"), Mapping):
        rest["space"] = {k: v for k, v in rest["space"].items() if k not in broken_entries}
    try:
        spec = JobSpec.model_validate(rest, context=context)
    except (ValidationError, SpecError, SpecErrors):
        return []  # too broken to say more
    return [
        p
        for p in _check_meaning(spec)
        if _section(p.field) not in broken_sections or p.field.startswith("space.")
    ]


def _section(field: str) -> str:
    return field.split(".")[0].split("[")[0]


# --------------------------------------------------------------------------------------------
# Pydantic errors -> SpecError


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# The models behind the union tags of top-level fields.
_TAGGED_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("target", "device-table"): TableTargetSpec,
    ("evaluation", "training"): EvaluationSettings,
    ("evaluation", "table-lookup"): TableEvaluation,
    ("evaluation", "lm"): LMEvaluation,
    ("target", "device-profile"): DeviceTargetSpec,
    ("measurement", "timing"): MeasurementSettings,
    ("measurement", "table-measurement"): TableMeasurement,
}
_TAGS = {"device-name", *(tag for _, tag in _TAGGED_MODELS)}


def _strip_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tag pydantic puts after a space entry's or a top-level field's name."""
    if len(loc) > 2 and loc[0] == "space" and loc[2] in (*_VARIABLE_MODELS, "constant"):
        return loc[:2] + loc[3:]
    if len(loc) >= 2 and loc[0] in ("target", "evaluation", "measurement") and loc[1] in _TAGS:
        return loc[:1] + loc[2:]
    return loc


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc`` (for listing its allowed fields)."""
    if len(loc) >= 3 and loc[0] == "space" and isinstance(loc[2], str):
        return _VARIABLE_MODELS.get(loc[2])
    if len(loc) >= 3 and (str(loc[0]), str(loc[1])) in _TAGGED_MODELS:
        return _TAGGED_MODELS[(str(loc[0]), str(loc[1]))]
    model: type[BaseModel] = JobSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "list_type": "a list",
}


def _reason(error: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _describe(error.get("input"))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        model = _model_at(tuple(error["loc"]))
        allowed = f"; allowed: {', '.join(model.model_fields)}" if model is not None else ""
        if model is OptimizerSpec:
            allowed = ""
        return f"unknown field{allowed}"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {got}"
    if kind == "finite_number":
        return f"must be a finite number, got {got}"
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        limits = {k: format_number(v) if isinstance(v, float) else v for k, v in ctx.items()}
        return f"must be {bounds[kind].format(**limits)}, got {got}"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"needs at least {ctx.get('min_length')} items"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "target_kind":
        return (
            f"expected a device name such as 'cpu' or a table target "
            f"{{name: ..., table: FILE, column: ...}}, got {got}"
        )
    if kind == "evaluation_type":
        value = error.get("input")
        kind_given = value.get("type") if isinstance(value, Mapping) else None
        return (
            f"unknown evaluation type {_describe(kind_given)}; use 'table' (quality looked up "
            "in a table), 'lm' (language models of family transformer) or leave type out to "
            "train each candidate"
        )
    if kind == "space_entry":
        value = error.get("input")
        if isinstance(value, Mapping) and "type" in value:
            return f"unknown variable type {_describe(value['type'])}; use int, float or choice"
        return (
            "a variable needs 'type: int', 'type: float' or 'type: choice'; "
            "a constant is a single value or a list"
        )
    return str(error["msg"])


def _convert_errors(exc: ValidationError) -> list[SpecError]:
    out: list[SpecError] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors():
        loc = _strip_tags(tuple(error["loc"]))
        if error["type"] == "space_entry":
            value = error.get("input")
            if isinstance(value, Mapping) and "type" in value:
                loc = (*loc, "type")
        if error["type"] == "evaluation_type":
            loc = (*loc, "type")
        field, reason = _path(loc), _reason(error, loc)
        if (field, reason) not in seen:
            seen.add((field, reason))
            out.append(SpecError(field, reason))
    return out


# --------------------------------------------------------------------------------------------
# Checks that need the family, the targets and the optimizer registry


def _get_family(name: str) -> ModelFamily:
    with contextlib.suppress(ImportError):
        import hwsearch.models  # noqa: F401  # registers the built-in families
    from hwsearch.models.base import get_family

    return get_family(name)


def _check_target(name: str | TableTargetSpec | DeviceTargetSpec) -> list[SpecError]:
    if isinstance(name, TableTargetSpec):
        return []  # see _check_tables
    if isinstance(name, DeviceTargetSpec):
        return [SpecError("target.name", p.reason) for p in _check_target(name.name)]
    try:
        from hwsearch.hardware.targets import parse_target
    except ImportError:
        return []
    try:
        parse_target(name)
    except SpecError as exc:
        return [SpecError("target", exc.reason)]
    except (HwsearchError, ValueError) as exc:
        return [SpecError("target", str(exc))]
    return []


def _knob_problems(knob: Knob, path: str, value: Any) -> list[SpecError]:
    problem = knob.problem(value)
    return [SpecError(path, problem)] if problem else []


def _check_entry(family: ModelFamily, key: str, entry: Any) -> list[SpecError]:
    base = f"space.{key}"
    knob = family.knobs[key]
    per_block = sorted(k.name for k in family.knobs.values() if k.per_block)
    not_per_block = (
        f"knob {key!r} has one value for the whole model; per-block knobs of "
        f"{family.name!r}: {', '.join(per_block) or 'none'}"
    )
    problems: list[SpecError] = []
    if isinstance(entry, IntVarSpec | FloatVarSpec | ChoiceVarSpec):
        if entry.per_layer is not None and not knob.per_block:
            problems.append(SpecError(f"{base}.per_layer", not_per_block))
        if isinstance(entry, ChoiceVarSpec):
            for i, value in enumerate(entry.values):
                problems += _knob_problems(knob, f"{base}.values[{i}]", value)
            return problems
        if knob.kind == "choice":
            choices = f" from {list(knob.choices)}" if knob.choices is not None else ""
            return [
                *problems,
                SpecError(
                    f"{base}.type",
                    f"knob {key!r} takes named values; use type: choice with values{choices}",
                ),
            ]
        if knob.kind == "int" and isinstance(entry, FloatVarSpec):
            return [
                *problems,
                SpecError(f"{base}.type", f"knob {key!r} takes integers; use type: int or choice"),
            ]
        problems += _knob_problems(knob, f"{base}.low", entry.low)
        problems += _knob_problems(knob, f"{base}.high", entry.high)
        return problems
    if isinstance(entry, list):
        if not knob.per_block:
            return [SpecError(base, f"a list is only allowed for per-block knobs; {not_per_block}")]
        for i, value in enumerate(entry):
            problems += _knob_problems(knob, f"{base}[{i}]", value)
        return problems
    return _knob_problems(knob, base, entry)


def _check_space(spec: JobSpec) -> list[SpecError]:
    try:
        family = _get_family(spec.family)
    except UnknownNameError as exc:
        return [SpecError("family", str(exc))]
    problems: list[SpecError] = []
    for key, entry in spec.space.items():
        if key not in family.knobs:
            problems.append(
                SpecError(
                    f"space.{key}",
                    f"not a knob of family {family.name!r}; knobs: {', '.join(family.knobs)}",
                )
            )
            continue
        problems += _check_entry(family, key, entry)
    if not spec.variables():
        problems.append(
            SpecError("space", "has no variables; give at least one knob a range or choices")
        )
    if not problems:
        problems += _check_per_layer_lengths(spec, family)
    return problems


def _largest(entry: Any) -> Any:
    """The value of a space entry that makes the deepest network (its largest value)."""
    if isinstance(entry, IntVarSpec | FloatVarSpec):
        return entry.high
    if isinstance(entry, ChoiceVarSpec):
        numbers = [v for v in entry.values if isinstance(v, int | float)]
        return max(numbers) if len(numbers) == len(entry.values) else entry.values[0]
    return entry


def _check_per_layer_lengths(spec: JobSpec, family: ModelFamily) -> list[SpecError]:
    """Each per-layer knob needs a value for every block of the deepest network searched."""
    deepest = {key: _largest(entry) for key, entry in spec.space.items()}
    for key, entry in spec.space.items():  # lists must be long enough to build it at all
        if isinstance(entry, VariableSpec) and entry.per_layer is not None:
            deepest[key] = [_largest(entry)] * max(entry.per_layer, 64)
    try:
        blocks = family.num_blocks(family.canonical(deepest))
    except (ValueError, SpecError):
        return []  # the values themselves are checked elsewhere
    return [
        SpecError(
            f"space.{key}.per_layer",
            f"is {entry.per_layer}, but the deepest network in this space has {blocks} "
            f"blocks; give per_layer: {blocks}",
        )
        for key, entry in spec.space.items()
        if isinstance(entry, VariableSpec)
        and entry.per_layer is not None
        and entry.per_layer < blocks
    ]


_LOCAL_DEVICE = re.compile(r"\s*(cpu|cuda(:\d+)?)\s*", re.IGNORECASE)


def _check_table_file(field: str, path: str, key: str, column: str) -> list[SpecError]:
    """Problems with reading ``column`` by ``key`` from the table at ``path``."""
    from hwsearch.hardware.tables import TableColumnError, TableError, load_table

    try:
        table = load_table(path, key=key)
    except TableColumnError as exc:
        return [SpecError(f"{field}.key", str(exc))]
    except TableError as exc:
        reason = str(exc)
        if not Path(path).exists():
            reason += " (a relative path is read from the spec file's folder)"
        return [SpecError(f"{field}.table", reason)]
    try:
        table.check_column(column)
    except TableColumnError as exc:
        return [SpecError(f"{field}.column", str(exc))]
    return []


def _check_tables(spec: JobSpec) -> list[SpecError]:
    """Table targets and table evaluations: files, columns, a keyed family, the metrics."""
    problems: list[SpecError] = []
    target, evaluation = spec.target_table, spec.evaluation_table
    if target is not None:
        if _LOCAL_DEVICE.fullmatch(target.name):
            problems.append(
                SpecError(
                    "target.name",
                    f"{target.name!r} names a device of this machine; give the device whose "
                    "numbers the table holds its own name (e.g. the column's)",
                )
            )
        problems += _check_table_file("target", target.table, target.key, target.column)
        if spec.measurement != target.lookup():
            problems.append(
                SpecError(
                    "measurement",
                    "a table target is not timed here (its latencies were measured "
                    "elsewhere); remove the measurement section",
                )
            )
    elif isinstance(spec.measurement, TableMeasurement):
        problems.append(
            SpecError(
                "measurement.type",
                "latencies from a table are given as a table target: "
                "target: {name: ..., table: FILE, column: ...}",
            )
        )
    if evaluation is not None:
        problems += _check_table_file(
            "evaluation", evaluation.table, evaluation.key, evaluation.column
        )
    try:
        family = _get_family(spec.family)
    except UnknownNameError:
        return problems  # reported by _check_space
    if evaluation is None and not family.trainable:
        problems.append(
            SpecError(
                "evaluation",
                f"family {family.name!r} is not trained here; take its quality from a table: "
                "evaluation: {type: table, table: FILE, column: ...}",
            )
        )
    if target is None and evaluation is None:
        return problems
    from hwsearch.hardware.tables import TableKeyed

    if not isinstance(family, TableKeyed):
        problems.append(
            SpecError(
                "family",
                f"family {family.name!r} has no key to look its configs up in a table; "
                "table targets and table evaluations need one (e.g. nb201)",
            )
        )
        return problems
    settings: Mapping[str, Any] = getattr(family, "table_settings", {})
    for knob, value in settings.items():
        entry = spec.space.get(knob, family.knobs[knob].default)
        if isinstance(entry, VariableSpec) or entry != value:
            problems.append(
                SpecError(
                    f"space.{knob}",
                    f"the tables of family {family.name!r} describe networks with "
                    f"{knob} = {value}; fix {knob} at {value} to look candidates up in them",
                )
            )
    from hwsearch.workers.evaluation import metrics_with_tables

    available = metrics_with_tables(target_table=target is not None)
    return problems + _unproduced(spec, available, "when evaluating from tables")


def _check_energy_and_lm(spec: JobSpec) -> list[SpecError]:
    """Target profile factors, LM evaluations only for language models, and metrics the
    family's evaluation produces."""
    problems: list[SpecError] = []
    measurement = spec.measurement
    if (
        isinstance(measurement, MeasurementSettings)
        and measurement.target_profile is not None
        and measurement.target_profile != (spec.target_overrides or None)
    ):
        problems.append(
            SpecError(
                "measurement.target_profile",
                "is derived from the target; give profile factors on the target: "
                "target: {name: cpu, region: FR, ...}",
            )
        )
    if isinstance(spec.target, DeviceTargetSpec) and not _check_target(spec.target):
        problems += _profile_problems(spec)
    try:
        family = _get_family(spec.family)
    except UnknownNameError:
        return problems  # reported by _check_space
    language_model = bool(getattr(family, "language_model", False))
    if isinstance(spec.evaluation, LMEvaluation) and not language_model:
        problems.append(
            SpecError(
                "evaluation.type",
                f"'lm' evaluates language models (family transformer), not {family.name!r}",
            )
        )
    if language_model and not isinstance(spec.evaluation, LMEvaluation):
        problems.append(
            SpecError("evaluation", "family 'transformer' takes an LM evaluation: {type: lm, ...}")
        )
    if spec.target_table is not None or spec.evaluation_table is not None:
        return problems  # the metrics of table evaluations are checked by _check_tables
    from hwsearch.workers.evaluation import produced_metrics

    available = produced_metrics(language_model=language_model)
    return problems + _unproduced(spec, available, f"for family {family.name!r}")


def _unproduced(spec: JobSpec, available: Collection[str], where: str) -> list[SpecError]:
    """Objectives and constraints naming a metric the evaluation does not produce."""
    used = [(f"objectives[{i}].metric", o.metric) for i, o in enumerate(spec.objectives)]
    used += [(f"constraints[{i}]", c.metric) for i, c in enumerate(spec.get_constraints())]
    return [
        SpecError(
            field,
            f"metric {metric!r} is not produced {where}; available: {', '.join(sorted(available))}",
        )
        for field, metric in used
        if metric not in available
    ]


def _profile_problems(spec: JobSpec) -> list[SpecError]:
    """Factors that resolve to no usable profile: an unknown region, a meter not here."""
    from hwsearch.hardware.carbon import GRID_INTENSITY
    from hwsearch.hardware.energy import meter_available
    from hwsearch.hardware.profiles import normalise_region

    overrides = spec.target_overrides
    problems: list[SpecError] = []
    try:
        profile = spec.target_profile()
    except SpecError as exc:
        return [exc]
    if "grid_gco2e_per_kwh" not in overrides and profile.region not in GRID_INTENSITY:
        problems.append(
            SpecError(
                "target.region",
                f"no grid intensity for region {normalise_region(profile.region)!r}; known: "
                f"{', '.join(sorted(GRID_INTENSITY))} (or give grid_gco2e_per_kwh)",
            )
        )
    meter = overrides.get("meter")
    if meter == "nvml" and profile.kind != "cuda":
        problems.append(SpecError("target.meter", "nvml measures NVIDIA GPUs; use a cuda target"))
    elif meter in ("nvml", "rapl"):
        index = int(profile.name.split(":")[1]) if ":" in profile.name else 0
        if not meter_available(meter, device_index=index):
            where = (
                "no readable /sys/class/powercap/intel-rapl:N/energy_uj"
                if meter == "rapl"
                else "NVML's energy counter cannot be read (nvidia-ml-py, driver, GPU)"
            )
            problems.append(
                SpecError("target.meter", f"{meter} is not available here: {where}; use auto")
            )
    return problems


def _check_prior(spec: JobSpec) -> list[SpecError]:
    """The prior's metric is an objective, the optimizer uses it, its tables can be read
    by the family's key, and no source is the job's own target."""
    prior = spec.prior
    if prior is None:
        return []
    from hwsearch.search.optimizer import get_optimizer_class

    problems: list[SpecError] = []
    metrics = [o.metric for o in spec.objectives]
    if prior.metric not in metrics:
        problems.append(
            SpecError(
                "prior.metric",
                f"{prior.metric!r} is not an objective of this job; one of {', '.join(metrics)}",
            )
        )
    try:
        uses = getattr(get_optimizer_class(spec.optimizer.name), "USES_PRIOR", False)
    except UnknownNameError:
        uses = True  # reported as optimizer.name
    if not uses:
        problems.append(
            SpecError(
                "prior",
                f"optimizer {spec.optimizer.name!r} does not use prior knowledge; "
                "use optimizer: {name: default} or remove the prior section",
            )
        )
    if isinstance(prior.targets, list) and spec.target_name in prior.targets:
        at = prior.targets.index(spec.target_name)
        problems.append(
            SpecError(
                f"prior.targets[{at}]",
                f"{spec.target_name!r} is the job's own target: its values are what the "
                "search measures, not prior knowledge",
            )
        )
    if prior.tables:
        from hwsearch.hardware.tables import TableKeyed

        try:
            family = _get_family(spec.family)
        except UnknownNameError:
            return problems  # reported by _check_space
        if not isinstance(family, TableKeyed):
            problems.append(
                SpecError(
                    "prior.tables",
                    f"family {spec.family!r} has no key to look its configs up in a table",
                )
            )
            return problems
    from hwsearch.hardware.tables import (
        ROW_NUMBER_COLUMNS,
        TableColumnError,
        TableError,
        load_table,
    )

    own = spec.target_table
    keys = _example_keys(spec, family) if prior.tables else []
    for i, source in enumerate(prior.tables):
        field = f"prior.tables[{i}]"
        try:
            table = load_table(source.table, key=source.key)
        except TableColumnError as exc:
            problems.append(SpecError(f"{field}.key", str(exc)))
            continue
        except TableError as exc:
            problems.append(SpecError(f"{field}.table", str(exc)))
            continue
        if keys and not any(k in table for k in keys):
            problems.append(
                SpecError(
                    f"{field}.key",
                    f"none of {len(keys)} configs of this space has a row in {source.table} "
                    f"(e.g. {keys[0]!r})",
                )
            )
            continue
        own_column = own.column if own is not None and own.table == source.table else None
        for j, column in enumerate(source.columns or []):
            try:
                table.check_column(column)
            except TableColumnError as exc:
                problems.append(SpecError(f"{field}.columns[{j}]", str(exc)))
                continue
            if column == own_column:
                problems.append(
                    SpecError(
                        f"{field}.columns[{j}]",
                        f"{column!r} is the job's own target column: its values are what "
                        "the search looks up, not prior knowledge",
                    )
                )
        if source.columns is None and not [
            c for c in table.columns if c != own_column and c not in ROW_NUMBER_COLUMNS
        ]:
            problems.append(
                SpecError(f"{field}.table", "has no numeric column besides the job's own target")
            )
    return problems


def _example_keys(spec: JobSpec, family: Any, count: int = 16) -> list[str]:
    """Table keys of ``count`` configs sampled from the spec's space (none where the space
    itself is invalid: that is reported on its own)."""
    import numpy as np

    from hwsearch.search.space import SearchSpace

    try:
        space = SearchSpace.from_spec(spec)
        rng = np.random.default_rng(0)
        configs = [family.canonical(space.to_config(space.sample(rng))) for _ in range(count)]
        return [family.table_key(c) for c in configs]
    except (HwsearchError, ValueError, KeyError, TypeError):
        return []


def _check_meaning(spec: JobSpec) -> list[SpecError]:
    from hwsearch.search.optimizer import check_optimizer_options, get_optimizer_class

    problems = _check_space(spec)
    problems += _check_target(spec.target)
    problems += _check_tables(spec)
    problems += _check_energy_and_lm(spec)
    problems += _check_prior(spec)
    first: dict[str, int] = {}
    for i, objective in enumerate(spec.objectives):
        if objective.metric in first:
            problems.append(
                SpecError(
                    f"objectives[{i}].metric",
                    f"{objective.metric!r} is already objectives[{first[objective.metric]}]",
                )
            )
        first.setdefault(objective.metric, i)
    try:
        options = check_optimizer_options(spec.optimizer.name, spec.optimizer.options)
        get_optimizer_class(spec.optimizer.name).check_objectives(options, len(spec.objectives))
    except UnknownNameError as exc:
        problems.append(SpecError("optimizer.name", str(exc)))
    except SpecError as exc:
        problems.append(exc)
    return problems


__all__ = [
    "Budget",
    "ChoiceVarSpec",
    "DeviceTargetSpec",
    "EvaluationSettings",
    "FloatVarSpec",
    "IntVarSpec",
    "JobSpec",
    "LMEvaluation",
    "MeasurementSettings",
    "ObjectiveSpec",
    "OptimizerSpec",
    "PriorSpec",
    "PriorTableSpec",
    "TableEvaluation",
    "TableMeasurement",
    "TableTargetSpec",
    "VariableSpec",
    "load_spec",
    "parse_spec",
]
