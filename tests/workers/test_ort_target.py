"""Searches on ``ort:cpu`` end to end (real training, real ONNX export, real ORT
quantization and sessions), export of the ORT model, and bit-widths ORT cannot run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.errors import SpecErrors
from hwsearch.models import get_source
from hwsearch.search.spec import parse_spec
from hwsearch.service.cli import app

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "byo"


def _mlp_spec() -> dict[str, Any]:
    return {
        "name": "ort-tiny",
        "family": "mlp",
        "target": "ort:cpu",
        "space": {
            "depth": 1,
            "width": {"type": "choice", "values": [16, 32]},
            "weight_bits": {"type": "choice", "values": [8, 32]},
            "act_bits": {"type": "choice", "values": [8, 32]},
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "budget": {"evaluations": 4},
        "optimizer": {"name": "random"},
        "evaluation": {"epochs": 1, "finetune_epochs": 0},
        "measurement": {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "max_seconds": 2.0},
        "seed": 3,
    }


def _session_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    return float((logits.argmax(1) == y).mean())


def _run(spec: dict[str, Any], folder: Path) -> str:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{folder / 'jobs.db'}"
    result = runner.invoke(app, ["run", str(path), "--db", url, "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return url


def _export(url: str, candidate: int, out: Path) -> None:
    result = runner.invoke(app, ["export", "1", str(candidate), "--db", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model_ort.onnx").exists()


def test_mlp_search_on_ort_cpu_and_its_exported_ort_model(tmp_path: Path) -> None:
    url = _run(_mlp_spec(), tmp_path)
    candidates = [c for c in Store.open(url).list_candidates(1) if c.metrics]
    assert len(candidates) >= 2
    quantized = None
    for c in candidates:
        latency = c.metrics["latency_ms"]
        env = latency.details["environment"]
        assert env["ort_version"] == ort.__version__
        assert env["execution_provider"] == "CPUExecutionProvider"
        assert env["graph_optimization_level"] == "ORT_ENABLE_ALL"
        assert env["intra_op_num_threads"] == 1 and env["inter_op_num_threads"] == 1
        assert latency.details["kernel_path"].startswith("ort-")
        accuracy = c.metrics["accuracy"]
        int8 = c.config["weight_bits"][0] <= 8
        assert accuracy.details["quality_model"] == ("ort-quantized" if int8 else "simulated")
        if int8:
            assert "simulated_accuracy" in accuracy.details
            quantized = c
    assert quantized is not None, "seed 3's random sample holds an int8 candidate"
    out = tmp_path / "export"
    _export(url, quantized.id, out)
    split = get_source("digits").split(3)
    x = split.x_test.reshape(-1, 64).numpy()
    stored = quantized.metrics["accuracy"].value
    assert _session_accuracy(out / "model_ort.onnx", x, split.y_test.numpy()) == pytest.approx(
        stored, abs=1e-6
    )
    assert "## ONNX Runtime" in (out / "README.md").read_text()


def test_own_model_search_on_ort_cpu_and_its_exported_ort_model(tmp_path: Path) -> None:
    folder = tmp_path / "byo"
    folder.mkdir()
    shutil.copy(EXAMPLE / "my_models.py", folder)
    spec = yaml.safe_load((EXAMPLE / "byo.yaml").read_text())
    spec["target"] = "ort:cpu"
    spec["budget"] = {"evaluations": 2}
    spec["optimizer"] = {"name": "random"}
    spec["evaluation"].pop("finetune")
    spec["space"] = {
        "width": 32,
        "layers": {
            "[024]": {
                "weight_bits": {"type": "choice", "values": [8, 32]},
                "act_bits": {"type": "choice", "values": [8, 32]},
            }
        },
    }
    spec["constraints"] = []
    spec["measurement"] = {"warmup": 2, "min_repeats": 5, "max_repeats": 10}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{folder / 'jobs.db'}"
    result = runner.invoke(app, ["run", str(folder / "spec.yaml"), "--db", url])
    assert result.exit_code == 0, result.output
    store = Store.open(url)
    front = store.latest_front(1)
    assert front is not None and front.points
    on_front = {p.candidate_id for p in front.points}
    # weights of candidates off the front are dropped when the job ends (keep_weights: front)
    chosen = next(c for c in store.list_candidates(1) if c.id in on_front)
    accuracy = chosen.metrics["accuracy"]
    kernel = chosen.metrics["latency_ms"].details["kernel_path"]
    expected = "simulated" if kernel == "ort-fp32" else "ort-quantized"
    assert accuracy.details["quality_model"] == expected
    out = tmp_path / "export"
    _export(url, chosen.id, out)
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    got = _session_accuracy(out / "model_ort.onnx", x[1200:] / 16.0, y[1200:])
    assert got == pytest.approx(accuracy.value, abs=1e-6)


def test_activation_bits_ort_cannot_run_are_a_spec_error_naming_the_knob() -> None:
    spec = _mlp_spec()
    spec["space"]["act_bits"] = {"type": "choice", "values": [8, 4]}
    with pytest.raises(SpecErrors) as info:
        parse_spec(spec)
    fields = {e.field: e.reason for e in info.value.errors}
    assert "space.act_bits.values[1]" in fields
    assert "act_bits 4" in fields["space.act_bits.values[1]"]
    spec["space"]["act_bits"] = 2  # a constant too
    with pytest.raises(SpecErrors, match=r"space\.act_bits"):
        parse_spec(spec)
    spec["target"] = "cpu"  # PyTorch simulates them
    parse_spec(spec)


def test_own_model_per_layer_activation_bits_are_refused_on_ort(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "my_models.py", tmp_path)
    spec = yaml.safe_load((EXAMPLE / "byo.yaml").read_text())
    spec["target"] = "ort:cpu"
    spec["space"]["layers"]["[24]"]["act_bits"] = {"type": "choice", "values": [4, 8]}
    with pytest.raises(SpecErrors) as info:
        parse_spec(spec, base_dir=tmp_path)
    assert [e.field for e in info.value.errors] == ["space.layers[[24]].act_bits.values[0]"]


def test_an_evaluation_that_cannot_deploy_on_ort_is_refused_on_the_target() -> None:
    spec = {
        "name": "lm-on-ort",
        "family": "transformer",
        "target": "ort:cpu",
        "space": {"layers": {"type": "int", "low": 1, "high": 2}},
        "objectives": [{"metric": "perplexity", "direction": "minimize"}],
        "budget": {"evaluations": 2},
    }
    with pytest.raises(SpecErrors) as info:
        parse_spec(spec)
    (error,) = info.value.errors
    assert error.field == "target" and "onnxruntime" in error.reason
