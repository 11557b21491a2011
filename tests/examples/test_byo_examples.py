"""The examples of your own model (examples/byo_*), each on model classes hwsearch did not
write: pytorchcv's CIFAR ResNet-20, a Hugging Face Llama, a user's module in a file.

Each runs with a tiny budget: one candidate through the pipeline with the spec's callables
(resolved from the spec file's folder, as a job does), then the spec itself as a job of two
evaluations, or the script of the Python API. An example whose package is missing is
skipped, saying which package and how to install it (``pip install -e ".[examples]"``; for
pytorchcv ``pip install --no-deps pytorchcv``, as ``make install`` does).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hwsearch.hardware.measure import MeasureSettings
from hwsearch.models.custom.callables import resolve
from hwsearch.models.custom.pipeline import PipelineSettings, UserModel, dry_run, run_candidate

from .conftest import EXAMPLES, tiny_env

pytestmark = pytest.mark.slow  # each trains a real model for a few steps
FAST = MeasureSettings(warmup=1, min_repeats=3, max_repeats=5, max_seconds=0.5)
FIELDS = {"model": "family.model", "example_input": "family.example_input"}


def _needs(package: str, how: str) -> None:
    pytest.importorskip(package, reason=f"{package} is not installed ({how})")


def _spec(name: str) -> tuple[dict[str, Any], Path]:
    folder = EXAMPLES / name
    return yaml.safe_load((folder / "spec.yaml").read_text()), folder


def _user_model(spec: dict[str, Any], folder: Path) -> UserModel:
    """The spec's family and evaluation as the pipeline's ``UserModel``."""
    family, evaluation = spec["family"], spec["evaluation"]

    def code(section: dict[str, Any], key: str, field: str) -> Any:
        ref = section.get(key)
        return None if ref is None else resolve(field, ref, folder=folder).obj

    shape = family.get("input_shape")
    return UserModel(
        build=code(family, "model", "family.model"),
        example_input=code(family, "example_input", "family.example_input"),
        input_shape=tuple(shape) if shape else None,
        evaluate=code(evaluation, "evaluate", "evaluation.evaluate"),
        finetune=code(evaluation, "finetune", "evaluation.finetune"),
        calibrate=code(evaluation, "calibrate", "evaluation.calibrate"),
        metrics=evaluation["metrics"],
    )


def _run_spec_as_job(spec: dict[str, Any], folder: Path, tmp_path: Path) -> Any:
    """The example's spec with a budget of two evaluations, run as an ordinary job (without
    its constraints: a few training steps do not reach the accuracy they ask for)."""
    api = pytest.importorskip(
        "hwsearch.search.api", reason="this build has no `evaluation: type: python` yet"
    )
    from hwsearch.db import Store
    from hwsearch.search.driver import run_job
    from hwsearch.search.spec import parse_spec

    data = {
        **spec,
        "budget": {"evaluations": 2},
        "constraints": [],
        "optimizer": {"name": "random"},
        "measurement": {"threads": 1, "warmup": 1, "min_repeats": 3, "max_seconds": 0.5},
    }
    store = Store.open(f"sqlite:///{tmp_path / 'example.db'}")
    try:
        job = run_job(parse_spec(data, base_dir=folder), store)
        candidates = store.list_candidates(job.id)
        return api.front_of(store, job.id), candidates
    finally:
        store.close()


# --------------------------------------------------------------------------------------------
# (a) pytorchcv's CIFAR ResNet-20 on digits resized to 32x32x3


def test_resnet20_candidate_prunes_quantizes_and_finetunes() -> None:
    _needs("pytorchcv", "pip install --no-deps pytorchcv")
    spec, folder = _spec("byo_resnet20")
    code = _user_model(spec, folder)
    layers = {
        "features.stage*": {
            "sparsity": 0.5,
            "sparsity_pattern": "channel",
            "weight_bits": 8,
            "act_bits": 8,
        },
        "output": {"weight_bits": 8},
    }
    rules = dry_run(code, {"depth": 14, "width": 0.5}, layers)
    assert "features.stage3.unit2.body.conv2.conv" in rules and "output" in rules
    result = run_candidate(
        code, {"depth": 14, "width": 0.5}, layers, PipelineSettings(measure=FAST)
    )
    assert result.ok, result.failure and result.failure.traceback
    assert 0.0 <= result.metrics["accuracy"] <= 1.0 and result.metrics["latency_ms"] > 0
    assert result.report is not None and result.report.pruned_out  # shapes really shrank
    conv = "features.stage2.unit1.body.conv1.conv"
    before, after = result.report.pruned_out[conv]
    assert after < before
    assert "x86-int8-static" in (result.kernel_path or "")
    assert result.timings["finetune"] > 0 and result.weights


def test_resnet20_width_and_depth_reach_the_builder() -> None:
    _needs("pytorchcv", "pip install --no-deps pytorchcv")
    spec, folder = _spec("byo_resnet20")
    build = _user_model(spec, folder).build
    small, large = build({"depth": 8, "width": 0.5}), build({"depth": 20, "width": 1.0})
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) < count(large) / 10
    assert small(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_resnet20_spec_runs_as_a_job(tmp_path: Path) -> None:
    _needs("pytorchcv", "pip install --no-deps pytorchcv")
    spec, folder = _spec("byo_resnet20")
    front, candidates = _run_spec_as_job(spec, folder, tmp_path)
    assert len(candidates) == 2 and all(c.error is None for c in candidates), candidates
    assert all(c.status.value == "done" for c in candidates)
    assert front.points and all("accuracy" in p.metrics for p in front.points)
    for c in candidates:
        assert c.metrics["latency_ms"].provenance.value == "measured"
        assert set(c.config) >= {"depth", "width"}


# --------------------------------------------------------------------------------------------
# (b) a Hugging Face Llama built from a config


def test_llama_candidate_measures_ttft_decode_and_perplexity() -> None:
    _needs("transformers", 'pip install -e ".[examples]"')
    spec, folder = _spec("byo_llama")
    code = _user_model(spec, folder)
    layers = {
        "model.layers.*.mlp": {"sparsity": 0.5, "sparsity_pattern": "channel", "weight_bits": 8},
        "model.layers.*.self_attn": {"weight_bits": 8},
    }
    result = run_candidate(code, {"mlp": 128}, layers, PipelineSettings(measure=FAST))
    assert result.ok, result.failure and result.failure.traceback
    m = result.metrics
    vocab = 60  # a character model: untrained perplexity is about the vocabulary's size
    assert 1.0 < m["perplexity"] < vocab and math.isfinite(m["perplexity"])
    assert m["ttft_ms"] > 0 and m["decode_ms_per_token"] > 0 and m["latency_ms"] > 0
    assert result.report is not None
    # the MLP's hidden width halves (gate and up together, down's inputs with them)
    assert result.report.pruned_out["model.layers.0.mlp.up_proj"] == (128, 64)
    assert result.report.pruned_in["model.layers.0.mlp.down_proj"] == (128, 64)
    assert "int8-dynamic-linear" in (result.kernel_path or "")


def test_llama_refuses_channel_rules_inside_attention() -> None:
    _needs("transformers", 'pip install -e ".[examples]"')
    spec, folder = _spec("byo_llama")
    code = _user_model(spec, folder)
    bad = {"model.layers.*.self_attn": {"sparsity": 0.5, "sparsity_pattern": "channel"}}
    result = run_candidate(code, {"mlp": 128}, bad, PipelineSettings(measure=None))
    assert result.failure is not None and result.failure.stage == "compress"
    assert "inside the attention module model.layers.0.self_attn" in result.failure.message


def test_llama_spec_runs_as_a_job(tmp_path: Path) -> None:
    _needs("transformers", 'pip install -e ".[examples]"')
    spec, folder = _spec("byo_llama")
    front, candidates = _run_spec_as_job(spec, folder, tmp_path)
    assert len(candidates) == 2 and all(c.error is None for c in candidates), candidates
    assert front.points
    for p in front.points:
        assert {"perplexity", "ttft_ms", "decode_ms_per_token"} <= set(p.metrics)


# --------------------------------------------------------------------------------------------
# (c) the user's own module in a file, driven by the Python API from a script


def test_own_module_script_searches_through_the_python_api(tmp_path: Path) -> None:
    pytest.importorskip("hwsearch.search.api", reason="this build has no hwsearch.search yet")
    db = f"sqlite:///{tmp_path / 'own.db'}"
    script = EXAMPLES / "byo_own" / "search.py"
    done = subprocess.run(
        [sys.executable, str(script), "--evaluations", "3", "--db", db],
        # the small net is cheap: enough steps that the script's constraint (accuracy >= 0.5)
        # leaves a front
        env=tiny_env(HWSEARCH_EXAMPLE_PRETRAIN_STEPS="150"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "front point(s) of 3" in done.stdout and " 0 front point(s)" not in done.stdout
    assert "latency_ms=" in done.stdout and "(measured)" in done.stdout
    from hwsearch.db import Store

    store = Store.open(db)
    try:
        (job,) = store.list_jobs()  # an ordinary job, as `hwsearch jobs` lists it
        assert len(store.list_candidates(job.id)) == 3
    finally:
        store.close()
