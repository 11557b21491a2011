"""From data to a :class:`JobSpec`: the limits first, then the shape (pydantic), then the
meaning; with every problem of a broken spec reported at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hwsearch.errors import SpecError, SpecErrors, UnknownNameError
from hwsearch.plugins import load_installed
from hwsearch.search.spec.checks import check_meaning
from hwsearch.search.spec.pydantic_errors import KIND_TAG, field_path, reason_for, spec_errors
from hwsearch.search.spec.schema import JobSpec, default_evaluation
from hwsearch.search.spec.user_model import expand
from hwsearch.workers.kinds import get_evaluation

if TYPE_CHECKING:
    from hwsearch.search.limits import SpecLimits


def load_spec(path: str | Path) -> JobSpec:
    """Read a YAML or JSON spec file (by extension; otherwise JSON, then YAML), under the
    limits of :mod:`hwsearch.search.spec_files` (size, encoding, nesting, aliases)."""
    from hwsearch.search.spec_files import read_spec_data

    resolved, data = read_spec_data(path)
    return parse_spec(data, default_name=Path(path).stem, base_dir=resolved.parent)


def parse_spec(
    data: Mapping[str, Any],
    *,
    default_name: str | None = None,
    base_dir: str | Path | None = None,
    file_roots: tuple[Path, ...] | None = None,
    limits: SpecLimits | None = None,
) -> JobSpec:
    """Validate ``data`` into a :class:`JobSpec`; raises :class:`SpecErrors` listing every
    problem found. ``default_name`` names the job when ``data`` has no ``name``; relative
    table paths are read from ``base_dir`` (default: the current directory); with
    ``file_roots`` (resolved folders), every file the spec names must lie inside one.
    ``limits`` (default: the process's, :mod:`hwsearch.search.limits`) are checked first."""
    if not isinstance(data, Mapping):
        raise SpecErrors(
            [SpecError("", f"a job spec must be a mapping of fields, got {type(data).__name__}")]
        )
    from hwsearch.search.limits import check_limits

    over = check_limits(data, limits)
    if over:  # before any model is built or file opened
        raise SpecErrors(over)
    load_installed()  # the installed plug-ins' families, kinds and metrics
    data = expand(data)  # the user's own model: family mapping, space.layers
    context = {"default_name": default_name, "base_dir": base_dir, "file_roots": file_roots}
    checked, early = _parse_evaluation(data, context)
    try:
        spec = JobSpec.model_validate(checked, context=context)
    except ValidationError as exc:
        # the evaluation section, once its own errors are in ``early``, is left out of
        # ``checked`` and stands in as the family's default: not another section's problems
        later = [p for p in spec_errors(exc) if not (early and _section(p.field) == "evaluation")]
        problems = early + later
        raise SpecErrors(problems + _meaning_of_the_rest(data, problems, context)) from None
    if early:
        raise SpecErrors(early + _meaning_of_the_rest(data, early, context))
    problems = check_meaning(spec)
    if problems:
        raise SpecErrors(problems)
    stored = check_limits(spec.to_dict(), limits)  # the stored form is re-read under them
    if stored:
        raise SpecErrors(stored)
    return spec


def _parse_evaluation(
    data: Mapping[str, Any], context: dict[str, Any]
) -> tuple[dict[str, Any], list[SpecError]]:
    """``data`` with its ``evaluation`` section validated by its kind's settings model, and
    that section's problems (then the section is left out of ``data``)."""
    evaluation = data.get("evaluation")
    if not isinstance(evaluation, Mapping):
        return dict(data), []
    try:
        kind = get_evaluation(str(evaluation.get("type") or default_evaluation(data.get("family"))))
    except UnknownNameError:
        return dict(data), []  # reported by the field's validator
    try:
        settings = kind.parse(evaluation, context)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ("evaluation", *error["loc"])
            tagged = {**error, "loc": ("evaluation", KIND_TAG + kind.type, *error["loc"])}
            problems.append(SpecError(field_path(loc), reason_for(tagged, loc)))
        return {k: v for k, v in data.items() if k != "evaluation"}, problems
    return {**data, "evaluation": settings}, []


# Stand-ins for required sections whose own errors are already reported, so that the rest
# of a broken spec can still be checked for meaning (and every problem reported at once).
_STAND_INS: dict[str, Any] = {
    "budget": {"evaluations": 1},
    "objectives": [{"metric": "accuracy", "direction": "maximize"}],
    "target": "cpu",
    "space": {},
}


def _meaning_of_the_rest(
    data: Mapping[str, Any], reported: list[SpecError], context: dict[str, Any]
) -> list[SpecError]:
    """Meaning problems of the parts of ``data`` that parsed, beside the ``reported`` ones."""
    broken_sections = {_section(p.field) for p in reported}
    broken_entries = {
        p.field.split(".")[1].split("[")[0] for p in reported if p.field.startswith("space.")
    }
    rest = dict(data)
    for section in broken_sections - {"space", "family"}:
        if section in _STAND_INS:
            rest[section] = _STAND_INS[section]
        else:
            rest.pop(section, None)
    if isinstance(rest.get("space"), Mapping):
        rest["space"] = {k: v for k, v in rest["space"].items() if k not in broken_entries}
    try:
        spec = JobSpec.model_validate(rest, context=context)
    except (ValidationError, SpecError, SpecErrors):
        return []  # too broken to say more
    return [
        p
        for p in check_meaning(spec)
        if _section(p.field) not in broken_sections or p.field.startswith("space.")
    ]


def _section(field: str) -> str:
    return field.split(".")[0].split("[")[0]


# --------------------------------------------------------------------------------------------
# Pydantic errors -> SpecError
