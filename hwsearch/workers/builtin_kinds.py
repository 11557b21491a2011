"""The built-in evaluation kinds: ``train``, ``table`` and ``lm`` (see :mod:`.kinds`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hwsearch.errors import HwsearchError
from hwsearch.workers import evaluation as ev
from hwsearch.workers.kinds import EvaluationKind, Rebuilt, SettingsModel, register_evaluation
from hwsearch.workers.table_paths import TableColumn, TablePath

if TYPE_CHECKING:
    from hwsearch.models.base import ModelFamily
    from hwsearch.workers.evaluation import EvalOutcome, EvalTask


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluationSettings(_Settings):
    """How each candidate is trained and fine-tuned before its quality is measured."""

    epochs: int = Field(default=4, ge=1)
    finetune_epochs: int = Field(default=1, ge=0)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)


class LMEvaluation(_Settings):
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


class TableEvaluation(BaseModel):
    """Quality looked up in a table: ``accuracy`` = the ``column`` of the candidate's row
    times ``scale`` (``0.01`` turns percent into 0..1)."""

    # The spec's own strictness (:mod:`hwsearch.search.spec`), as it is a spec section.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    type: Literal["table"]
    table: TablePath
    column: TableColumn
    scale: float = Field(default=1.0, gt=0)
    key: TableColumn = "arch"


def _not_trainable(family: ModelFamily) -> list[tuple[str, str]]:
    if family.trainable and family.data_source is not None:
        return []
    return [
        (
            "evaluation",
            f"family {family.name!r} is not trained here; take its quality from a table: "
            "evaluation: {type: table, table: FILE, column: ...}",
        )
    ]


class TrainEvaluation(EvaluationKind):
    """Train on the family's data source, compress, fine-tune, time on the target; with a
    table target the timings are looked up instead."""

    type = "train"
    doc = "'train' (train each candidate here; the default of most families)"
    runtimes = frozenset({"torch", "onnxruntime"})

    @property
    def settings_model(self) -> SettingsModel:
        return EvaluationSettings

    def problems(self, family: ModelFamily, settings: BaseModel) -> list[tuple[str, str]]:
        return _not_trainable(family)

    def produces(self, family: ModelFamily, settings: BaseModel, *, timed_here: bool) -> set[str]:
        if not timed_here:
            return set(ev.metrics_with_tables(target_table=True))
        return set(ev.TRAINED_METRICS)

    def evaluate(self, task: EvalTask) -> EvalOutcome:
        if ev.is_table(task.measurement):
            return ev.evaluate_with_tables(task)
        return ev.evaluate_trained(task)

    def rebuild(
        self, family: ModelFamily, config: Mapping[str, Any], settings: Mapping[str, Any], seed: int
    ) -> Rebuilt:
        from hwsearch.models import TrainSettings, build_candidate, get_source
        from hwsearch.workers.ort_eval import trained_source

        train = TrainSettings(**{k: v for k, v in settings.items() if k != "type"})
        built = build_candidate(family, config, train, seed)
        example = family.example_input_for(config, 1)
        source = get_source(family.data_source or "")
        return Rebuilt(
            weights=built.float_model,
            deployed=source.exported(built.deploy_model, seed, example),
            portable=source.exported(built.float_model, seed, example).eval(),
            example=example,
            kernel_path=built.kernel_path,
            how_built=f"trained with {asdict(train)} and seed {seed}; test accuracy of this "
            f"rebuilt model: {built.accuracy:.4f}",
            quality={"accuracy": built.accuracy},
            inputs=source.inputs,
            runtime_source=trained_source(family, config, built, train, seed),
        )


class TableEvaluationKind(EvaluationKind):
    """``accuracy`` read from a table by the family's table key; timed here unless the
    target is a table too."""

    type = "table"
    doc = "'table' (quality looked up in a table)"
    runtimes = frozenset({"torch", "onnxruntime"})  # the untrained network, timed in fp32

    @property
    def settings_model(self) -> SettingsModel:
        return TableEvaluation

    def produces(self, family: ModelFamily, settings: BaseModel, *, timed_here: bool) -> set[str]:
        return set(ev.metrics_with_tables(target_table=not timed_here))

    def evaluate(self, task: EvalTask) -> EvalOutcome:
        return ev.evaluate_with_tables(task)

    def rebuild(
        self, family: ModelFamily, config: Mapping[str, Any], settings: Mapping[str, Any], seed: int
    ) -> Rebuilt:
        rebuilt = super().rebuild(family, config, settings, seed)
        rebuilt.how_built = (
            "not trained here: the quality figures come from a published table, so the "
            "network is exported with freshly initialised weights for you to train"
        )
        return rebuilt


class LMEvaluationKind(EvaluationKind):
    """Language models: trained on the bundled corpus, timed as a server runs them."""

    type = "lm"
    doc = "'lm' (language models of family transformer)"

    @property
    def settings_model(self) -> SettingsModel:
        return LMEvaluation

    def problems(self, family: ModelFamily, settings: BaseModel) -> list[tuple[str, str]]:
        from hwsearch.models.transformer import TransformerFamily

        if isinstance(family, TransformerFamily):
            return []
        return [
            (
                "evaluation.type",
                f"'lm' evaluates language models (family transformer), not {family.name!r}",
            )
        ]

    def produces(self, family: ModelFamily, settings: BaseModel, *, timed_here: bool) -> set[str]:
        return set(ev.LM_METRICS)

    def evaluate(self, task: EvalTask) -> EvalOutcome:
        from hwsearch.models import get_family
        from hwsearch.models.transformer import TransformerFamily

        family = get_family(task.family)
        if not isinstance(family, TransformerFamily):
            raise HwsearchError(f"an LM evaluation needs family 'transformer', not {family.name!r}")
        return ev.evaluate_lm(task, family)

    def rebuild(
        self, family: ModelFamily, config: Mapping[str, Any], settings: Mapping[str, Any], seed: int
    ) -> Rebuilt:
        from hwsearch.models.lm_data import char_data
        from hwsearch.models.lm_pipeline import LMSettings, build_lm
        from hwsearch.models.transformer import TransformerFamily

        if not isinstance(family, TransformerFamily):
            raise HwsearchError(f"an LM evaluation needs family 'transformer', not {family.name!r}")
        lm = LMSettings.from_dict(dict(settings))
        built = build_lm(family, config, lm, seed)
        example = char_data().val[: lm.prompt_len].unsqueeze(0)
        return Rebuilt(
            weights=built.model,
            deployed=built.model,
            portable=built.model,
            example=example,
            kernel_path="+".join(sorted(set(built.layer_kinds.values()))) or "fp32-dense",
            how_built=f"trained with {asdict(lm)} and seed {seed} on the bundled corpus; "
            f"validation perplexity of this rebuilt model: {built.perplexity:.4f}",
            quality={"perplexity": built.perplexity, "accuracy": built.accuracy},
            inputs="It takes token ids of the bundled character corpus (integers, one "
            "per character) and returns next-token logits.",
        )


TRAIN = register_evaluation(TrainEvaluation())
TABLE = TableEvaluationKind()
register_evaluation(TABLE)
LM = register_evaluation(LMEvaluationKind())

from hwsearch.workers import python_kind as _python_kind  # noqa: E402,F401  (registers "python")
