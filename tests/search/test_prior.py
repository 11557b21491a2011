"""Prior knowledge from tables and stored measurements, through the spec and the driver."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwsearch.db import Store
from hwsearch.errors import SpecError, SpecErrors
from hwsearch.hardware.tables import load_table
from hwsearch.models.base import get_family
from hwsearch.records import JobState
from hwsearch.search.driver import Driver
from hwsearch.search.pareto import hypervolume
from hwsearch.search.prior import build_prior
from hwsearch.search.space import SearchSpace
from hwsearch.search.spec import JobSpec, load_spec, parse_spec

NB201 = get_family("nb201")


@pytest.fixture
def nb201_spec(nb201_active_spec: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``make(target, budget, prior=None, optimizer="default")``: a table search of
    NAS-Bench-201 on ``target`` (a column of the shared latency table)."""

    def make(
        target: str = "pixel3",
        budget: int = 30,
        prior: dict[str, Any] | None = None,
        optimizer: str = "default",
    ) -> dict[str, Any]:
        spec = nb201_active_spec(budget)
        del spec["active_learning"]
        spec["name"] = f"nb201-{target}"
        spec["target"] = {**spec["target"], "name": target, "column": target}
        spec["optimizer"] = {"name": optimizer}
        if prior is not None:
            spec["prior"] = prior
        return spec

    return make


def _fields(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecErrors) as info:
        parse_spec(spec)
    return {e.field: e.reason for e in info.value.errors}


def _block(spec: JobSpec, store: Store | None = None) -> Any:
    family = get_family("nb201")
    blocks = build_prior(spec, store, family=family, space=SearchSpace.from_spec(spec))
    assert blocks is not None and list(blocks) == ["latency_ms"]
    return blocks["latency_ms"]


def test_a_table_prior_is_every_other_column_on_a_log_scale(
    nb201_spec: Any, nb201_data: Path
) -> None:
    table_path = str(nb201_data / "latency_ms.csv")
    spec = parse_spec(nb201_spec("pixel3", prior={"tables": [{"table": table_path}]}))
    block = _block(spec)
    table = load_table(table_path)
    others = [c for c in table.columns if c not in ("pixel3", "index")]
    assert len(others) == 12
    assert block.sources == [f"{table_path}:{c}" for c in others]
    cells = [["nor_conv_3x3"] * 6, ["skip_connect", "none", "avg_pool_3x3"] * 2]
    values = block.many([{f"ops[{i}]": op for i, op in enumerate(cell)} for cell in cells])
    assert values.shape == (2, len(others))
    for row, cell in zip(values, cells, strict=True):
        arch = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*cell)
        expected = [math.log(table.value(arch, c)) for c in others]
        np.testing.assert_allclose(row, expected)
    # one config alone gives the same row as in a batch
    np.testing.assert_allclose(block({f"ops[{i}]": "nor_conv_3x3" for i in range(6)}), values[0])
    # chosen columns, in the order given
    spec = parse_spec(
        nb201_spec(prior={"tables": [{"table": table_path, "columns": ["titanx_1", "1080ti_1"]}]})
    )
    assert _block(spec).sources == [f"{table_path}:titanx_1", f"{table_path}:1080ti_1"]


