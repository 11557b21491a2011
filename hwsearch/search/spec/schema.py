"""The job spec as a whole (:class:`JobSpec`): its sections, the union of target forms,
the evaluation kinds' settings, and what one section derives from another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    SerializeAsAny,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hwsearch.errors import UnknownNameError
from hwsearch.search.objectives import Constraint, Objective
from hwsearch.search.spec.base import SpecModel, default_evaluation
from hwsearch.search.spec.sections import (
    ActiveLearningSpec,
    Budget,
    DeviceTargetSpec,
    MeasurementSettings,
    ObjectiveSpec,
    OptimizerSpec,
    PriorSpec,
    SearchSettings,
    TableMeasurement,
    TableTargetSpec,
    ThreadsSpec,
    constraint_text,
)
from hwsearch.search.spec.user_model import fold
from hwsearch.search.spec.variables import SpaceEntry, VariableSpec
from hwsearch.workers.builtin_kinds import EvaluationSettings, TableEvaluation
from hwsearch.workers.kinds import get_evaluation
from hwsearch.workers.placement import ExecutorSettings


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


def _evaluation_settings(value: Any, info: ValidationInfo) -> Any:
    """The registered evaluation kind's settings model for an ``evaluation`` mapping
    (:func:`parse_spec` validates the section beforehand, for field-level errors)."""
    if isinstance(value, BaseModel) or not isinstance(value, Mapping):
        return value
    try:
        kind = get_evaluation(str(value.get("type") or default_evaluation(info.data.get("family"))))
    except UnknownNameError:
        raise PydanticCustomError("evaluation_type", "bad") from None
    return kind.parse(value, info.context)


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
#: The settings model of a registered evaluation kind (:mod:`hwsearch.workers.kinds`).
EvaluationSpec = Annotated[SerializeAsAny[BaseModel], BeforeValidator(_evaluation_settings)]


class JobSpec(SpecModel):
    """A validated job spec. Build it with :func:`parse_spec` or :func:`load_spec`."""

    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    target: TargetSpec
    space: dict[str, SpaceEntry] = Field(min_length=1)
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    constraints: list[Annotated[str, AfterValidator(constraint_text)]] = Field(default_factory=list)
    budget: Budget
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSettings)
    measurement: Annotated[
        Annotated[MeasurementSettings, Tag("timing")]
        | Annotated[TableMeasurement, Tag("table-measurement")],
        Discriminator(_measurement_kind),
    ] = Field(default_factory=MeasurementSettings)
    # None (absent) means one thread each; kept absent so stored specs read as before
    threads: ThreadsSpec | None = None
    active_learning: ActiveLearningSpec | None = None
    prior: PriorSpec | None = None
    search: SearchSettings | None = None
    #: where candidates run (the CLI's --executor, --workers, --address override it)
    executor: ExecutorSettings | None = None
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # numpy's seed range
    # Copy values other jobs measured of the same config, target and settings instead of
    # measuring again (``--no-reuse`` on run and submit sets it false).
    reuse: bool = True

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
        """A device target's factors travel as ``measurement.target_profile``; a spec
        without an evaluation gets its family's default kind."""
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
        if data.get("evaluation") is None:  # the family's default evaluation kind
            data = {**data, "evaluation": {"type": default_evaluation(data.get("family"))}}
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
        if self.executor is not None:  # what the spec set: defaults of Ray's fields are not
            data["executor"] = self.executor.model_dump(mode="json", exclude_unset=True)
        if self.target_table is not None:  # derived from the target again when parsed
            data.pop("measurement", None)
        if isinstance(data.get("measurement"), dict):  # derived from the target, likewise
            data["measurement"].pop("target_profile", None)
        if data.get("reuse") is True:  # the default: a stored spec reads as it did before
            data.pop("reuse")
        return fold(data)
