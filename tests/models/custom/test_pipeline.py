"""The candidate pipeline over the user's callables: results, failures, and the dry run."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
import torch
from torch import nn

from hwsearch.errors import SpecError
from hwsearch.hardware.measure import MeasureSettings
from hwsearch.models.custom.context import Context
from hwsearch.models.custom.pipeline import (
    PipelineSettings,
    UserModel,
    checked_metrics,
    dry_run,
    run_candidate,
)
from hwsearch.models.custom.weights import load_weights

from .nets import DepthwiseNet

FAST = MeasureSettings(warmup=1, min_repeats=2, max_repeats=5, max_seconds=0.5)
g = torch.Generator().manual_seed(0)
X = torch.randn(64, 3, 8, 8, generator=g)
Y = (X.mean(dim=(1, 2, 3)) > 0).long() + 2 * (X[:, 0].mean(dim=(1, 2)) > 0).long()
SEEN: dict[str, object] = {}


def build(config: dict) -> nn.Module:
    torch.manual_seed(0)  # "the user's weights": the same every build
    model = DepthwiseNet()
    model.classifier = nn.Linear(64, config.get("classes", 4))
    return model


def evaluate(model: nn.Module, context: Context) -> dict:
    SEEN["context"] = context
    with torch.no_grad():
        acc = (model(X).argmax(1) == Y).float().mean().item()
    return {"accuracy": acc, "note": "text is dropped"}


def finetune(model: nn.Module, context: Context) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), Y).backward()
        opt.step()


def calibration(context: Context):
    return (X[i : i + 16] for i in range(0, 64, 16))


LAYERS = {
    "features.*": {"sparsity": 0.5, "sparsity_pattern": "channel", "weight_bits": 8, "act_bits": 8},
    "classifier": {"weight_bits": 8},
}
CODE = UserModel(
    build=build,
    evaluate=evaluate,
    metrics={"accuracy": "maximize"},
    input_shape=(3, 8, 8),
    finetune=finetune,
    calibrate=calibration,
)


def test_a_candidate_runs_end_to_end() -> None:
    settings = PipelineSettings(measure=FAST, seed=7, extras={"epochs": 1}, deadline_s=60)
    result = run_candidate(CODE, {"classes": 4}, LAYERS, settings, candidate_id="c1")
    assert result.ok, result.failure
    assert 0.0 <= result.metrics["accuracy"] <= 1.0 and "note" not in result.metrics
    assert result.latency is not None and result.metrics["latency_ms"] == result.latency.median_ms
    assert result.kernel_path == "x86-int8-static+int8-dynamic-linear"
    assert result.report is not None and result.report.pruned_out["features.0"] == (32, 16)
    assert result.features["count=depthwise"] == 1
    for stage in (
        "build",
        "compress",
        "calibrate",
        "finetune",
        "evaluate",
        "materialize",
        "measure",
    ):
        assert result.timings[stage] >= 0.0
    assert result.user_seconds() > 0 and result.own_seconds() > 0
    ctx = SEEN["context"]
    assert isinstance(ctx, Context)
    assert ctx.seed == 7 and ctx.stage == "evaluate" and ctx.candidate_id == "c1"
    assert ctx.config == {"classes": 4} and ctx.extras == {"epochs": 1}
    assert ctx.compression["classifier"]["weight_bits"] == 8
    assert ctx.device == torch.device("cpu") and 0 < (ctx.time_left() or 0) <= 60
    with pytest.raises(TypeError):
        ctx.config["classes"] = 5  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.seed = 1  # type: ignore[misc]


def test_stored_weights_give_the_same_accuracy_without_retraining() -> None:
    result = run_candidate(CODE, {}, LAYERS, PipelineSettings(measure=None))
    assert result.ok and result.weights is not None
    reloaded = load_weights(build({}), result.weights).eval()
    again = evaluate(reloaded, SEEN["context"])  # type: ignore[arg-type]
    assert again["accuracy"] == result.metrics["accuracy"]


def test_same_seed_same_result() -> None:
    a = run_candidate(CODE, {}, LAYERS, PipelineSettings(measure=None, seed=3))
    b = run_candidate(CODE, {}, LAYERS, PipelineSettings(measure=None, seed=3))
    assert a.metrics == b.metrics and a.weights == b.weights


def _raises(*_args: object) -> None:
    raise RuntimeError("user bug")


@pytest.mark.parametrize("stage", ["build", "finetune", "evaluate", "calibrate"])
def test_user_exceptions_become_failures_with_traceback(stage: str) -> None:
    field = {
        "build": "build",
        "finetune": "finetune",
        "evaluate": "evaluate",
        "calibrate": "calibrate",
    }
    code = dataclasses.replace(CODE, **{field[stage]: _raises})
    result = run_candidate(code, {}, LAYERS, PipelineSettings(measure=None))
    assert not result.ok and result.failure is not None
    assert result.failure.stage == stage and result.failure.error_type == "RuntimeError"
    assert "user bug" in result.failure.message and "_raises" in result.failure.traceback
    assert result.timings[stage] >= 0.0


def test_bad_evaluate_result_is_a_failed_candidate() -> None:
    code = dataclasses.replace(CODE, evaluate=lambda m, c: {"acc": 1.0})
    result = run_candidate(code, {}, LAYERS, PipelineSettings(measure=None))
    assert result.failure is not None and result.failure.stage == "evaluate"
    assert "declared metric" in result.failure.message


def test_calibration_yielding_nothing_fails_the_candidate() -> None:
    code = dataclasses.replace(CODE, calibrate=lambda c: iter(()))
    result = run_candidate(code, {}, LAYERS, PipelineSettings(measure=None))
    assert result.failure is not None and "no batch" in result.failure.message


# ----------------------------------------------------------------------------- dry run


def test_dry_run_returns_the_rules() -> None:
    rules = dry_run(CODE, {}, LAYERS)
    assert rules["classifier"].weight_bits == 8 and "features.0" in rules


@pytest.mark.parametrize(
    ("change", "layers", "field", "reason"),
    [
        ({"build": lambda c: "not a model"}, LAYERS, "family.model", "got str"),
        ({"build": _raises}, LAYERS, "family.model", "RuntimeError: user bug"),
        (
            {"input_shape": (5, 8, 8)},
            LAYERS,
            "family.input_shape",
            "rejects an input of shape (1, 5, 8, 8)",
        ),
        ({"evaluate": lambda m, c: [0.9]}, LAYERS, "evaluation.evaluate", "must return a dict"),
        (
            {"evaluate": lambda m, c: 0.9},
            LAYERS,
            "evaluation.evaluate",
            "must return a dict of the declared metrics by name, {'accuracy': ...}, got float 0.9",
        ),
        ({"evaluate": lambda m, c: {"acc": 0.9}}, LAYERS, "evaluation.evaluate", "['accuracy']"),
        (
            {"evaluate": lambda m, c: {"accuracy": math.nan}},
            LAYERS,
            "evaluation.evaluate",
            "not a finite",
        ),
        ({}, {"head.*": {"weight_bits": 8}}, "layers.head.*", "matches no"),
    ],
)
def test_dry_run_errors_name_the_field(change: dict, layers: dict, field: str, reason: str) -> None:
    code = dataclasses.replace(CODE, **change)
    with pytest.raises(SpecError) as info:
        dry_run(code, {}, layers)
    assert info.value.field == field and reason in info.value.reason


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_shape": None}, "family.input_shape"),
        ({"input_shape": (3, 0)}, "family.input_shape"),
        ({"example_input": lambda b: torch.zeros(b, 3, 8, 8)}, "family.input_shape"),
        ({"metrics": {}}, "evaluation.metrics"),
        ({"metrics": {"accuracy": "up"}}, "evaluation.metrics.accuracy"),
    ],
)
def test_declarations_are_checked(kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        dataclasses.replace(CODE, **kwargs)
    assert info.value.field == field


def test_example_input_callable() -> None:
    code = dataclasses.replace(
        CODE, input_shape=None, example_input=lambda b: torch.randn(b, 3, 8, 8)
    )
    assert dry_run(code, {}, LAYERS)
    bad = dataclasses.replace(CODE, input_shape=None, example_input=lambda b: 3)
    with pytest.raises(SpecError, match=r"family\.example_input"):
        dry_run(bad, {}, LAYERS)


def test_checked_metrics_accepts_tensors_and_ints() -> None:
    out = checked_metrics({"accuracy": torch.tensor(0.5), "n": 3}, {"accuracy": "maximize"})
    assert out == {"accuracy": 0.5, "n": 3.0}


def test_logger_is_the_given_one(caplog: pytest.LogCaptureFixture) -> None:
    def logging_eval(model: nn.Module, context: Context) -> dict:
        context.logger.info("evaluating %s", context.candidate_id)
        return evaluate(model, context)

    code = dataclasses.replace(CODE, evaluate=logging_eval)
    logger = logging.getLogger("hwsearch.test.user")
    with caplog.at_level(logging.INFO, logger="hwsearch.test.user"):
        run_candidate(
            code, {}, LAYERS, PipelineSettings(measure=None), logger=logger, candidate_id="c9"
        )
    assert "evaluating c9" in caplog.text


def test_a_rule_this_config_cannot_take_fails_the_candidate() -> None:
    result = run_candidate(
        CODE, {}, {"decoder.*": {"weight_bits": 8}}, PipelineSettings(measure=None)
    )
    assert result.failure is not None and result.failure.stage == "compress"
    assert result.failure.error_type == "SpecError" and "decoder.*" in result.failure.message


def test_a_model_failing_in_hwsearch_stages_fails_the_candidate() -> None:
    """The model's forward also runs inside hwsearch's stages (counts, materialise, measure):
    an error there is the candidate's failure, not the caller's exception."""

    class FailsOnBatchOne(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] == 1:
                raise ValueError("batch of one not supported")
            return self.fc(x)

    code = UserModel(
        build=lambda c: FailsOnBatchOne(),
        evaluate=lambda m, c: {"accuracy": 1.0},
        metrics={"accuracy": "maximize"},
        input_shape=(4,),
        calibrate=lambda c: [torch.randn(8, 4)],
    )
    result = run_candidate(code, {}, {}, PipelineSettings(measure=None))
    assert result.failure is not None and result.failure.stage == "counts"
    assert "batch of one" in result.failure.message and "forward" in result.failure.traceback
