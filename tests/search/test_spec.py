from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hwsearch.errors import SpecError, SpecErrors
from hwsearch.search.spec import (
    ChoiceVarSpec,
    FloatVarSpec,
    IntVarSpec,
    JobSpec,
    MeasurementSettings,
    TableEvaluation,
    TableMeasurement,
    load_spec,
    parse_spec,
)

DEMO_YAML = """\
name: digits-cnn
family: cnn
target: cpu
space:
  stages: {type: int, low: 1, high: 3}
  blocks: {type: int, low: 1, high: 2}
  width: {type: choice, values: [8, 16, 32], per_layer: 3}
  kernel_size: {type: choice, values: [3, 5]}
  activation: relu
  sparsity: {type: float, low: 0.0, high: 0.75, step: 0.25}
  sparsity_pattern: {type: choice, values: [unstructured, "2:4", channel]}
  weight_bits: {type: choice, values: [4, 8, 32], per_layer: 3}
  act_bits: {type: choice, values: [8, 32]}
objectives:
  - {metric: accuracy, direction: maximize}
  - {metric: latency_ms, direction: minimize, reference: 5.0}
  - {metric: size_bytes, direction: minimize}
constraints: ["latency_ms <= 5", "accuracy >= 0.5"]
budget: {evaluations: 32, wall_time_s: 170}
optimizer: {name: optuna-nsga2, population_size: 8}
evaluation: {epochs: 4, finetune_epochs: 1, batch_size: 64, learning_rate: 0.05}
measurement:
  {batch_size: 1, threads: 1, warmup: 10, min_repeats: 20, max_repeats: 200, target_cv: 0.05}
seed: 0
"""


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(SpecErrors) as info:
        parse_spec(data)
    assert all(isinstance(e, SpecError) for e in info.value.errors)
    return {e.field: e.reason for e in info.value.errors}


def test_good_spec_parses(toy_spec_data: dict[str, Any]) -> None:
    spec = parse_spec(toy_spec_data)
    assert spec.name == "toy-job"
    assert isinstance(spec.space["depth"], IntVarSpec)
    assert isinstance(spec.space["width"], ChoiceVarSpec)
    assert spec.space["width"].per_layer == 3
    assert isinstance(spec.space["dropout"], FloatVarSpec)
    assert spec.space["act"] == "relu"
    assert [o.direction for o in spec.get_objectives()] == ["maximize", "minimize"]
    assert spec.get_objectives()[1].reference == 5.0
    assert [str(c) for c in spec.get_constraints()] == ["latency_ms <= 5", "accuracy >= 0.5"]
    assert spec.budget.evaluations == 32 and spec.budget.wall_time_s == 170.0
    assert spec.optimizer.name == "optuna-nsga2"
    assert spec.optimizer.options == {"population_size": 8}
    # optional sections get their documented defaults
    assert spec.evaluation.epochs == 4 and spec.evaluation.learning_rate == 0.05
    assert spec.measurement.min_repeats == 20 and spec.measurement.max_repeats == 200
    assert spec.measurement.max_seconds == 10.0
    assert set(spec.variables()) == {"depth", "width", "bits", "dropout"}
    assert spec.constants() == {"act": "relu"}


def test_values_in_errors_are_spelled_as_the_spec_spells_them(
    toy_spec_data: dict[str, Any],
) -> None:
    """YAML and JSON write true, false and null, not Python's True, False and None."""
    data = copy.deepcopy(toy_spec_data)
    data["budget"] = {"evaluations": True}
    data["seed"] = None
    found = problems(data)
    assert found["budget.evaluations"] == "expected an integer, got true"
    assert found["seed"] == "expected an integer, got null"


def test_round_trip_through_json(toy_spec_data: dict[str, Any]) -> None:
    spec = parse_spec(toy_spec_data)
    stored = json.loads(json.dumps(spec.to_dict()))
    again = parse_spec(stored)
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert stored["optimizer"] == {"name": "optuna-nsga2", "population_size": 8}