def test_bad_prior_settings_name_the_field(
    nb201_spec: Any, nb201_data: Path, tmp_path: Path
) -> None:
    table = str(nb201_data / "latency_ms.csv")
    other = tmp_path / "other_space.csv"  # a table of some other family's configs
    other.write_text("arch,phone\nresnet18,12.5\nresnet50,30.1\n")
    fields = _fields(nb201_spec(prior={"tables": [{"table": str(other)}]}))
    assert "none of 16 configs of this space has a row" in fields["prior.tables[0].key"]
    assert "resnet18" not in fields["prior.tables[0].key"]  # a table's rows are never quoted
    fields = _fields(nb201_spec(prior={}))
    assert "give tables, targets or both" in fields["prior"]
    fields = _fields(nb201_spec(prior={"metric": "energy_j", "tables": [{"table": table}]}))
    assert "not an objective" in fields["prior.metric"]
    fields = _fields(nb201_spec(prior={"tables": [{"table": table}]}, optimizer="optuna-tpe"))
    assert "does not use prior knowledge" in fields["prior"]
    fields = _fields(
        nb201_spec(prior={"tables": [{"table": table, "columns": ["titanx_1", "pixel3", "nope"]}]})
    )
    assert "own target column" in fields["prior.tables[0].columns[1]"]
    assert "'nope' not in" in fields["prior.tables[0].columns[2]"]
    assert "prior.tables[0].columns[0]" not in fields
    fields = _fields(nb201_spec(prior={"tables": [{"table": str(nb201_data / "missing.csv")}]}))
    assert "does not exist" in fields["prior.tables[0].table"]
    fields = _fields(nb201_spec(prior={"targets": ["titanx_1", "pixel3"]}))
    assert "own target" in fields["prior.targets[1]"]
    fields = _fields(nb201_spec(prior={"targets": "some", "min_measured": 1}))
    assert {"prior.targets", "prior.min_measured"} <= set(fields)
    fields = _fields(nb201_spec(prior={"targets": ["a", "b", "a"]}))
    assert "'a' more than once" in fields["prior.targets"]
    spec = nb201_spec(prior={"tables": [{"table": table, "columns": ["titanx_1", "titanx_1"]}]})
    assert "more than once" in _fields(spec)["prior.tables[0].columns"]
    # options that must fit the objectives are checked with the spec, not when the job runs
    spec = nb201_spec()
    spec["optimizer"] = {"name": "default", "optimism": [1.0, 2.0, 0.5]}
    assert _fields(spec)["optimizer.optimism"] == "has 3 values for 2 objectives"


def test_stored_measurements_of_other_targets_are_the_prior(store: Store, nb201_spec: Any) -> None:
    for target in ("titanx_1", "1080ti_1", "pixel3"):
        Driver(parse_spec(nb201_spec(target, budget=24, optimizer="random")), store).run()
    spec = parse_spec(nb201_spec("pixel3", prior={"targets": "all"}))
    block = _block(spec, store)
    assert block.sources == ["target 1080ti_1", "target titanx_1"]  # not the job's own
    measured = store.measured_values_by_target("nb201", "latency_ms", targets=["titanx_1"])
    _, config, value = measured["titanx_1"][0]
    params = {f"ops[{i}]": op for i, op in enumerate(config["ops"])}
    # a measured config takes its measured value; others a fitted prediction
    assert block(params)[1] == pytest.approx(math.log(value))
    unmeasured = {f"ops[{i}]": op for i, op in enumerate(["nor_conv_3x3"] * 6)}
    seen = {tuple(c["ops"]) for _, c, _ in measured["titanx_1"]}
    assert ("nor_conv_3x3",) * 6 not in seen
    assert np.isfinite(block(unmeasured)).all()

    named = parse_spec(nb201_spec(prior={"targets": ["titanx_1"], "min_measured": 25}))
    with pytest.raises(SpecError) as info:
        _block(named, store)
    assert info.value.field == "prior.targets[0]" and "24 stored" in info.value.reason
    none_enough = parse_spec(nb201_spec(prior={"targets": "all", "min_measured": 25}))
    with pytest.raises(SpecError) as info:
        _block(none_enough, store)
    assert info.value.field == "prior.targets"


