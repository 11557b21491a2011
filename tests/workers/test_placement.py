"""The ``executor`` section of a spec and the CLI's overrides of it (no Ray needed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from hwsearch.errors import SpecError, SpecErrors
from hwsearch.search.spec import parse_spec
from hwsearch.service.cli.common import Executor, executor_settings
from hwsearch.service.cli.jobs import _placement
from hwsearch.workers import ExecutorSettings, InProcessExecutor, executor_for, make_executor


def _with(tiny_spec: dict[str, Any], executor: dict[str, Any]) -> Any:
    return parse_spec({**tiny_spec, "executor": executor})


def test_the_executor_section_is_validated_and_round_trips(tiny_spec: dict[str, Any]) -> None:
    spec = _with(
        tiny_spec,
        {
            "type": "ray",
            "address": "auto",
            "resources": {"hwsearch_worker": 1},
            "num_gpus": 0.25,
            "gpu_resource": "fake_gpu",
        },
    )
    assert spec.executor is not None
    assert spec.executor.ray_options() == {
        "resources": {"hwsearch_worker": 1.0},
        "cpus_per_task": 1.0,
        "gpus_per_task": 0.25,
        "gpu_resource": "fake_gpu",
        "gpu_actors": None,
        "actor_resources": {},
        "timeout_s": 3600.0,
        "max_retries": 2,
    }
    stored = spec.to_dict()["executor"]  # only what the spec set
    assert stored == {
        "type": "ray",
        "address": "auto",
        "resources": {"hwsearch_worker": 1.0},
        "num_gpus": 0.25,
        "gpu_resource": "fake_gpu",
    }
    assert parse_spec(spec.to_dict()) == spec
    pool = _with(tiny_spec, {"type": "pool", "workers": 3})
    assert parse_spec(pool.to_dict()) == pool
    assert "executor" not in parse_spec(tiny_spec).to_dict()


@pytest.mark.parametrize(
    ("section", "field", "words"),
    [
        ({"type": "pool", "resources": {"x": 1}}, "executor.resources", "only the ray executor"),
        ({"type": "local", "num_gpus": 0.5}, "executor.num_gpus", "only the ray executor"),
        ({"type": "ray", "resources": {"x": 0}}, "executor.resources", "must be positive"),
        (
            {"type": "ray", "resources": {"GPU": 1}},
            "executor.resources",
            "set num_cpus or num_gpus",
        ),
        ({"type": "ray", "num_gpus": -0.5}, "executor.num_gpus", "at least 0"),
        ({"type": "ray", "gpu_resource": ""}, "executor.gpu_resource", "must not be empty"),
        ({"type": "gpu"}, "executor.type", "'ray'"),
        ({"type": "ray", "cpus": 2}, "executor.cpus", "unknown field"),
    ],
)
def test_a_bad_executor_section_names_the_field(
    tiny_spec: dict[str, Any], section: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SpecErrors) as caught:
        _with(tiny_spec, section)
    [error] = caught.value.errors
    assert error.field == field
    assert words in error.reason


def test_command_line_options_win_over_the_spec(tiny_spec: dict[str, Any]) -> None:
    spec = _with(tiny_spec, {"type": "ray", "resources": {"hwsearch_worker": 1}, "workers": 4})
    chosen = _placement(spec, None, 2, "ray://head:10001", ["num_gpus=0.5", "gpu_actors=2"])
    assert chosen.type == "ray" and chosen.workers == 2
    assert chosen.address == "ray://head:10001"
    assert chosen.resources == {"hwsearch_worker": 1.0}
    assert (chosen.num_gpus, chosen.gpu_actors) == (0.5, 2)
    # another executor on the command line drops the spec's Ray placement
    local = _placement(spec, Executor.local, None, None, None)
    assert local.type == "local" and local.resources == {}
    with executor_for(local) as executor:
        assert isinstance(executor, InProcessExecutor)
    # without a section or an option: in process, as before
    with executor_for(parse_spec(tiny_spec).executor) as executor:
        assert isinstance(executor, InProcessExecutor)


def test_bad_command_line_settings_name_the_option(tiny_spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="--executor-setting"):
        executor_settings(["num_gpus"])
    with pytest.raises(SpecError, match="--executor-setting resources"):
        executor_settings(["resources={a: [1"])
    assert executor_settings(["resources={w: 2}", "timeout_s=60"]) == {
        "resources": {"w": 2},
        "timeout_s": 60,
    }
    spec = parse_spec(tiny_spec)
    with pytest.raises(SpecError) as caught:
        _placement(spec, Executor.ray, None, None, ["num_gpus=lots"])
    assert caught.value.field == "executor.num_gpus"
    # Ray's placement asked for on the command line with another executor: not ignored
    for executor in (Executor.pool, None):  # None: the spec's, here none, so local
        with pytest.raises(SpecError) as caught:
            _placement(spec, executor, None, None, ["resources={a: 1}", "timeout_s=9"])
        assert caught.value.field == "--executor-setting resources"
        assert "only the ray executor reads resources, timeout_s" in caught.value.reason
    # the type given among the settings counts as much as --executor
    chosen = _placement(spec, None, None, None, ["type=ray", "num_gpus=1"])
    assert chosen.type == "ray" and chosen.num_gpus == 1
    with pytest.raises(SpecError, match="reads num_cpus, not 'pool'"):
        _placement(spec, None, None, None, ["type=pool", "num_cpus=2"])


def test_ray_placement_with_another_executor_is_refused() -> None:
    placement = ExecutorSettings.parse({"resources": {"hwsearch_worker": 1}})
    with pytest.raises(SpecError) as caught:
        make_executor("pool", placement=placement)
    assert caught.value.field == "executor.resources"
    with pytest.raises(SpecError) as caught:
        executor_for(placement)  # no type: local, which reads no resources
    assert caught.value.field == "executor.resources"


def test_run_refuses_a_bad_executor_setting_before_writing_anything(
    tiny_spec: dict[str, Any], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from hwsearch.service.cli import app

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({**tiny_spec, "executor": {"type": "ray"}}))
    db = tmp_path / "hwsearch.db"
    result = CliRunner().invoke(
        app,
        ["run", str(spec_path), "--db", f"sqlite:///{db}", "--executor-setting", "num_gpus=-1"],
    )
    assert result.exit_code == 2, result.output
    assert "executor.num_gpus" in result.output
    assert not db.exists()


def test_the_export_readme_says_which_worker_measured_the_latency() -> None:
    from hwsearch.records import MetricValue, Provenance
    from hwsearch.service.export import _latency_story

    worker = {"host": "node-7", "node_id": "ab12", "pid": 4242, "cpu_seconds": 3.0}
    latency = MetricValue(
        "latency_ms", 1.0, Provenance.MEASURED, "cpu", {"repeats": 5, "worker": worker}
    )
    assert "worker: host node-7, Ray node ab12, pid 4242, 3.0 CPU s" in _latency_story(
        latency, "dense"
    )
    elsewhere = replace(latency, details={"repeats": 5})  # measured in process
    assert "worker:" not in _latency_story(elsewhere, "dense")
