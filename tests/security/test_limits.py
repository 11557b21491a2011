"""Caps on what a spec may ask for (:mod:`hwsearch.search.limits`): each checked before
anything runs, each error naming the field; choice values de-duplicated in linear time."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from hwsearch.errors import FilterError, SpecErrors
from hwsearch.search.filters import parse_filter
from hwsearch.search.limits import SEED_MAX, SpecLimits, check_limits
from hwsearch.search.spec import ChoiceVarSpec, parse_spec

# A guard against the old unbounded paths (they took minutes or ran out of memory), not a
# speed goal: the speed figures are bench/hostile.py's.
HANG_S = 30.0

BASE: dict[str, Any] = {
    "family": "mlp",
    "target": "cpu",
    "space": {
        "depth": {"type": "int", "low": 1, "high": 2},
        "width": {"type": "choice", "values": [8, 16], "per_layer": 2},
    },
    "objectives": [{"metric": "accuracy", "direction": "maximize"}],
    "budget": {"evaluations": 4},
    "optimizer": {"name": "optuna-nsga2", "population_size": 4},
}


def _problems(data: dict[str, Any], limits: SpecLimits | None = None) -> dict[str, str]:
    started = time.monotonic()
    with pytest.raises(SpecErrors) as info:
        parse_spec(data, limits=limits)
    assert time.monotonic() - started < HANG_S, "caps are checked before the costly checks"
    return {e.field: e.reason for e in info.value.errors}


def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def test_the_base_spec_is_within_every_cap() -> None:
    assert check_limits(BASE) == []
    assert parse_spec(BASE).name == "mlp"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"optimizer": {"name": "optuna-nsga2", "population_size": 10**9}},
            "optimizer.population_size",
        ),
        ({"budget": {"evaluations": 10**12}}, "budget.evaluations"),
        ({"budget": {"wall_time_s": 1e12}}, "budget.wall_time_s"),
        ({"constraints": ["accuracy >= 0.1"] * 10_000}, "constraints"),
        (
            {"space": {"width": {"type": "choice", "values": [8, 16], "per_layer": 10**6}}},
            "space.width.per_layer",
        ),
        ({"space": {f"v{i}": 1 for i in range(1000)}}, "space"),
        (
            {"space": {"width": {"type": "choice", "values": list(range(40_000))}}},
            "space.width.values",
        ),
        ({"evaluation": {"epochs": 10**7}}, "evaluation.epochs"),
        ({"evaluation": {"batch_size": 10**9}}, "evaluation.batch_size"),
        ({"name": "x" * 100_000}, "name"),
        ({"space": {"depth": {"type": "int", "low": 1, "high": 10**30}}}, "space.depth.high"),
        ({"objectives": [{"metric": "accuracy", "direction": "maximize"}] * 100}, "objectives"),
    ],
)
def test_each_cap_names_its_field(change: dict[str, Any], field: str) -> None:
    found = _problems(_with(**change))
    assert field in found, found
    assert "more than the limit" in found[field] or "larger than" in found[field]


def test_seed_is_in_numpys_range() -> None:
    assert parse_spec(_with(seed=SEED_MAX)).seed == SEED_MAX
    found = _problems(_with(seed=SEED_MAX + 1))
    assert found["seed"] == f"must be at most {SEED_MAX}, got {SEED_MAX + 1}"
    assert "seed" in _problems(_with(seed=-1))


def test_a_spec_over_its_size_in_bytes_is_refused_first() -> None:
    data = _with(constraints=["accuracy >= 0.1"] * 60)
    size = len(json.dumps(data, separators=(",", ":")))
    found = _problems(data, SpecLimits(spec_bytes=size - 1))
    assert found == {"spec": f"has {size} bytes as compact JSON, more than the limit of {size - 1}"}


def test_deep_nesting_is_refused_without_recursion() -> None:
    deep: Any = 1
    for _ in range(10_000):
        deep = [deep]
    found = _problems(_with(space={"depth": deep}))
    assert "nested more than 32 levels deep" in next(iter(found.values()))


def test_control_characters_in_any_string_are_refused() -> None:
    found = _problems(_with(name="bad\x00name"))
    assert found == {"name": "contains the control character U+0000"}
    found = _problems(_with(constraints=["accuracy >= 0.1\x1b"]))
    assert found == {"constraints[0]": "contains the control character U+001B"}


def test_server_limits_replace_the_defaults() -> None:
    limits = SpecLimits.parse_settings(["population=3", "wall-time-s=60"])
    assert limits.population == 3 and limits.wall_time_s == 60.0
    found = _problems(BASE, limits)
    assert found == {"optimizer.population_size": "is 4, more than the limit of 3"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        SpecLimits.parse_settings(["bogus=1"])
    with pytest.raises(ValueError, match="positive"):
        SpecLimits(depth=0)


def test_choice_values_are_deduplicated_in_linear_time() -> None:
    many = list(range(100_000))
    started = time.monotonic()
    ChoiceVarSpec.model_validate({"type": "choice", "values": many})
    ChoiceVarSpec.model_validate({"type": "choice", "values": [f"v{i}" for i in many]})
    assert time.monotonic() - started < HANG_S  # quadratic took minutes
    twice = _with(space={"width": {"type": "choice", "values": [*many[:1000], 7]}})
    found = _problems(twice)
    assert found == {"space.width.values": "7 is listed twice; values must be distinct"}
    # True and 1 stay distinct; 1 and 1.0 are one value
    ChoiceVarSpec.model_validate({"type": "choice", "values": [True, 1]})
    found = _problems(_with(space={"width": {"type": "choice", "values": [8, 8.0]}}))
    assert found["space.width.values"] == "8.0 is listed twice; values must be distinct"


@pytest.mark.parametrize("depth", [314, 10_000])
def test_deep_where_filters_are_a_filter_error(depth: int) -> None:
    text = "(" * depth + "accuracy > 0.5" + ")" * depth
    with pytest.raises(FilterError, match="nested more than 32 levels deep"):
        parse_filter(text, {"accuracy"}, max_length=10**6)
    with pytest.raises(FilterError, match="nested more than 32 levels"):
        parse_filter("not " * depth + "accuracy > 0.5", {"accuracy"}, max_length=10**6)
    ok = "(" * 32 + "accuracy > 0.5" + ")" * 32
    assert parse_filter(ok, {"accuracy"})({"accuracy": 0.9})


def test_long_where_filters_are_refused() -> None:
    text = " or ".join(["accuracy > 0.5"] * 200)
    with pytest.raises(FilterError, match=r"a filter of \d+ characters is longer than 2000"):
        parse_filter(text, {"accuracy"})


def test_a_spec_whose_stored_form_is_over_the_caps_is_refused_at_once() -> None:
    """The runner re-reads the stored spec (defaults filled in) under the same caps, so a
    spec is accepted only if that form passes too."""
    size = len(json.dumps(BASE, separators=(",", ":")))
    stored = len(json.dumps(parse_spec(BASE).to_dict(), separators=(",", ":")))
    assert stored > size
    found = _problems(BASE, SpecLimits(spec_bytes=size + 1))
    assert found == {
        "spec": f"has {stored} bytes as compact JSON, more than the limit of {size + 1}"
    }
