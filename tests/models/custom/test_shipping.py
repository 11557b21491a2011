"""A candidate of the user's own model runs in a fresh process, as pool and Ray workers do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest

import hwsearch
from hwsearch.hardware.measure import MeasureSettings
from hwsearch.models.custom.callables import check_shippable, resolve
from hwsearch.models.custom.pipeline import PipelineSettings, UserModel

USER_CODE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(12, width), nn.ReLU(), nn.Linear(width, width))
        self.classifier = nn.Linear(width, 3)

    def forward(self, x):
        return self.classifier(torch.relu(self.features(x)))


def build(config):
    torch.manual_seed(0)
    return Net(config["width"])


def evaluate(model, context):
    g = torch.Generator().manual_seed(context.seed)
    x = torch.randn(32, 12, generator=g)
    with torch.no_grad():
        return {"accuracy": float((model(x).argmax(1) == 0).float().mean())}
"""

RUNNER = """
import json, sys
import cloudpickle
import pytest
from hwsearch.models.custom.pipeline import run_candidate
code, config, layers, settings = cloudpickle.loads(sys.stdin.buffer.read())
result = run_candidate(code, config, layers, settings)
print(json.dumps({"ok": result.ok, "metrics": result.metrics,
                  "pruned": result.report.pruned_out if result.report else None,
                  "failure": result.failure.as_dict() if result.failure else None}))
"""


@pytest.mark.slow
def test_folder_callables_run_in_a_fresh_process(tmp_path: Path) -> None:
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "user_models_ship.py").write_text(USER_CODE)
    build = resolve("family.model", "user_models_ship:build", folder=folder)
    evaluate = resolve("evaluation.evaluate", "user_models_ship:evaluate", folder=folder)
    for ref in (build, evaluate):
        check_shippable(ref)
    code = UserModel(
        build=build.obj, evaluate=evaluate.obj, metrics={"accuracy": "maximize"}, input_shape=(12,)
    )
    layers = {"features.0": {"sparsity": 0.5, "sparsity_pattern": "channel", "weight_bits": 8}}
    settings = PipelineSettings(
        seed=3, measure=MeasureSettings(warmup=1, min_repeats=2, max_repeats=3, max_seconds=0.5)
    )
    payload = cloudpickle.dumps((code, {"width": 16}, layers, settings))
    root = str(Path(hwsearch.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=payload,
        capture_output=True,
        cwd="/",  # neither the spec's folder nor the tests are importable there
        env=env,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert result["ok"], result["failure"]
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0 and result["metrics"]["latency_ms"] > 0
    assert result["pruned"]["features.0"] == [16, 8]
