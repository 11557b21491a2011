"""One candidate of the user's own model, as a plain function over the user's callables.

``build(config)`` (the user's weights loaded) → :func:`~.compress.compress` by the per-layer
rules → calibrate (the user's ``calibration(context)`` batches feed the activation
observers; the example input otherwise) → ``finetune(model, context)`` if given →
``evaluate(model, context)`` → :func:`~.materialize.materialize` → latency by
:func:`hwsearch.hardware.measure_latency`. :func:`run_candidate` returns the metrics, the
compressed weights as bytes (for :class:`hwsearch.artifacts.ArtifactStore`), the per-layer
counts and features, and the time each stage took, split into the user's time and
hwsearch's own.

An exception in the user's code becomes a :class:`Failure` with its stage and traceback: the
caller (a worker) stores it as a failed candidate and goes on. :func:`dry_run` is the check a
spec gets before any candidate runs: it builds one config and calls the user's code once on
it, so that a bad ``build``, ``input_shape`` or ``evaluate`` is a
:class:`~hwsearch.errors.SpecError` naming the field.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hwsearch.errors import SpecError
from hwsearch.hardware.measure import LatencyMeasurement, MeasureSettings, measure_latency
from hwsearch.hardware.targets import CPU, Target
from hwsearch.models.compression import ActFakeQuant, calibrate_activations
from hwsearch.models.custom.compress import CompressReport, bake, compress
from hwsearch.models.custom.context import Context
from hwsearch.models.custom.counts import LayerCount, feature_vector, layer_counts
from hwsearch.models.custom.materialize import Materialized, materialize
from hwsearch.models.custom.rules import LayerRule, resolve_rules
from hwsearch.models.custom.weights import dump_weights

DIRECTIONS = ("maximize", "minimize")
Build = Callable[[dict[str, Any]], nn.Module]
Evaluate = Callable[[nn.Module, Context], Mapping[str, Any]]
Finetune = Callable[[nn.Module, Context], Any]
Calibration = Callable[[Context], Iterable[Any]]
ExampleInput = Callable[[int], torch.Tensor]


@dataclass(frozen=True)
class UserModel:
    """The user's code and declarations (``family`` and ``evaluation`` of the spec)."""

    build: Build
    evaluate: Evaluate
    metrics: Mapping[str, str]
    input_shape: tuple[int, ...] | None = None
    example_input: ExampleInput | None = None
    finetune: Finetune | None = None
    calibrate: Calibration | None = None

    def __post_init__(self) -> None:
        if (self.input_shape is None) == (self.example_input is None):
            raise SpecError(
                "family.input_shape", "give exactly one of input_shape and example_input"
            )
        if self.input_shape is not None:
            shape = self.input_shape
            if (
                not isinstance(shape, list | tuple)
                or not shape
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
            ):
                raise SpecError(
                    "family.input_shape", f"must be a list of positive integers, got {shape!r}"
                )
            object.__setattr__(self, "input_shape", tuple(shape))
        if not isinstance(self.metrics, Mapping) or not self.metrics:
            raise SpecError("evaluation.metrics", "declare at least one metric: {name: maximize}")
        for name, direction in self.metrics.items():
            if direction not in DIRECTIONS:
                raise SpecError(
                    f"evaluation.metrics.{name}", f"{direction!r} is not one of {list(DIRECTIONS)}"
                )

    def example(self, batch_size: int = 1) -> torch.Tensor:
        """One input batch: zeros of ``input_shape`` or what ``example_input`` returns."""
        if self.input_shape is not None:
            return torch.zeros(batch_size, *self.input_shape)
        assert self.example_input is not None
        out = self.example_input(batch_size)
        if not isinstance(out, torch.Tensor) or out.dim() == 0:
            raise SpecError(
                "family.example_input",
                f"must return a tensor with a batch dimension, got {type(out).__name__}",
            )
        return out


@dataclass(frozen=True)
class Failure:
    """A user error in one stage: what to store with the failed candidate."""

    stage: str
    error_type: str
    message: str
    traceback: str

    def as_dict(self) -> dict[str, str]:
        return {
            "stage": self.stage,
            "error_type": self.error_type,
            "message": self.message,
            "traceback": self.traceback,
        }


