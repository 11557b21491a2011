"""The meaning of a spec that has the right shape: knobs of its family and values they
accept, a target that can be named, an evaluation kind that takes the family and produces
the metrics asked for, energy factors that resolve, an optimizer that takes its options;
tables and the prior are checked in :mod:`.table_checks`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from hwsearch.errors import HwsearchError, SpecError, UnknownNameError
from hwsearch.search.spec.base import get_family
from hwsearch.search.spec.schema import JobSpec
from hwsearch.search.spec.sections import DeviceTargetSpec, MeasurementSettings, TableTargetSpec
from hwsearch.search.spec.table_checks import check_prior, check_tables
from hwsearch.search.spec.variables import ChoiceVarSpec, FloatVarSpec, IntVarSpec, VariableSpec
from hwsearch.workers.kinds import kind_of

if TYPE_CHECKING:
    from hwsearch.models.base import Knob, ModelFamily


def check_meaning(spec: JobSpec) -> list[SpecError]:
    """Every meaning problem of ``spec``, in the order of its sections."""
    from hwsearch.search.optimizer import check_optimizer_options, get_optimizer_class

    problems = _check_space(spec)
    problems += _check_target(spec.target)
    if not problems:
        problems += _check_runtime(spec)
    problems += check_tables(spec)
    problems += _check_energy_and_lm(spec)
    problems += check_prior(spec)
    if spec.search is not None and spec.search.driving == "async" and spec.active_learning:
        problems.append(
            SpecError(
                "search.driving",
                "active_learning settles candidates a batch at a time; use generational "
                "(or leave driving unset)",
            )
        )
    first: dict[str, int] = {}
    for i, objective in enumerate(spec.objectives):
        if objective.metric in first:
            problems.append(
                SpecError(
                    f"objectives[{i}].metric",
                    f"{objective.metric!r} is already objectives[{first[objective.metric]}]",
                )
            )
        first.setdefault(objective.metric, i)
    try:
        options = check_optimizer_options(spec.optimizer.name, spec.optimizer.options)
        get_optimizer_class(spec.optimizer.name).check_objectives(options, len(spec.objectives))
    except UnknownNameError as exc:
        problems.append(SpecError("optimizer.name", str(exc)))
    except SpecError as exc:
        problems.append(exc)
    if not problems:  # the kind's own checks (user code runs once) on a sound spec only
        kind = kind_of(spec.evaluation)
        found = kind.check_config(get_family(spec.family), spec.evaluation, first_config(spec))
        problems += [SpecError(f, r) for f, r in found]
    return problems


def first_config(spec: JobSpec) -> dict[str, Any]:
    """One config of the spec's space: each variable's first choice or low end, and the
    constants."""
    out: dict[str, Any] = {}
    for key, entry in spec.space.items():
        if isinstance(entry, ChoiceVarSpec):
            out[key] = entry.values[0]
        elif isinstance(entry, IntVarSpec | FloatVarSpec):
            out[key] = entry.low
        else:
            out[key] = entry
    return out


def _check_target(name: str | TableTargetSpec | DeviceTargetSpec) -> list[SpecError]:
    if isinstance(name, TableTargetSpec):
        return []  # see table_checks.check_tables
    if isinstance(name, DeviceTargetSpec):
        return [SpecError("target.name", p.reason) for p in _check_target(name.name)]
    try:
        from hwsearch.hardware.targets import parse_target_name
    except ImportError:
        return []
    try:  # whether the device exists is checked where the candidate runs
        parse_target_name(name)
    except SpecError as exc:
        return [SpecError("target", exc.reason)]
    except (HwsearchError, ValueError) as exc:
        return [SpecError("target", str(exc))]
    return []


def _device_target(spec: JobSpec) -> Any:
    """The spec's device target (a :class:`~hwsearch.hardware.Target`), None for a table."""
    from hwsearch.hardware.targets import parse_target_name

    target = spec.target
    if isinstance(target, TableTargetSpec):
        return None
    return parse_target_name(target.name if isinstance(target, DeviceTargetSpec) else target)