def test_searches_with_the_other_devices_latencies_get_closer_to_the_true_front(
    tmp_path: Path, nb201_spec: Any, nb201_data: Path
) -> None:
    """The driver hands the prior to the default strategy: over four devices, 40 evaluations
    with the other devices' latencies leave less of the true front's hypervolume uncovered
    (objectives min-max normalised over all 15,625 cells, as in bench/search_quality.py)."""
    latency_csv = str(nb201_data / "latency_ms.csv")
    latency = load_table(latency_csv)
    accuracy = load_table(str(nb201_data / "accuracy.csv"))
    keys = latency.keys()
    error = 100.0 - np.array([accuracy.value(k, "cifar10_acc") for k in keys])
    store = Store.open(f"sqlite:///{tmp_path / 'prior.db'}")

    def gap(target: str, prior: dict[str, Any] | None) -> float:
        spec = parse_spec(nb201_spec(target, budget=40, prior=prior))
        job = Driver(spec, store).run()
        candidates = store.list_candidates(job.id)
        rows = {k: i for i, k in enumerate(keys)}
        found = [rows[NB201.table_key(c.config)] for c in candidates]
        lat = latency.column_values(target)
        points = np.stack([(v - v.min()) / (v.max() - v.min()) for v in (error, lat)], axis=1)
        directions = ["minimize", "minimize"]
        whole = hypervolume(points, directions, [1.0, 1.0])
        return 1.0 - hypervolume(points[found], directions, [1.0, 1.0]) / whole

    devices = ("titanx_32", "silver_4114", "essential_ph_1", "gold_6240")
    plain = [gap(d, None) for d in devices]
    informed = [gap(d, {"tables": [{"table": latency_csv}]}) for d in devices]
    store.close()
    assert np.mean(informed) < 0.8 * np.mean(plain), (plain, informed)


def test_the_example_spec_reads_its_prior_table_from_its_own_folder(nb201_data: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "nb201_pixel3_prior.yaml"
    spec = load_spec(example)
    assert spec.prior is not None
    assert spec.prior.tables[0].table == str((nb201_data / "latency_ms.csv").resolve())
    block = _block(spec)
    assert len(block.sources) == 12 and not any(s.endswith(":pixel3") for s in block.sources)


def test_a_resumed_job_knows_what_it_knew_when_it_was_created(
    tmp_path: Path, nb201_spec: Any
) -> None:
    """Stored measurements made after a job was created (another target measured while it
    was interrupted) do not change its prior: it ends as the uninterrupted job did."""
    spec = parse_spec(nb201_spec("pixel3", budget=40, prior={"targets": "all"}))

    def measure(store: Store, *targets: str) -> None:
        for target in targets:
            Driver(parse_spec(nb201_spec(target, budget=24, optimizer="random")), store).run()

    with Store.open(f"sqlite:///{tmp_path / 'whole.db'}") as store:
        measure(store, "titanx_1", "1080ti_1")
        whole = Driver(spec, store).run()
        expected = {c.config_hash for c in store.list_candidates(whole.id)}
    with Store.open(f"sqlite:///{tmp_path / 'cut.db'}") as store:
        measure(store, "titanx_1", "1080ti_1")
        asked = iter(range(100))
        cut = Driver(spec, store, should_stop=lambda: next(asked) >= 2).run()
        assert cut.state == JobState.CANCELLED
        measure(store, "samsung_s7")  # known now, not when the job was created
        assert "samsung_s7" in store.measured_values_by_target("nb201", "latency_ms")
        resumed = Driver(spec, store).resume(cut.id)
        got = {c.config_hash for c in store.list_candidates(resumed.id)}
    assert resumed.state == JobState.FINISHED
    assert got == expected


def test_a_prior_that_cannot_be_built_fails_the_job_with_the_reason(
    store: Store, nb201_spec: Any
) -> None:
    spec = parse_spec(nb201_spec("pixel3", prior={"targets": ["titanx_1"]}))
    with pytest.raises(SpecError, match="0 stored 'latency_ms' measurements"):
        Driver(spec, store).run()
    (job,) = store.list_jobs()
    assert job.state == JobState.FAILED
    assert job.error is not None and "prior.targets[0]" in job.error
