from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwsearch.search.space import ChoiceVar, FloatVar, IntVar, SearchSpace
from hwsearch.search.spec import parse_spec


@pytest.fixture
def space(toy_spec_data: dict[str, Any]) -> SearchSpace:
    return SearchSpace.from_spec(parse_spec(toy_spec_data))


def test_expansion_of_per_layer_knobs(space: SearchSpace) -> None:
    assert space.names == ["bits", "depth", "dropout", "width[0]", "width[1]", "width[2]"]
    assert space.variables[1] == IntVar("depth", 1, 3)
    assert space.variables[3] == ChoiceVar("width[0]", (8, 16, 32))
    assert space.variables[2] == FloatVar("dropout", 0.0, 0.5, step=0.25)
    assert space.constants == {"act": "relu"}
    assert space.layers == {"width": 3}
    assert len(space) == 6


def test_to_config_gathers_lists_and_constants(space: SearchSpace) -> None:
    params = {
        "depth": 2,
        "width[0]": 32,
        "width[1]": 8,
        "width[2]": 16,
        "bits": 4,
        "dropout": 0.25,
    }
    config = space.to_config(params)
    assert config == {
        "depth": 2,
        "width": [32, 8, 16],
        "act": "relu",
        "bits": 4,
        "dropout": 0.25,
    }
    assert list(config) == ["act", "bits", "depth", "dropout", "width"]  # name order
    assert space.to_params(config) == params


def test_to_config_rejects_bad_params(space: SearchSpace) -> None:
    params = {"depth": 2, "width[0]": 32, "width[1]": 8, "width[2]": 16, "bits": 4, "dropout": 0.0}
    with pytest.raises(ValueError, match="parameters missing: width\\[2\\]"):
        space.to_config({k: v for k, v in params.items() if k != "width[2]"})
    with pytest.raises(ValueError, match="unknown parameters: speed"):
        space.to_config({**params, "speed": 1})
    with pytest.raises(ValueError, match="depth=7 is outside its range"):
        space.to_config({**params, "depth": 7})
    with pytest.raises(ValueError, match=r"dropout=0\.3 is outside its range"):
        space.to_config({**params, "dropout": 0.3})  # off the 0.25 grid


def test_sample_stays_in_the_space_and_covers_it(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(300)]
    for params in samples:
        space.check_params(params)
        assert type(params["depth"]) is int and type(params["dropout"]) is float
    assert {p["depth"] for p in samples} == {1, 2, 3}
    assert {p["dropout"] for p in samples} == {0.0, 0.25, 0.5}
    assert {p["width[1]"] for p in samples} == {8, 16, 32}
    again = [space.sample(np.random.default_rng(0)) for _ in range(1)]
    assert again[0] == samples[0]


def test_log_and_continuous_sampling() -> None:
    rng = np.random.default_rng(1)
    lr = FloatVar("lr", 1e-4, 1e-1, log=True)
    draws = np.array([lr.sample(rng) for _ in range(2000)])
    assert draws.min() >= 1e-4 and draws.max() <= 1e-1
    # log-uniform: about a third of the draws in each decade
    share = np.mean(draws < 1e-3)
    assert 0.25 < share < 0.42
    units = IntVar("units", 1, 1000, log=True)
    ints = [units.sample(rng) for _ in range(2000)]
    assert min(ints) >= 1 and max(ints) <= 1000
    assert 0.2 < np.mean(np.array(ints) <= 10) < 0.45


def test_variables_reject_bad_definitions() -> None:
    with pytest.raises(ValueError, match="low=5 is greater than high=1"):
        IntVar("x", 5, 1)
    with pytest.raises(ValueError, match="log scale needs low > 0"):
        FloatVar("x", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="at least one value"):
        ChoiceVar("x", ())
    with pytest.raises(ValueError, match="repeated: \\['x'\\]"):
        SearchSpace((IntVar("x", 0, 1), IntVar("x", 0, 2)))


def test_spec_to_suggestions_to_hashed_configs(toy_spec_data: dict[str, Any]) -> None:
    from hwsearch.models.base import get_family
    from hwsearch.search.hashing import config_hash
    from hwsearch.search.optimizer import make_optimizer

    spec = parse_spec(toy_spec_data)
    space = SearchSpace.from_spec(spec)
    opt = make_optimizer(
        spec.optimizer.name,
        space=space,
        objectives=spec.get_objectives(),
        n_constraints=len(spec.constraints),
        seed=spec.seed,
        options=spec.optimizer.options,
    )
    family = get_family(spec.family)
    hashes = set()
    for suggestion in opt.ask(8):
        config = family.canonical(space.to_config(suggestion.params))
        assert len(config["width"]) == 3 and config["act"] == "relu"
        assert all(
            family.knobs[k].problem(v) is None for k, v in config.items() if not isinstance(v, list)
        )
        hashes.add(config_hash(family.name, config))
    assert len(hashes) > 1


def test_variable_order_does_not_depend_on_the_order_of_the_spec(
    toy_spec_data: dict[str, Any],
) -> None:
    """A spec stored as JSONB (keys reordered) must search exactly as the one written."""
    reordered = dict(toy_spec_data)
    reordered["space"] = dict(reversed(list(toy_spec_data["space"].items())))
    assert list(reordered["space"]) != list(toy_spec_data["space"])
    first = SearchSpace.from_spec(parse_spec(toy_spec_data))
    second = SearchSpace.from_spec(parse_spec(reordered))
    assert first.names == second.names