@dataclass
class CandidateResult:
    """What one candidate produced. ``failure`` is set and the rest partial when it failed."""

    config: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    failure: Failure | None = None
    report: CompressReport | None = None
    weights: bytes | None = None
    counts: list[LayerCount] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    latency: LatencyMeasurement | None = None
    kernel_path: str | None = None
    layer_paths: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the metrics of the fake-quantized simulation where ``metrics`` were evaluated on the
    #: deployed model instead (a runtime that quantizes itself); else None
    simulated_metrics: dict[str, float] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def ok(self) -> bool:
        return self.failure is None

    def user_seconds(self) -> float:
        """Time spent in the user's code (build, calibration, fine-tune, evaluate)."""
        return sum(self.timings.get(k, 0.0) for k in _USER_STAGES)

    def own_seconds(self) -> float:
        """hwsearch's own time (compress, bake, materialise, counts, serialise); the latency
        measurement is the point of the run and counts separately."""
        return sum(v for k, v in self.timings.items() if k not in _USER_STAGES and k != "measure")


_USER_STAGES = ("build", "calibrate", "finetune", "evaluate")


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """How a candidate runs: target, measurement, calibration, deadline."""

    target: Target = CPU
    measure: MeasureSettings | None = field(default_factory=MeasureSettings)  # None: no latency
    calibration_batches: int = 8  # at most this many batches of calibration(context)
    seed: int = 0
    deadline_s: float | None = None  # seconds from the start of the candidate
    keep_weights: bool = True
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: times the materialised model instead of :func:`measure_latency` (a worker opens its
    #: energy window around the timing this way); gets the model and a batch-1 example
    timer: Callable[[nn.Module, torch.Tensor], LatencyMeasurement] | None = None
    #: deploys the baked model on another runtime instead of :func:`materialize` (ONNX
    #: Runtime targets); gets the baked model (CPU), the rules, the calibration batches and
    #: a batch-1 example. Where it requantizes, ``evaluate`` runs again on what it returns.
    deploy: (
        Callable[
            [nn.Module, Mapping[str, LayerRule], Sequence[torch.Tensor], torch.Tensor],
            Materialized,
        ]
        | None
    ) = None


class _UserError(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _call(stage: str, timings: dict[str, float], fn: Callable[..., Any], *args: Any) -> Any:
    """Run user code; its exception becomes a :class:`_UserError` carrying the traceback."""
    start = time.perf_counter()
    try:
        return fn(*args)
    except Exception as exc:
        raise _UserError(
            Failure(
                stage=stage,
                error_type=type(exc).__name__,
                message=str(exc),
                traceback=traceback.format_exc(),
            )
        ) from exc
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def checked_model(obj: Any) -> nn.Module:
    """``obj`` if ``build`` returned a module; a :class:`SpecError` on ``family.model`` else."""
    if not isinstance(obj, nn.Module):
        raise SpecError(
            "family.model", f"build(config) must return a torch.nn.Module, got {type(obj).__name__}"
        )
    return obj


def check_forward(model: nn.Module, example: torch.Tensor) -> Any:
    """One forward pass of ``example``; a :class:`SpecError` on the input field if it fails."""
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            out = model(example)
        model.train(was)
        return out
    except Exception as exc:
        raise SpecError(
            "family.input_shape",
            f"the model rejects an input of shape {tuple(example.shape)}: "
            f"{type(exc).__name__}: {exc}",
        ) from exc


def checked_metrics(result: Any, declared: Mapping[str, str]) -> dict[str, float]:
    """The declared metrics of what ``evaluate`` returned, as floats.

    A :class:`SpecError` on ``evaluation.evaluate`` when it is not a dict, lacks a declared
    metric or gives one that is not a finite number. Undeclared keys are kept if numeric.
    """
    if not isinstance(result, Mapping):
        shape = ", ".join(f"{name!r}: ..." for name in declared)
        given = repr(result)
        given = given if len(given) <= 40 else given[:37] + "..."
        raise SpecError(
            "evaluation.evaluate",
            f"must return a dict of the declared metrics by name, {{{shape}}}, "
            f"got {type(result).__name__} {given}",
        )
    missing = [m for m in declared if m not in result]
    if missing:
        raise SpecError(
            "evaluation.evaluate",
            f"returned {sorted(map(str, result))} but not the declared metric(s) {missing}",
        )
    out: dict[str, float] = {}
    for key, value in result.items():
        number = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
        ok = isinstance(number, int | float) and not isinstance(number, bool)
        if not ok or not math.isfinite(float(number)):
            if key in declared:
                raise SpecError(
                    "evaluation.evaluate", f"metric {key!r} is {value!r}, not a finite number"
                )
            continue
        out[str(key)] = float(number)
    return out


def _context(
    code: UserModel,
    config: Mapping[str, Any],
    settings: PipelineSettings,
    rules: Mapping[str, LayerRule],
    logger: logging.Logger,
    **ids: Any,
) -> Context:
    deadline = None if settings.deadline_s is None else time.monotonic() + settings.deadline_s
    return Context(
        seed=settings.seed,
        device=settings.target.device,
        config=config,
        logger=logger,
        deadline=deadline,
        compression={k: v.as_dict() for k, v in rules.items()},
        extras=settings.extras,
        **ids,
    )


def _batches(
    code: UserModel, ctx: Context, limit: int, timings: dict[str, float]
) -> list[torch.Tensor]:
    if code.calibrate is None:
        return [code.example(1)]
    iterable = _call("calibrate", timings, code.calibrate, ctx)
    out: list[torch.Tensor] = []
    start = time.perf_counter()
    try:
        for batch in iterable:
            x = batch[0] if isinstance(batch, list | tuple) else batch
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"calibration yielded a {type(x).__name__}, not a tensor")
            out.append(x.to(ctx.device))
            if len(out) >= limit:
                break
    except Exception as exc:
        raise _UserError(
            Failure("calibrate", type(exc).__name__, str(exc), traceback.format_exc())
        ) from exc
    finally:
        timings["calibrate"] = timings.get("calibrate", 0.0) + time.perf_counter() - start
    if not out:
        raise _UserError(Failure("calibrate", "ValueError", "calibration yielded no batch", ""))
    return out


def calibration_batches(code: UserModel, ctx: Context, limit: int, seed: int) -> list[torch.Tensor]:
    """The calibration batches a candidate is calibrated on (as :func:`run_candidate` takes
    them, seeded alike), for a runtime that calibrates again (export to ONNX Runtime)."""
    _seed_everything(seed)
    try:
        return _batches(code, ctx, limit, {})
    except _UserError as err:
        raise SpecError("evaluation.calibrate", err.failure.message) from None


def dry_run(
    code: UserModel,
    config: Mapping[str, Any],
    layers: Mapping[str, Mapping[str, Any]],
    *,
    call_evaluate: bool = True,
    settings: PipelineSettings | None = None,
) -> dict[str, LayerRule]:
    """Check the user's code on one config before any candidate runs; returns the rules.

    Raises :class:`SpecError` for: ``build`` not returning a module (``family.model``); the
    model rejecting the example input (``family.input_shape``); a bad or unmatched glob
    (``layers.<glob>``); with ``call_evaluate``, ``evaluate`` returning a non-dict or missing
    a declared metric (``evaluation.evaluate``). An exception inside the user's code is a
    :class:`SpecError` on the field of the callable that raised it.
    """
    settings = settings or PipelineSettings(measure=None)
    fields = {
        "build": "family.model",
        "evaluate": "evaluation.evaluate",
        "example_input": "family.example_input",
    }
    timings: dict[str, float] = {}
    try:
        _seed_everything(settings.seed)
        model = checked_model(_call("build", timings, code.build, dict(config)))
        example = _call("example_input", timings, code.example, 1)
        check_forward(model, example)
        rules = resolve_rules(model, layers)
        if call_evaluate:
            ctx = _context(code, config, settings, rules, logging.getLogger("hwsearch.user"))
            checked_metrics(
                _call("evaluate", timings, code.evaluate, model, ctx.at("evaluate")), code.metrics
            )
    except _UserError as err:
        f = err.failure
        raise SpecError(
            fields.get(f.stage, f.stage),
            f"raised {f.error_type}: {f.message} (in the check of one config before the "
            f"search, {dict(config)!r})",
        ) from None
    return rules


def run_candidate(
    code: UserModel,
    config: Mapping[str, Any],
    layers: Mapping[str, Mapping[str, Any]],
    settings: PipelineSettings | None = None,
    *,
    logger: logging.Logger | None = None,
    candidate_id: str | None = None,
    job_id: str | None = None,
) -> CandidateResult:
    """Run one candidate (see the module docstring). Never raises for the user's errors:
    they come back as ``result.failure``. hwsearch's own bugs still raise."""
    settings = settings or PipelineSettings()
    logger = logger or logging.getLogger("hwsearch.user")
    result = CandidateResult(config=dict(config))
    timings = result.timings
    device = settings.target.device
    try:
        _seed_everything(settings.seed)
        model = _call("build", timings, code.build, dict(config))
        with _stage("build", timings):
            model = checked_model(model).to(device)
            example = code.example(1).to(device)
        with _stage("compress", timings):
            rules = resolve_rules(model, layers)
            result.report = compress(model, rules, example)
        ctx = _context(
            code, config, settings, rules, logger, candidate_id=candidate_id, job_id=job_id
        )
        _seed_everything(settings.seed)
        batches = _batches(code, ctx.at("calibrate"), settings.calibration_batches, timings)
        with _stage("observe", timings):
            if any(isinstance(m, ActFakeQuant) for m in model.modules()):
                calibrate_activations(model, batches)
        if code.finetune is not None:
            _seed_everything(settings.seed)
            model.train()
            _call("finetune", timings, code.finetune, model, ctx.at("finetune"))
        model.eval()
        _seed_everything(settings.seed)
        raw = _call("evaluate", timings, code.evaluate, model, ctx.at("evaluate"))
        with _stage("evaluate", timings, timed=False):
            result.metrics = checked_metrics(raw, code.metrics)
        with _stage("counts", timings):
            result.counts = layer_counts(model, example)
            result.features = feature_vector(model, result.counts)
        if settings.keep_weights:
            with _stage("serialise", timings):
                result.weights = dump_weights(model)
        with _stage("materialize", timings):
            baked = bake(model)
            mat: Materialized
            if settings.deploy is not None:
                mat = settings.deploy(baked.cpu(), rules, [b.cpu() for b in batches], example)
            else:
                mat = materialize(
                    baked.cpu() if settings.target.kind == "cpu" else baked,
                    rules,
                    [b.to(device) for b in batches],
                    device_kind=settings.target.kind,
                )
        result.kernel_path, result.layer_paths, result.notes = mat.kernel_path, mat.paths, mat.notes
        if mat.requantized:  # quality of what runs, not of the simulation
            _seed_everything(settings.seed)
            raw = _call("evaluate", timings, code.evaluate, mat.model, ctx.at("evaluate"))
            with _stage("evaluate", timings, timed=False):
                result.simulated_metrics = result.metrics
                result.metrics = checked_metrics(raw, code.metrics)
        if settings.measure is not None:
            with _stage("measure", timings):
                if settings.timer is not None:
                    result.latency = settings.timer(mat.model, example)
                else:
                    result.latency = measure_latency(
                        mat.model, example, settings.target, settings.measure
                    )
            result.metrics.setdefault("latency_ms", result.latency.median_ms)
    except _UserError as err:
        result.failure = err.failure
    return result


@contextlib.contextmanager
def _stage(name: str, timings: dict[str, float], *, timed: bool = True) -> Iterator[None]:
    """Time one of hwsearch's stages; an exception there (the model's own forward pass runs in
    most of them, a rule this config's shapes cannot take) fails the candidate, not the
    caller, with its traceback."""
    start = time.perf_counter()
    try:
        yield
    except _UserError:
        raise
    except Exception as exc:
        raise _UserError(
            Failure(name, type(exc).__name__, str(exc), traceback.format_exc())
        ) from exc
    finally:
        if timed:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