def _check_runtime(spec: JobSpec) -> list[SpecError]:
    """An evaluation kind that deploys on the target's runtime, and knob values the target
    can run (its :meth:`~hwsearch.hardware.TargetKind.value_problem`)."""
    from hwsearch.hardware.targets import target_kind

    target = _device_target(spec)
    if target is None:
        return []
    tkind = target_kind(target)
    ekind = kind_of(spec.evaluation)
    if tkind.runtime not in ekind.runtimes:
        return [
            SpecError(
                "target",
                f"{target.name!r} runs candidates in {tkind.runtime}; evaluation "
                f"{ekind.type!r} deploys them only on {', '.join(sorted(ekind.runtimes))}",
            )
        ]
    problems: list[SpecError] = []
    for key, entry in spec.space.items():
        base = f"space.{key}"
        if isinstance(entry, ChoiceVarSpec):
            values = [(f"{base}.values[{i}]", v) for i, v in enumerate(entry.values)]
        elif isinstance(entry, IntVarSpec | FloatVarSpec):
            values = [(f"{base}.low", entry.low), (f"{base}.high", entry.high)]
        elif isinstance(entry, list):
            values = [(f"{base}[{i}]", v) for i, v in enumerate(entry)]
        else:
            values = [(base, entry)]
        for path, value in values:
            problem = tkind.value_problem(key, value)
            if problem is not None:
                problems.append(SpecError(path, f"{problem} (target {target.name!r})"))
    return problems


def _knob_problems(knob: Knob, path: str, value: Any) -> list[SpecError]:
    problem = knob.problem(value)
    return [SpecError(path, problem)] if problem else []


def _check_entry(
    family: ModelFamily, knobs: Mapping[str, Knob], key: str, entry: Any
) -> list[SpecError]:
    base = f"space.{key}"
    knob = knobs[key]
    per_block = sorted(k.name for k in knobs.values() if k.per_block)
    not_per_block = (
        f"knob {key!r} has one value for the whole model; per-block knobs of "
        f"{family.name!r}: {', '.join(per_block) or 'none'}"
    )
    problems: list[SpecError] = []
    if isinstance(entry, IntVarSpec | FloatVarSpec | ChoiceVarSpec):
        if entry.per_layer is not None and not knob.per_block:
            problems.append(SpecError(f"{base}.per_layer", not_per_block))
        if isinstance(entry, ChoiceVarSpec):
            for i, value in enumerate(entry.values):
                problems += _knob_problems(knob, f"{base}.values[{i}]", value)
            return problems
        if knob.kind == "choice":
            choices = f" from {list(knob.choices)}" if knob.choices is not None else ""
            return [
                *problems,
                SpecError(
                    f"{base}.type",
                    f"knob {key!r} takes named values; use type: choice with values{choices}",
                ),
            ]
        if knob.kind == "int" and isinstance(entry, FloatVarSpec):
            return [
                *problems,
                SpecError(f"{base}.type", f"knob {key!r} takes integers; use type: int or choice"),
            ]
        problems += _knob_problems(knob, f"{base}.low", entry.low)
        problems += _knob_problems(knob, f"{base}.high", entry.high)
        return problems
    if isinstance(entry, list):
        if not knob.per_block:
            return [SpecError(base, f"a list is only allowed for per-block knobs; {not_per_block}")]
        for i, value in enumerate(entry):
            problems += _knob_problems(knob, f"{base}[{i}]", value)
        return problems
    return _knob_problems(knob, base, entry)


def _check_space(spec: JobSpec) -> list[SpecError]:
    try:
        family = get_family(spec.family)
    except UnknownNameError as exc:
        return [SpecError("family", str(exc))]
    problems: list[SpecError] = []
    knobs = family.knobs_for(spec.space)
    for key, entry in spec.space.items():
        if key not in knobs:
            problems.append(
                SpecError(
                    f"space.{key}",
                    f"not a knob of family {family.name!r}; knobs: {', '.join(knobs)}",
                )
            )
            continue
        problems += _check_entry(family, knobs, key, entry)
    if not spec.variables():
        problems.append(
            SpecError("space", "has no variables; give at least one knob a range or choices")
        )
    if not problems:
        problems += _check_per_layer_lengths(spec, family)
    return problems


def _largest(entry: Any) -> Any:
    """The value of a space entry that makes the deepest network (its largest value)."""
    if isinstance(entry, IntVarSpec | FloatVarSpec):
        return entry.high
    if isinstance(entry, ChoiceVarSpec):
        numbers = [v for v in entry.values if isinstance(v, int | float)]
        return max(numbers) if len(numbers) == len(entry.values) else entry.values[0]
    return entry


