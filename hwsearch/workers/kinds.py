"""Evaluation kinds: how the metrics of one candidate are obtained.

A spec's ``evaluation`` section names a kind by its ``type`` (or leaves it out for its
family's :attr:`~hwsearch.models.base.ModelFamily.default_evaluation`); the rest of the
section is validated by the kind's pydantic :attr:`EvaluationKind.settings_model`. The
validated settings travel to the workers as plain data in the task, with the kind's type
(:attr:`~hwsearch.workers.evaluation.EvalTask.kind`), and the worker calls the kind's
:meth:`~EvaluationKind.evaluate`. Export asks the kind to :meth:`~EvaluationKind.rebuild`
the model of a stored config.

Built-in kinds (:mod:`hwsearch.workers.builtin_kinds`): ``train`` (train on the family's data
source, compress, time on the target), ``table`` (quality looked up in a table) and ``lm``
(language models). Plug-ins register theirs with :func:`register_evaluation`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from hwsearch.errors import UnknownNameError

if TYPE_CHECKING:
    from torch import nn

    from hwsearch.models.base import ModelFamily
    from hwsearch.workers.tasks import EvalOutcome, EvalTask


#: A pydantic model class (an alias: ``type`` is a class attribute of the kinds).
SettingsModel = type[BaseModel]


@dataclass
class Rebuilt:
    """A candidate's model rebuilt for export.

    ``weights`` is saved as a state dict, ``deployed`` is traced to TorchScript with
    ``example`` (what ran on the target), ``portable`` is the float model for ONNX;
    ``quality`` holds the rebuilt model's quality metrics (compared with the stored ones);
    ``runtime_source`` what another runtime deploys (:class:`RuntimeSource`), where the kind
    can give it.
    """

    weights: nn.Module
    deployed: nn.Module
    portable: nn.Module
    example: Any
    kernel_path: str
    how_built: str
    quality: dict[str, float] = field(default_factory=dict)
    #: What the exported model takes, for its README (one or two sentences).
    inputs: str = ""
    runtime_source: RuntimeSource | None = None


@dataclass
class RuntimeSource:
    """What a runtime other than PyTorch (ONNX Runtime) deploys: the baked float ``model``,
    each layer's ``(weight_bits, act_bits)`` by module name, the calibration batches, a
    batch-1 ``example`` and ``evaluate``, the quality metrics of a deployed model."""

    model: nn.Module
    bits: dict[str, tuple[int, int]]
    calibration: list[Any]
    example: Any
    evaluate: Callable[[nn.Module], dict[str, float]]


class EvaluationKind(abc.ABC):
    """One way of evaluating candidates; registered by :attr:`type`."""

    #: The ``evaluation.type`` of a spec that selects this kind.
    type: ClassVar[str]
    #: One line for error messages listing the kinds.
    doc: ClassVar[str] = ""
    #: Whether the kind imports and runs code a spec names (the server refuses such specs).
    runs_user_code: ClassVar[bool] = False
    #: The runtimes it can deploy candidates on (:attr:`hwsearch.hardware.TargetKind.runtime`);
    #: a spec whose target runs another is refused on ``target``.
    runtimes: ClassVar[frozenset[str]] = frozenset({"torch"})

    @property
    @abc.abstractmethod
    def settings_model(self) -> SettingsModel:
        """The pydantic model of the spec's ``evaluation`` section for this kind. It may
        have a ``type`` field (a ``Literal`` of :attr:`type`, filled in where the section
        leaves it out); if it has none, ``type`` is not stored with the settings."""

    def problems(self, family: ModelFamily, settings: BaseModel) -> list[tuple[str, str]]:
        """``(field, reason)`` for each reason this kind cannot evaluate ``family`` with
        ``settings`` (fields are dotted paths of the spec). None by default."""
        return []

    def check_config(
        self, family: ModelFamily, settings: BaseModel, config: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        """``(field, reason)`` for problems only a run can show, on one ``config`` of a spec
        that is otherwise sound (e.g. the user's code called once). None by default."""
        return []

    @abc.abstractmethod
    def produces(self, family: ModelFamily, settings: BaseModel, *, timed_here: bool) -> set[str]:
        """The metrics this kind produces for ``family``; ``timed_here`` is False for a
        target whose timings come from elsewhere (a table target). Each must be registered
        in :mod:`hwsearch.metrics`."""

    @abc.abstractmethod
    def evaluate(self, task: EvalTask) -> EvalOutcome:
        """Every metric of the task's candidate, each with its provenance (in a worker)."""

    def rebuild(
        self, family: ModelFamily, config: Mapping[str, Any], settings: Mapping[str, Any], seed: int
    ) -> Rebuilt:
        """The candidate's model for export; by default the family's untrained network."""
        model = family.build(config).eval()
        example = family.example_input_for(config, 1)
        return Rebuilt(
            weights=model,
            deployed=model,
            portable=model,
            example=example,
            kernel_path="fp32",
            how_built=f"not trained here (evaluation {self.type!r}): the network is exported "
            "with freshly initialised weights",
            inputs="Its weights are freshly initialised (the job read its quality from "
            "tables, not from training here), and no preprocessing is inside: feed it "
            "inputs prepared as the architecture's own data set expects.",
            runtime_source=RuntimeSource(model, {}, [], example, lambda _: {}),
        )

    def for_store(self, settings: BaseModel, db_url: str) -> BaseModel:
        """The settings a job of this kind runs with in the store at ``db_url`` (e.g. where
        its artifacts go by default). ``settings`` unchanged by default."""
        return settings

    def rebuild_stored(
        self,
        family: ModelFamily,
        config: Mapping[str, Any],
        settings: Mapping[str, Any],
        seed: int,
        metrics: Mapping[str, Any],
    ) -> Rebuilt | None:
        """The candidate's model from what was stored with it (``metrics``: its stored
        :class:`~hwsearch.records.MetricValue` by name), or None to :meth:`rebuild` it."""
        return None

    def finish_job(self, store: Any, job_id: int, settings: BaseModel) -> None:  # noqa: B027
        """Called when a run of a job of this kind ends (e.g. to drop the artifacts of
        candidates off the front). Nothing by default."""

    def parse(self, data: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> BaseModel:
        """Validate a spec's ``evaluation`` section (raises pydantic's ValidationError)."""
        model = self.settings_model
        if "type" not in model.model_fields:
            data = {k: v for k, v in data.items() if k != "type"}
        elif "type" not in data:  # chosen as the family's default: the section omits it
            data = {**data, "type": self.type}
        return model.model_validate(dict(data), context=dict(context or {}))


_REGISTRY: dict[str, EvaluationKind] = {}


def register_evaluation(kind: EvaluationKind) -> EvaluationKind:
    """Register ``kind`` under its type (built-ins and plug-ins)."""
    if not isinstance(kind, EvaluationKind):
        raise TypeError(f"{kind!r} is not an EvaluationKind")
    _REGISTRY[kind.type] = kind
    return kind


def get_evaluation(type_: str) -> EvaluationKind:
    try:
        return _REGISTRY[type_]
    except KeyError:
        raise UnknownNameError("evaluation type", type_, _REGISTRY) from None


def evaluation_types() -> list[str]:
    return sorted(_REGISTRY)


def evaluation_kinds() -> list[EvaluationKind]:
    return [_REGISTRY[t] for t in sorted(_REGISTRY)]


def kind_of(settings: BaseModel) -> EvaluationKind:
    """The registered kind whose settings model ``settings`` is an instance of."""
    for kind in _REGISTRY.values():
        if type(settings) is kind.settings_model:
            return kind
    raise UnknownNameError("evaluation settings model", type(settings).__name__, _REGISTRY)