def test_name_defaults_to_file_name_then_family(
    toy_spec_data: dict[str, Any], tmp_path: Path
) -> None:
    del toy_spec_data["name"]
    assert parse_spec(toy_spec_data).name == toy_spec_data["family"]
    path = tmp_path / "my-search.json"
    path.write_text(json.dumps(toy_spec_data))
    assert load_spec(path).name == "my-search"


def test_load_yaml_and_bad_yaml(toy_spec_data: dict[str, Any], tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(toy_spec_data))
    assert load_spec(path) == parse_spec(toy_spec_data)
    broken = tmp_path / "broken.yaml"
    broken.write_text("family: [cnn\nspace: {")
    with pytest.raises(SpecErrors) as info:
        load_spec(broken)
    assert "not valid YAML at line" in info.value.errors[0].reason
    with pytest.raises(SpecErrors, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_demo_spec_with_cnn_family(tmp_path: Path) -> None:
    path = tmp_path / "digits.yaml"
    path.write_text(DEMO_YAML)
    spec = load_spec(path)
    assert spec.name == "digits-cnn"
    assert spec.space["sparsity_pattern"] == ChoiceVarSpec(
        type="choice", values=["unstructured", "2:4", "channel"]
    )
    assert parse_spec(spec.to_dict()) == spec


def test_not_a_mapping() -> None:
    assert problems(["family", "cnn"]) == {"": "a job spec must be a mapping of fields, got list"}


def test_structural_errors_are_reported_together(toy_spec_data: dict[str, Any]) -> None:
    data = copy.deepcopy(toy_spec_data)
    del data["target"]
    data["budget"] = {}
    data["objectives"][0]["direction"] = "up"
    data["objectives"][1]["metric"] = "speed"
    data["seed"] = "zero"
    data["colour"] = "blue"
    data["space"]["depth"]["low"] = "1"
    data["space"]["bits"]["stride"] = 2
    data["measurement"] = {"min_repeats": 50, "max_repeats": 10}
    found = problems(data)
    assert found["target"] == "is required"
    assert found["budget"] == "give at least one of evaluations, wall_time_s"
    assert found["objectives[0].direction"] == "must be 'minimize' or 'maximize', got 'up'"
    assert found["objectives[1].metric"].startswith("unknown metric 'speed'; known: accuracy,")
    assert found["seed"] == "expected an integer, got 'zero'"
    assert found["colour"].startswith("unknown field; allowed: name, family, target, space")
    assert found["space.depth.low"] == "expected an integer, got '1'"
    assert found["space.bits.stride"] == "unknown field; allowed: type, values, per_layer"
    assert found["measurement"] == "max_repeats (10) is smaller than min_repeats (50)"
    assert len(found) == 9


def test_unknown_family_lists_valid_ones(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["family"] = "lstm"
    found = problems(toy_spec_data)
    assert set(found) == {"family"}
    assert found["family"].startswith("unknown model family 'lstm'; valid names:")
    assert "search-toy" in found["family"]


def test_unknown_knob_lists_the_family_knobs(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["space"]["heads"] = {"type": "int", "low": 1, "high": 4}
    assert problems(toy_spec_data) == {
        "space.heads": "not a knob of family 'search-toy'; knobs: depth, width, act, bits, dropout"
    }


def test_values_are_checked_by_the_knob(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["space"]["width"]["values"] = [8, 15, 32]
    toy_spec_data["space"]["bits"]["values"] = [4, 6]
    toy_spec_data["space"]["depth"]["high"] = 9
    toy_spec_data["space"]["act"] = "swish"
    found = problems(toy_spec_data)
    assert found == {
        "space.width.values[1]": "15 is not even",
        "space.bits.values[1]": "6 is not one of [4, 8, 32]",
        "space.depth.high": "9 is above the maximum 4",
        "space.act": "'swish' is not one of ['relu', 'tanh']",
    }


def test_variable_shape_errors(toy_spec_data: dict[str, Any]) -> None:
    space = toy_spec_data["space"]
    space["depth"] = {"type": "int", "low": 3, "high": 1}
    space["dropout"] = {"type": "float", "low": 0.0, "high": 0.5, "log": True}
    space["bits"] = {"type": "choice", "values": [4, 4]}
    space["act"] = {"type": "categorical", "values": ["relu"]}
    space["width"] = {"low": 2, "high": 8}
    found = problems(toy_spec_data)
    assert found == {
        "space.depth": "low (3) is greater than high (1)",
        "space.dropout": "log scale needs low > 0, got low=0",
        "space.bits.values": "4 is listed twice; values must be distinct",
        "space.act.type": "unknown variable type 'categorical'; use int, float or choice",
        "space.width": "a variable needs 'type: int', 'type: float' or 'type: choice'; "
        "a constant is a single value or a list",
    }


def test_per_layer_only_on_per_block_knobs(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["space"]["depth"]["per_layer"] = 2
    toy_spec_data["space"]["bits"]["per_layer"] = 0
    found = problems(toy_spec_data)
    assert found["space.bits.per_layer"] == "must be at least 1, got 0"
    # The other, well-formed entries are checked for meaning in the same pass.
    assert set(found) == {"space.bits.per_layer", "space.depth.per_layer"}
    toy_spec_data["space"]["bits"]["per_layer"] = 2
    found = problems(toy_spec_data)
    assert found == {
        "space.depth.per_layer": "knob 'depth' has one value for the whole model; "
        "per-block knobs of 'search-toy': bits, width"
    }


def test_wrong_variable_type_for_knob(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["space"]["act"] = {"type": "int", "low": 1, "high": 2}
    toy_spec_data["space"]["depth"] = {"type": "float", "low": 1, "high": 2}
    found = problems(toy_spec_data)
    assert found["space.act.type"].startswith("knob 'act' takes named values; use type: choice")
    assert found["space.depth.type"] == "knob 'depth' takes integers; use type: int or choice"


def test_constants(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["space"]["width"] = [8, 16, 7]
    toy_spec_data["space"]["depth"] = [1, 2]
    toy_spec_data["space"]["dropout"] = {"nested": True}
    found = problems(toy_spec_data)
    # The mapping without a type is a shape error; the other entries are still checked.
    assert set(found) == {"space.dropout", "space.width[2]", "space.depth"}
    toy_spec_data["space"]["dropout"] = 0.25
    found = problems(toy_spec_data)
    assert found["space.width[2]"] == "7 is not even"
    assert found["space.depth"].startswith("a list is only allowed for per-block knobs")


def test_objectives_constraints_budget(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["objectives"].append({"metric": "accuracy", "direction": "minimize"})
    toy_spec_data["constraints"] = ["latency_ms <= 5", "<= 5", "energy < 3", "sparsity > x"]
    toy_spec_data["budget"] = {"evaluations": 0, "wall_time_s": -1}
    found = problems(toy_spec_data)
    assert found["constraints[1]"].startswith("cannot read '<= 5'; write 'metric op number'")
    assert found["constraints[2]"].startswith("unknown metric 'energy'")
    assert found["constraints[3]"] == "the bound 'x' is not a number"
    assert found["budget.evaluations"] == "must be at least 1, got 0"
    assert found["budget.wall_time_s"] == "must be greater than 0, got -1"
    toy_spec_data["constraints"] = []
    toy_spec_data["budget"] = {"wall_time_s": 10}
    assert problems(toy_spec_data) == {
        "objectives[2].metric": "'accuracy' is already objectives[0]"
    }
    toy_spec_data["objectives"] = []
    assert problems(toy_spec_data) == {"objectives": "must not be empty"}


def test_optimizer_name_and_options(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["optimizer"] = {"name": "cmaes"}
    found = problems(toy_spec_data)
    assert found["optimizer.name"].startswith("unknown optimizer 'cmaes'; valid names:")
    assert "optuna-nsga2" in found["optimizer.name"] and "random" in found["optimizer.name"]
    toy_spec_data["optimizer"] = {"name": "optuna-nsga2", "population_size": 1}
    assert problems(toy_spec_data) == {"optimizer.population_size": "must be at least 2, got 1"}
    toy_spec_data["optimizer"] = {"name": "optuna-nsga2", "generations": 3}
    found = problems(toy_spec_data)
    assert found["optimizer.generations"].startswith("unknown option; options: population_size")


def test_target_is_checked(toy_spec_data: dict[str, Any]) -> None:
    toy_spec_data["target"] = ""
    assert problems(toy_spec_data) == {"target": "must not be empty"}
    try:
        from hwsearch.hardware.targets import parse_target  # noqa: F401
    except ImportError:
        return
    toy_spec_data["target"] = "tpu-v9"
    found = problems(toy_spec_data)
    assert set(found) == {"target"}
    assert "tpu-v9" in found["target"]


def test_jobspec_is_frozen(toy_spec_data: dict[str, Any]) -> None:
    spec = parse_spec(toy_spec_data)
    with pytest.raises(Exception, match="frozen"):
        spec.seed = 3
    assert isinstance(spec, JobSpec)


# --------------------------------------------------------------------------------------------
# Table targets and table evaluations

ARCH_A = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    """A folder ``data/`` with small latency and accuracy tables keyed by ``arch``."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "latency.csv").write_text(f"arch,pixel3,gold_6240\n{ARCH_A},12.5,3.0\n")
    (data / "accuracy.csv").write_text(f"arch,cifar10_acc,label\n{ARCH_A},91.5,a\n")
    return data


def nb201_table_spec(tables: Path) -> dict[str, Any]:
    return {
        "name": "nb201-tables",
        "family": "nb201",
        "target": {"name": "pixel3", "table": str(tables / "latency.csv")},
        "space": {
            "ops": {
                "type": "choice",
                "values": ["none", "skip_connect", "nor_conv_3x3"],
                "per_layer": 6,
            }
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "budget": {"evaluations": 10},
        "evaluation": {
            "type": "table",
            "table": str(tables / "accuracy.csv"),
            "column": "cifar10_acc",
            "scale": 0.01,
        },
    }


def test_table_target_and_evaluation_parse(tables: Path) -> None:
    spec = parse_spec(nb201_table_spec(tables))
    target = spec.target_table
    assert target is not None and spec.target == target
    assert (target.name, target.column, target.key) == ("pixel3", "pixel3", "arch")
    assert spec.target_name == "pixel3"
    # the lookup travels to the workers as the measurement
    assert isinstance(spec.measurement, TableMeasurement)
    assert dict(spec.measurement) == {
        "type": "table",
        "table": str(tables / "latency.csv"),
        "column": "pixel3",
        "key": "arch",
    }
    evaluation = spec.evaluation_table
    assert isinstance(evaluation, TableEvaluation) and spec.evaluation == evaluation
    assert (evaluation.column, evaluation.scale, evaluation.key) == ("cifar10_acc", 0.01, "arch")
    data = spec.to_dict()
    assert data["target"] == {
        "name": "pixel3",
        "table": str(tables / "latency.csv"),
        "column": "pixel3",
        "key": "arch",
    }
    assert "measurement" not in data
    assert data["evaluation"]["type"] == "table"
    again = parse_spec(json.loads(json.dumps(data)))
    assert again == spec and again.to_dict() == data


def test_plain_targets_keep_their_shape(toy_spec_data: dict[str, Any]) -> None:
    spec = parse_spec(toy_spec_data)
    assert spec.target == spec.target_name == "cpu"
    assert spec.target_table is None and spec.evaluation_table is None
    assert isinstance(spec.measurement, MeasurementSettings)
    assert spec.to_dict()["target"] == "cpu"


def test_relative_table_paths_resolve_against_the_spec_file(
    tables: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = nb201_table_spec(tables)
    data["target"]["table"] = "../data/latency.csv"
    data["evaluation"]["table"] = "../data/accuracy.csv"
    folder = tmp_path / "specs"
    folder.mkdir()
    path = folder / "job.json"
    path.write_text(json.dumps(data))
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    spec = load_spec(path)
    assert spec.to_dict()["target"]["table"] == str((tables / "latency.csv").resolve())
    assert spec.to_dict()["evaluation"]["table"] == str((tables / "accuracy.csv").resolve())
    # a stored spec (absolute paths) parses from any folder
    assert parse_spec(spec.to_dict()) == spec
    # parsed from data, relative paths are read from base_dir, else the current folder
    assert parse_spec(data, base_dir=folder) == spec
    found = problems(data)
    assert set(found) == {"target.table", "evaluation.table"}
    assert str(elsewhere.parent / "data" / "latency.csv") in found["target.table"]
    assert "does not exist" in found["target.table"]
    monkeypatch.chdir(folder)
    assert parse_spec(data) == spec


def test_bad_table_paths_and_columns_are_named(tables: Path) -> None:
    data = nb201_table_spec(tables)
    data["target"] = {"name": "pixel4", "table": str(tables / "latency.csv")}
    data["evaluation"]["table"] = str(tables / "missing.csv")
    found = problems(data)
    assert found == {
        "target.column": f"column 'pixel4' not in {tables / 'latency.csv'} "
        "(the table has 2 numeric column(s))",
        "evaluation.table": f"table file {tables / 'missing.csv'} does not exist "
        "(a relative path is read from the spec file's folder)",
    }
    data = nb201_table_spec(tables)
    data["evaluation"]["column"] = "label"
    data["target"]["key"] = "architecture"
    found = problems(data)
    assert found["evaluation.column"].startswith("column 'label' of ")
    assert found["evaluation.column"].endswith("is not numeric (the table has 1 numeric column(s))")
    assert found["target.key"].startswith("key column 'architecture' not in ")
    assert set(found) == {"evaluation.column", "target.key"}


def test_table_target_shape_errors(tables: Path) -> None:
    data = nb201_table_spec(tables)
    data["target"] = {"table": str(tables / "latency.csv"), "device": "x"}
    found = problems(data)
    assert found["target.name"] == "is required"
    assert found["target.device"] == "unknown field; allowed: name, table, column, key"
    data["target"] = 5
    assert problems(data) == {
        "target": "expected a device name such as 'cpu' or a table target "
        "{name: ..., table: FILE, column: ...}, got 5"
    }
    data["target"] = {"name": "cpu", "table": str(tables / "latency.csv"), "column": "pixel3"}
    assert problems(data) == {
        "target.name": "'cpu' names a device of this machine; give the device whose numbers "
        "the table holds its own name (e.g. the column's)"
    }


def test_table_evaluation_shape_errors(tables: Path) -> None:
    data = nb201_table_spec(tables)
    data["evaluation"] = {"type": "lookup", "table": "x.csv"}
    assert problems(data) == {
        "evaluation.type": "unknown evaluation type 'lookup'; use 'lm' (language models of "
        "family transformer), 'python' (your own model: build, evaluate, finetune, calibrate "
        "callables), 'table' (quality looked up in a table), 'train' (train each "
        "candidate here; the default of most families), or leave type out for the family's "
        "default"
    }
    data["evaluation"] = {"type": "table", "table": str(tables / "accuracy.csv"), "scale": 0}
    found = problems(data)
    assert found == {
        "evaluation.column": "is required",
        "evaluation.scale": "must be greater than 0, got 0",
    }
    data["evaluation"] = {"epochs": 1, "colour": "red"}
    found = problems(data)
    assert found["evaluation.colour"] == (
        "unknown field; allowed: epochs, finetune_epochs, batch_size, learning_rate"
    )


def test_a_table_target_takes_no_timing_settings(tables: Path) -> None:
    data = nb201_table_spec(tables)
    data["measurement"] = {"warmup": 1}
    assert problems(data) == {
        "measurement": "a table target is not timed here (its latencies were measured "
        "elsewhere); remove the measurement section"
    }
    data = nb201_table_spec(tables)
    data["target"] = "cpu"
    data["measurement"] = {"type": "table", "table": str(tables / "latency.csv"), "column": "x"}
    found = problems(data)
    assert set(found) == {"measurement.type"}
    assert "given as a table target" in found["measurement.type"]


def test_tables_need_a_keyed_family_and_the_benchmark_settings(
    tables: Path, toy_spec_data: dict[str, Any]
) -> None:
    toy_spec_data["evaluation"] = nb201_table_spec(tables)["evaluation"]
    found = problems(toy_spec_data)
    assert found == {
        "family": "family 'search-toy' has no key to look its configs up in a table; "
        "table targets and table evaluations need one (e.g. nb201)"
    }
    data = nb201_table_spec(tables)
    data["space"]["channels"] = {"type": "choice", "values": [8, 16]}
    data["space"]["cells"] = 3
    found = problems(data)
    assert found["space.channels"] == (
        "the tables of family 'nb201' describe networks with channels = 16; fix channels at "
        "16 to look candidates up in them"
    )
    assert "cells = 5" in found["space.cells"]
    data["space"]["channels"] = 16
    data["space"]["cells"] = 5
    assert parse_spec(data).constants() == {"channels": 16, "cells": 5}


def test_nb201_is_not_trained_here(tables: Path) -> None:
    data = nb201_table_spec(tables)
    del data["evaluation"]
    assert problems(data) == {
        "evaluation": "family 'nb201' is not trained here; take its quality from a table: "
        "evaluation: {type: table, table: FILE, column: ...}"
    }


def test_metrics_must_be_ones_the_tables_give(tables: Path) -> None:
    data = nb201_table_spec(tables)
    data["objectives"][1] = {"metric": "peak_memory_bytes", "direction": "minimize"}
    data["constraints"] = ["latency_p90_ms <= 10", "params <= 1000000"]
    found = problems(data)
    assert set(found) == {"objectives[1].metric", "constraints[0]"}
    assert found["constraints[0]"] == (
        "metric 'latency_p90_ms' is not produced when evaluating from tables; "
        "available: accuracy, latency_ms, macs, params, size_bytes"
    )
    # timed on this machine, with the quality from the table: the timing metrics exist
    data["target"] = "cpu"
    spec = parse_spec(data)
    assert spec.target == "cpu" and isinstance(spec.measurement, MeasurementSettings)
    assert spec.evaluation_table is not None


def _cnn_spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO_YAML)
    return data


def test_problems_in_structure_and_meaning_are_reported_together() -> None:
    """A type error elsewhere must not hide a bad knob value (the README's example)."""
    data = _cnn_spec()
    data["space"]["width"]["values"] = [8, -4]
    data["space"]["depth"] = {"type": "int", "low": 1, "high": 3}
    data["objectives"][0]["metric"] = "acc"
    data["evaluation"]["epochs"] = -1
    found = problems(data)
    assert "unknown metric 'acc'" in found["objectives[0].metric"]
    assert "at least 1" in found["evaluation.epochs"]
    assert "-4 is below the minimum 1" in found["space.width.values[1]"]
    assert "not a knob of family 'cnn'" in found["space.depth"]


def test_per_layer_must_cover_the_deepest_network() -> None:
    data = _cnn_spec()
    data["space"]["width"]["per_layer"] = 2  # stages go up to 3
    found = problems(data)
    assert set(found) == {"space.width.per_layer"}
    assert "deepest network in this space has 3 blocks" in found["space.width.per_layer"]
    data["space"]["stages"]["high"] = 2
    assert parse_spec(data).space["width"].per_layer == 2  # type: ignore[union-attr]


def test_unquoted_n_m_pattern_gets_a_hint() -> None:
    data = yaml.safe_load(DEMO_YAML.replace('"2:4"', "2:4"))
    found = problems(data)
    assert "quote it" in found["space.sparsity_pattern.values[1]"]


def test_a_typo_in_a_user_models_evaluation_is_its_only_problem(tmp_path: Path) -> None:
    """A misspelt field of a user model's evaluation is reported alone: the section's
    given fields are not also reported missing."""
    (tmp_path / "typo_models.py").write_text(
        "def build(config):\n    pass\n\n\ndef evaluate(model, context):\n    pass\n"
    )
    data = {
        "family": {"model": "typo_models:build", "input_shape": [4]},
        "evaluation": {
            "type": "python",
            "evaluate": "typo_models:evaluate",
            "finetun": "typo_models:evaluate",
            "metrics": {"accuracy": "maximize"},
        },
        "space": {"width": {"type": "choice", "values": [2, 4]}},
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "target": "cpu",
        "budget": {"evaluations": 2},
    }
    with pytest.raises(SpecErrors) as info:
        parse_spec(data, base_dir=tmp_path)
    assert [e.field for e in info.value.errors] == ["evaluation.finetun"]
    assert info.value.errors[0].reason.startswith("unknown field; allowed: type, model, evaluate")