def _check_per_layer_lengths(spec: JobSpec, family: ModelFamily) -> list[SpecError]:
    """Each per-layer knob needs a value for every block of the deepest network searched."""
    deepest = {key: _largest(entry) for key, entry in spec.space.items()}
    for key, entry in spec.space.items():  # lists must be long enough to build it at all
        if isinstance(entry, VariableSpec) and entry.per_layer is not None:
            deepest[key] = [_largest(entry)] * max(entry.per_layer, 64)
    try:
        blocks = family.num_blocks(family.canonical(deepest))
    except (ValueError, SpecError):
        return []  # the values themselves are checked elsewhere
    return [
        SpecError(
            f"space.{key}.per_layer",
            f"is {entry.per_layer}, but the deepest network in this space has {blocks} "
            f"blocks; give per_layer: {blocks}",
        )
        for key, entry in spec.space.items()
        if isinstance(entry, VariableSpec)
        and entry.per_layer is not None
        and entry.per_layer < blocks
    ]


def _check_energy_and_lm(spec: JobSpec) -> list[SpecError]:
    """Target profile factors, an evaluation kind that takes the family, and metrics that
    kind produces."""
    problems: list[SpecError] = []
    measurement = spec.measurement
    if (
        isinstance(measurement, MeasurementSettings)
        and measurement.target_profile is not None
        and measurement.target_profile != (spec.target_overrides or None)
    ):
        problems.append(
            SpecError(
                "measurement.target_profile",
                "is derived from the target; give profile factors on the target: "
                "target: {name: cpu, region: FR, ...}",
            )
        )
    if isinstance(spec.target, DeviceTargetSpec) and not _check_target(spec.target):
        problems += _profile_problems(spec)
    try:
        family = get_family(spec.family)
    except UnknownNameError:
        return problems  # reported by _check_space (family)
    kind = kind_of(spec.evaluation)
    if family.evaluations is not None and kind.type not in family.evaluations:
        takes = " or ".join(repr(t) for t in family.evaluations)
        return [
            *problems,
            SpecError(
                "evaluation",
                f"family {family.name!r} takes an evaluation of type {takes}: "
                f"{{type: {family.evaluations[0]}, ...}}",
            ),
        ]
    refused = [SpecError(f, r) for f, r in kind.problems(family, spec.evaluation)]
    if refused:
        return problems + refused
    timed_here = spec.target_table is None
    available = kind.produces(family, spec.evaluation, timed_here=timed_here)
    tables = not timed_here or spec.evaluation_table is not None
    where = "when evaluating from tables" if tables else f"for family {family.name!r}"
    return problems + _unproduced(spec, available, where)


def _unproduced(spec: JobSpec, available: Collection[str], where: str) -> list[SpecError]:
    """Objectives and constraints naming a metric the evaluation does not produce."""
    used = [(f"objectives[{i}].metric", o.metric) for i, o in enumerate(spec.objectives)]
    used += [(f"constraints[{i}]", c.metric) for i, c in enumerate(spec.get_constraints())]
    return [
        SpecError(
            field,
            f"metric {metric!r} is not produced {where}; available: {', '.join(sorted(available))}",
        )
        for field, metric in used
        if metric not in available
    ]


def _profile_problems(spec: JobSpec) -> list[SpecError]:
    """Factors that resolve to no usable profile: an unknown region, a meter not here."""
    from hwsearch.hardware.carbon import GRID_INTENSITY
    from hwsearch.hardware.energy import meter_available
    from hwsearch.hardware.profiles import normalise_region

    overrides = spec.target_overrides
    problems: list[SpecError] = []
    try:
        profile = spec.target_profile()
    except SpecError as exc:
        return [exc]
    if "grid_gco2e_per_kwh" not in overrides and profile.region not in GRID_INTENSITY:
        problems.append(
            SpecError(
                "target.region",
                f"no grid intensity for region {normalise_region(profile.region)!r}; known: "
                f"{', '.join(sorted(GRID_INTENSITY))} (or give grid_gco2e_per_kwh)",
            )
        )
    meter = overrides.get("meter")
    if meter == "nvml" and profile.kind != "cuda":
        problems.append(SpecError("target.meter", "nvml measures NVIDIA GPUs; use a cuda target"))
    elif meter in ("nvml", "rapl") and not meter_available(
        meter, device_index=profile.device_index or 0
    ):
        where = (
            "no readable /sys/class/powercap/intel-rapl:N/energy_uj"
            if meter == "rapl"
            else "NVML's energy counter cannot be read (nvidia-ml-py, driver, GPU)"
        )
        problems.append(
            SpecError("target.meter", f"{meter} is not available here: {where}; use auto")
        )
    return problems
