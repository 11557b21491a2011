"""The search: job specs, search spaces, objectives, optimizers, Pareto fronts, filters.

Called, ``hwsearch.search(model=..., evaluate=..., ...)`` searches your own model
(:func:`hwsearch.search.api.search`).
"""

import sys as _sys
import types as _types
from typing import Any

from hwsearch.search.filters import Filter, parse_filter
from hwsearch.search.hashing import canonical_json, config_hash
from hwsearch.search.objectives import METRICS, Constraint, Objective
from hwsearch.search.optimizer import (
    Optimizer,
    Suggestion,
    make_optimizer,
    optimizer_names,
    register_optimizer,
)
from hwsearch.search.pareto import (
    default_reference_point,
    hypervolume,
    non_dominated_sort,
    pareto_front,
)
from hwsearch.search.space import ChoiceVar, FloatVar, IntVar, SearchSpace, Variable
from hwsearch.search.spec import (
    EvaluationSettings,
    JobSpec,
    MeasurementSettings,
    load_spec,
    parse_spec,
)

__all__ = [
    "METRICS",
    "ChoiceVar",
    "Constraint",
    "EvaluationSettings",
    "Filter",
    "FloatVar",
    "IntVar",
    "JobSpec",
    "MeasurementSettings",
    "Objective",
    "Optimizer",
    "SearchSpace",
    "Suggestion",
    "Variable",
    "canonical_json",
    "config_hash",
    "default_reference_point",
    "hypervolume",
    "load_spec",
    "make_optimizer",
    "non_dominated_sort",
    "optimizer_names",
    "pareto_front",
    "parse_filter",
    "parse_spec",
    "register_optimizer",
]


class _SearchModule(_types.ModuleType):
    """``hwsearch.search`` is this package and, called, :func:`hwsearch.search.api.search`."""

    def __call__(self, **kwargs: Any) -> Any:
        from hwsearch.search.api import search

        return search(**kwargs)


_sys.modules[__name__].__class__ = _SearchModule
