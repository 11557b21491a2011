"""The spec of the user's own model, as written and as validated.

As written::

    family: {model: my_models:build, input_shape: [3, 32, 32]}   # or example_input: mod:fn
    evaluation: {type: python, evaluate: my_models:evaluate, metrics: {accuracy: maximize}}
    space:
      width: {type: choice, values: [16, 32]}
      layers: {"features.*": {sparsity: {type: float, low: 0, high: 0.5, step: 0.25}}}

As validated, the family is ``python`` (:mod:`hwsearch.models.custom.family`), its
``model`` / ``input_shape`` / ``example_input`` travel with the evaluation settings of kind
``python`` (:mod:`hwsearch.workers.python_kind`), and each per-layer knob is a flat space
entry ``layers[<glob>].<knob>``, so that every optimizer sees one flat space.
:func:`expand` goes from the first form to the second, :func:`fold` back (a stored spec
shows what the user wrote).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwsearch.errors import SpecError, SpecErrors

FAMILY = "python"
FAMILY_FIELDS = ("model", "input_shape", "example_input")


def expand(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with a ``family`` mapping folded into ``family: python`` and its evaluation,
    and ``space.layers`` flattened; anything else is returned as it is."""
    family = data.get("family")
    if not isinstance(family, Mapping):
        return dict(data)
    problems = [
        SpecError(
            f"family.{key}", f"unknown field; a family mapping takes {', '.join(FAMILY_FIELDS)}"
        )
        for key in family
        if key not in FAMILY_FIELDS
    ]
    if "model" not in family:
        problems.append(SpecError("family.model", "required: the 'module:build' of your model"))
    inputs = [key for key in ("input_shape", "example_input") if key in family]
    if len(inputs) != 1:  # what a batch for the model looks like: one way to say it
        problems.append(
            SpecError(
                f"family.{inputs[-1] if inputs else 'input_shape'}",
                "give exactly one of family.input_shape (e.g. [3, 32, 32]) and "
                "family.example_input (a 'module:function' of a batch size)",
            )
        )
    evaluation = data.get("evaluation")
    if evaluation is None:
        evaluation = {}
    if not isinstance(evaluation, Mapping):
        problems.append(SpecError("evaluation", "must be a mapping with type: python"))
        evaluation = {}
    out = dict(data)
    out["family"] = FAMILY
    out["evaluation"] = {
        "type": "python",
        **dict(evaluation),
        **{k: v for k, v in family.items() if k in FAMILY_FIELDS},
    }
    space = data.get("space")
    if isinstance(space, Mapping) and "layers" in space:
        flat = {k: v for k, v in space.items() if k != "layers"}
        layers = space["layers"]
        if not isinstance(layers, Mapping):
            problems.append(SpecError("space.layers", "must map layer globs to their knobs"))
        else:
            for glob, knobs in layers.items():
                if not isinstance(knobs, Mapping) or not knobs:
                    problems.append(
                        SpecError(f"space.layers.{glob}", "must map knobs to values or ranges")
                    )
                    continue
                for knob, entry in knobs.items():
                    flat[f"layers[{glob}].{knob}"] = entry
        out["space"] = flat
    if problems:
        raise SpecErrors(problems)
    return out


def names_code(data: Mapping[str, Any]) -> bool:
    """Whether reading ``data`` would import and run code it names: a ``family`` mapping
    or the ``python`` family, or an evaluation kind that runs user code, picked as the
    spec's schema picks it (the ``type`` given, else the family's default)."""
    from hwsearch.errors import UnknownNameError
    from hwsearch.search.spec.base import default_evaluation
    from hwsearch.workers.kinds import get_evaluation

    family = data.get("family")
    if isinstance(family, Mapping) or family == FAMILY:
        return True
    evaluation = data.get("evaluation")
    given = evaluation.get("type") if isinstance(evaluation, Mapping) else None
    try:
        return get_evaluation(str(given or default_evaluation(family))).runs_user_code
    except UnknownNameError:  # refused by the schema before any kind reads the section
        return False


#: why a server refuses a spec that names code (``check_names_no_code``)
RUN_IT_YOURSELF = (
    "a spec that names code to run (your own model) is not run by a server, which never "
    "imports code a spec names; run it with hwsearch run SPEC or hwsearch.search(...) on "
    "a database the server also opens, and the server serves its jobs and fronts"
)


def check_names_no_code(data: Mapping[str, Any]) -> None:
    """Raise ``SpecErrors`` on ``family`` where ``data`` names code to run
    (:func:`names_code`): what a server, or a queue for one, refuses before anything is
    imported."""
    if names_code(data):
        raise SpecErrors([SpecError("family", RUN_IT_YOURSELF)])


def fold(data: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a validated spec's dict: what :func:`expand` undid."""
    from hwsearch.models.custom.family import LAYER_KEY

    evaluation = data.get("evaluation")
    if data.get("family") != FAMILY or not isinstance(evaluation, dict):
        return data
    evaluation = dict(evaluation)
    data["family"] = {k: evaluation.pop(k) for k in FAMILY_FIELDS if k in evaluation}
    data["evaluation"] = evaluation
    space: dict[str, Any] = {}
    layers: dict[str, dict[str, Any]] = {}
    for key, entry in data.get("space", {}).items():
        match = LAYER_KEY.match(key)
        if match is None:
            space[key] = entry
        else:
            layers.setdefault(match["glob"], {})[match["knob"]] = entry
    if layers:
        space["layers"] = layers
    data["space"] = space
    return data
