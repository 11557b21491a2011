"""The evaluation kind ``python``: the user's own model, data and evaluation.

Settings (the spec's ``evaluation`` with the ``family`` mapping's fields folded in, see
:mod:`hwsearch.search.spec.user_model`): ``model`` (``build(config) -> nn.Module``),
``input_shape`` or ``example_input``, ``evaluate``, optional ``finetune`` and ``calibrate``,
``metrics`` (``{name: maximize|minimize}``, registered in :mod:`hwsearch.metrics` when the
spec is read, so objectives and constraints on them validate), ``folder`` (where
``"module:attr"`` names resolve first; the spec file's folder) and ``calibration_batches``.

A callable is kept as its ``"module:attr"`` string (resolved in the worker) or, from the
Python API, as a :class:`Shipped` object that pickles itself with cloudpickle, so that
local, pool and Ray executors all run it. The candidate runs through
:func:`hwsearch.models.custom.pipeline.run_candidate`; an exception in the user's code is a
failed candidate whose error holds the stage and the traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import cloudpickle
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hwsearch.errors import SpecError
from hwsearch.metrics import METRICS, Better, Metric, get_metric, register_metric
from hwsearch.workers import evaluation as ev
from hwsearch.workers.kinds import EvaluationKind, Rebuilt, SettingsModel, register_evaluation

if TYPE_CHECKING:
    from hwsearch.models.base import ModelFamily
    from hwsearch.models.custom.pipeline import UserModel
    from hwsearch.workers.tasks import EvalOutcome, EvalTask

CODE_FIELDS = {
    "model": "family.model",
    "example_input": "family.example_input",
    "evaluate": "evaluation.evaluate",
    "finetune": "evaluation.finetune",
    "calibrate": "evaluation.calibrate",
}
BETTER: dict[str, Better] = {"maximize": "higher", "minimize": "lower"}


def _load(payload: bytes) -> Shipped:
    return Shipped(cloudpickle.loads(payload))


class Shipped:
    """A Python callable that pickles itself with cloudpickle (for pool and Ray workers)."""

    def __init__(self, obj: Callable[..., Any]) -> None:
        self.obj = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.obj(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_load, (cloudpickle.dumps(self.obj),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Shipped) and other.obj is self.obj

    def __hash__(self) -> int:
        return hash(id(self.obj))

    @property
    def ref(self) -> str:
        """``module:qualname``, how a stored spec names it."""
        module = getattr(self.obj, "__module__", None) or "__main__"
        name = getattr(self.obj, "__qualname__", None) or type(self.obj).__qualname__
        if module == "__main__":  # a script: named by its file, resolved from its folder
            try:
                source = inspect.getsourcefile(self.obj)
            except TypeError:
                source = None
            if source:
                module = Path(source).stem
        return f"{module}:{name}"


def _code(value: Any) -> Any:
    if value is None or isinstance(value, str | Shipped):
        return value
    if callable(value):
        return Shipped(value)
    raise ValueError(
        f"must be a 'module:attribute' string or a callable, got {type(value).__name__}"
    )


def _as_ref(value: Any) -> Any:
    return value.ref if isinstance(value, Shipped) else value


UserCode = Annotated[Any, BeforeValidator(_code), PlainSerializer(_as_ref, when_used="json")]


class PythonEvaluation(BaseModel):
    """The ``evaluation`` of a spec of the user's own model."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    type: Literal["python"]
    model: UserCode
    evaluate: UserCode
    input_shape: list[Annotated[int, Field(ge=1)]] | None = None
    example_input: UserCode = None
    finetune: UserCode = None
    calibrate: UserCode = None
    metrics: dict[str, Literal["maximize", "minimize"]] = Field(min_length=1)
    folder: str | None = Field(default=None, validate_default=True)
    calibration_batches: int = Field(default=8, ge=1)
    #: the artifact store's folder (default: beside a SQLite database; none: no weights)
    artifacts: str | None = None
    #: whose weights stay once a run ends: the front's (always) or every candidate's
    keep_weights: Literal["front", "all"] = "front"

    @field_validator("folder", mode="before")
    @classmethod
    def _folder(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            base = (info.context or {}).get("base_dir")
            return str(Path(base).resolve()) if base is not None else None
        return value

    @field_validator("metrics")
    @classmethod
    def _register(cls, metrics: dict[str, str]) -> dict[str, str]:
        """Declared metrics join the registry (for objectives, constraints and filters)."""
        for name, direction in metrics.items():
            if not name.isidentifier():
                raise ValueError(f"metric name {name!r} is not an identifier")
            better = BETTER[direction]
            if name in METRICS:
                known = get_metric(name)
                if known.better != better:
                    raise ValueError(
                        f"{name!r} is a registered metric where {known.better} is better; "
                        f"declare it {'maximize' if known.better == 'higher' else 'minimize'} "
                        "or give yours another name"
                    )
                continue
            register_metric(Metric(name, "", better, "declared by the user's evaluate"))
        return metrics

    @model_validator(mode="after")
    def _one_input(self) -> PythonEvaluation:
        if (self.input_shape is None) == (self.example_input is None):
            raise ValueError("give exactly one of family.input_shape and family.example_input")
        return self


def user_model(settings: Mapping[str, Any]) -> UserModel:
    """The user's code of a task's (or spec's) settings, resolved; :class:`SpecError` on a
    missing module or attribute, naming the field."""
    from hwsearch.models.custom.callables import resolve
    from hwsearch.models.custom.pipeline import UserModel

    folder = settings.get("folder")

    def code(key: str) -> Any:
        value = settings.get(key)
        if value is None:
            return None
        if isinstance(value, Shipped):
            return value.obj
        return resolve(CODE_FIELDS[key], value, folder=folder).obj

    shape = settings.get("input_shape")
    return UserModel(
        build=code("model"),
        evaluate=code("evaluate"),
        metrics=dict(settings["metrics"]),
        input_shape=tuple(shape) if shape is not None else None,
        example_input=code("example_input"),
        finetune=code("finetune"),
        calibrate=code("calibrate"),
    )


class PythonEvaluationKind(EvaluationKind):
    """Build, compress, calibrate, fine-tune, evaluate, materialise and measure the user's
    model with the user's code."""

    type = "python"
    doc = "'python' (your own model: build, evaluate, finetune, calibrate callables)"
    runs_user_code = True
    runtimes = frozenset({"torch", "onnxruntime"})

    @property
    def settings_model(self) -> SettingsModel:
        return PythonEvaluation

    def problems(self, family: ModelFamily, settings: BaseModel) -> list[tuple[str, str]]:
        from hwsearch.models.custom.family import UserFamily

        if not isinstance(family, UserFamily):
            return [
                (
                    "evaluation.type",
                    "'python' evaluates your own model: family: {model: 'mod:build', "
                    f"input_shape: [...]}}, not family {family.name!r}",
                )
            ]
        return []

    def produces(self, family: ModelFamily, settings: BaseModel, *, timed_here: bool) -> set[str]:
        assert isinstance(settings, PythonEvaluation)
        return set(settings.metrics) | (set(ev.TRAINED_METRICS) - {"accuracy"})

    def check_config(
        self, family: ModelFamily, settings: BaseModel, config: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        """Resolve the callables and run the user's code once on ``config`` (a dry build)."""
        from hwsearch.models.custom.family import bind, split_config
        from hwsearch.models.custom.pipeline import dry_run

        try:
            code = user_model(dict(settings))
            build, layers = split_config(config)
            dry_run(code, build, layers)
        except SpecError as exc:
            field = f"space.{exc.field}" if exc.field.startswith("layers") else exc.field
            return [(field, exc.reason)]
        bind(code, config)  # for the family's features (active learning, transfer)
        return []

    def for_store(self, settings: BaseModel, db_url: str) -> BaseModel:
        from hwsearch.artifacts import default_root

        assert isinstance(settings, PythonEvaluation)
        root = default_root(db_url)
        if settings.artifacts is not None or root is None:
            return settings
        return settings.model_copy(update={"artifacts": str(root.resolve())})

    def rebuild_stored(
        self,
        family: ModelFamily,
        config: Mapping[str, Any],
        settings: Mapping[str, Any],
        seed: int,
        metrics: Mapping[str, Any],
    ) -> Rebuilt | None:
        from hwsearch.workers.python_export import reload

        return reload(user_model(settings), config, settings, seed, metrics)

    def finish_job(self, store: Any, job_id: int, settings: BaseModel) -> None:
        from hwsearch.workers.python_weights import drop_off_front

        assert isinstance(settings, PythonEvaluation)
        if settings.artifacts is not None and settings.keep_weights == "front":
            drop_off_front(store, job_id, settings.artifacts)

    def evaluate(self, task: EvalTask) -> EvalOutcome:
        from hwsearch.workers.python_run import evaluate_user_model

        return evaluate_user_model(task, user_model(task.evaluation))


PYTHON = register_evaluation(PythonEvaluationKind())

__all__ = ["PYTHON", "PythonEvaluation", "Shipped", "user_model"]
