"""Specs as a database made before evaluation kinds stored them parse, store the same dict
again and keep their measurement context, so reuse across jobs still finds their values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hwsearch.search.driver import measurement_context
from hwsearch.search.spec import parse_spec
from hwsearch.workers.kinds import kind_of

# ``JobSpec.to_dict()`` of examples/digits_cnn.yaml and examples/tiny_lm.yaml at f1d6307,
# with the measurement context that version computed for them.
STORED: list[tuple[str, str, str]] = [
    (
        '{"budget": {"evaluations": 48, "wall_time_s": 150.0}, "constraints": ["accuracy >= '
        '0.5"], "evaluation": {"batch_size": 64, "epochs": 4, "finetune_epochs": 1, '
        '"learning_rate": 0.05}, "family": "cnn", "measurement": {"batch_size": 1, '
        '"max_repeats": 200, "max_seconds": 10.0, "min_repeats": 20, "target_cv": 0.05, '
        '"threads": 1, "warmup": 10}, "name": "digits-cnn", "objectives": [{"direction": '
        '"maximize", "metric": "accuracy"}, {"direction": "minimize", "metric": '
        '"latency_ms"}, {"direction": "minimize", "metric": "size_bytes"}], "optimizer": '
        '{"name": "optuna-nsga2", "population_size": 8}, "seed": 0, "space": {"act_bits": '
        '{"type": "choice", "values": [8, 32]}, "activation": "relu", "blocks": {"high": 2, '
        '"log": false, "low": 1, "step": 1, "type": "int"}, "kernel_size": {"type": '
        '"choice", "values": [3, 5]}, "sparsity": {"high": 0.75, "log": false, "low": 0.0, '
        '"step": 0.25, "type": "float"}, "sparsity_pattern": {"type": "choice", "values": '
        '["unstructured", "2:4", "channel"]}, "stages": {"high": 3, "log": false, "low": 1, '
        '"step": 1, "type": "int"}, "weight_bits": {"per_layer": 3, "type": "choice", '
        '"values": [4, 8, 32]}, "width": {"per_layer": 3, "type": "choice", "values": [8, '
        '16, 32]}}, "target": "cpu"}',
        "train",
        "5559d6d94853a3ac2a4ca698e7786a17b589d35ee06e397511a9ef61508af902",
    ),
    (
        '{"budget": {"evaluations": 16, "wall_time_s": 180.0}, "constraints": [], '
        '"evaluation": {"batch_size": 16, "eval_windows": 32, "finetune_steps": 0, '
        '"learning_rate": 0.003, "new_tokens": 32, "prompt_len": 32, "seq_len": 64, '
        '"steps": 100, "type": "lm"}, "family": "transformer", "measurement": '
        '{"batch_size": 4, "max_repeats": 100, "max_seconds": 2.0, "min_repeats": 15, '
        '"target_cv": 0.05, "threads": 1, "warmup": 5}, "name": "tiny-lm", "objectives": '
        '[{"direction": "minimize", "metric": "perplexity"}, {"direction": "minimize", '
        '"metric": "ttft_ms"}, {"direction": "minimize", "metric": "decode_ms_per_token"}], '
        '"optimizer": {"name": "optuna-nsga2", "population_size": 8}, "seed": 0, "space": '
        '{"activation": {"type": "choice", "values": ["gelu", "silu"]}, "d_model": {"type": '
        '"choice", "values": [32, 64]}, "heads": {"type": "choice", "values": [2, 4]}, '
        '"kv_heads": {"type": "choice", "values": [1, 2, 4]}, "layers": {"high": 3, "log": '
        'false, "low": 1, "step": 1, "type": "int"}, "mlp_ratio": {"type": "choice", '
        '"values": [2.0, 4.0]}, "weight_bits": {"type": "choice", "values": [4, 8, 32]}}, '
        '"target": "cpu"}',
        "lm",
        "ee0f7b1454cddef3d73e2766730f8846a09b21a1a570daee9e7167e086971ab9",
    ),
]


@pytest.mark.parametrize(("stored", "kind", "context"), STORED)
def test_a_stored_spec_reads_as_before(stored: str, kind: str, context: str) -> None:
    data: dict[str, Any] = json.loads(stored)
    spec = parse_spec(data)
    assert kind_of(spec.evaluation).type == kind
    assert spec.to_dict() == data
    assert measurement_context(spec) == context


def test_a_transformer_without_evaluation_gets_its_default_kind() -> None:
    data: dict[str, Any] = json.loads(STORED[1][0])
    del data["evaluation"]
    assert kind_of(parse_spec(data).evaluation).type == "lm"
    data["evaluation"] = {"steps": 5}  # no type: the family's default, with these settings
    spec = parse_spec(data)
    assert kind_of(spec.evaluation).type == "lm" and spec.to_dict()["evaluation"]["steps"] == 5
