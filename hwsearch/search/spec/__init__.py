"""The job spec: what to search, for which target, towards which objectives, within what budget.

A spec is YAML or JSON (see ``examples/``). :func:`parse_spec` checks it in two passes: the
shape and types (pydantic models, unknown fields rejected everywhere), then the meaning (knobs
of the family, values each knob accepts, known metrics, a registered optimizer and its
options). Every problem becomes one :class:`~hwsearch.errors.SpecError` whose ``field`` is a
dotted path (``space.width.values[1]``, ``objectives[0].metric``) and all of them are raised
together as :class:`~hwsearch.errors.SpecErrors`.

Defaults of the optional sections:

* ``evaluation``: ``epochs: 4, finetune_epochs: 1, batch_size: 64, learning_rate: 0.05``
  (training of each candidate; fine-tuning after compression);
  ``{type: table, table: FILE, column: COL}`` takes the quality from a table instead;
* ``measurement``: ``batch_size: 1, threads: 1, warmup: 10, min_repeats: 20,
  max_repeats: 200, target_cv: 0.05, max_seconds: 10`` (timing repeats stop once the
  coefficient of variation is below ``target_cv`` after ``min_repeats``, at ``max_repeats``,
  or when the timed phase has lasted ``max_seconds`` with ``min_repeats`` taken);
* ``threads``: ``training: 1, evaluation: 1`` (intra-op threads per worker while a candidate
  is trained and while its test accuracy is computed; ``auto``: the cores of one worker,
  see :mod:`hwsearch.hardware.threads`); the measurement's are ``measurement.threads``;
* ``optimizer``: ``{name: optuna-nsga2}`` with that optimizer's default options;
* ``constraints``: none; ``seed``: 0; ``name``: the file name, else the family name.

Tables of metrics measured elsewhere (CSV files with one row per architecture, see
:mod:`hwsearch.hardware.tables`) come in two places:

* a **table target**, ``target: {name: pixel3, table: latency_ms.csv, column: pixel3}``: a
  device that is not here, whose latencies were measured elsewhere (``column`` defaults to
  ``name``). Its latency is looked up, not timed, so it takes no ``measurement`` section;
  internally the lookup travels to the workers as ``measurement: {type: table, ...}``;
* a **table evaluation**, ``evaluation: {type: table, table: accuracy.csv, column:
  cifar10_acc, scale: 0.01}``: the ``accuracy`` metric is the table's value times ``scale``.

A **device target** with a profile, ``target: {name: cpu, region: FR, pue: 1.2, tdp_w: 95,
embodied_kgco2e: 800, lifetime_years: 5, busy_share: 0.3, cores: 16, grid_gco2e_per_kwh:
60, meter: auto}``: a device of this machine whose energy and carbon factors
(:mod:`hwsearch.hardware.profiles`) differ from the defaults; every factor is optional.
Internally the factors travel to the workers as ``measurement.target_profile``.

The ``transformer`` family takes an LM evaluation, ``evaluation: {type: lm, steps: 150,
finetune_steps: 30, batch_size: 16, seq_len: 64, learning_rate: 0.003, eval_windows: 32,
prompt_len: 32, new_tokens: 32}`` (``type: lm`` and every setting may be left out for it);
``measurement.batch_size`` is the serving batch of its prefill and decode timings.

Both need a family whose configs have a table key (``nb201``: its architecture string) and
both take ``key`` (the key column, default ``arch``). A relative ``table`` path is read from
the spec file's folder (:func:`load_spec`), else from ``base_dir`` or the current directory
(:func:`parse_spec`); the spec keeps the absolute path, so a stored spec finds its tables.

The package's modules: the sections' models (:mod:`.variables`, :mod:`.sections`,
:mod:`.schema`), from data to a spec (:mod:`.loading`), pydantic's errors in words
(:mod:`.pydantic_errors`), and the checks of meaning (:mod:`.checks`,
:mod:`.table_checks`). Files are read by :mod:`hwsearch.search.spec_files` under the caps of
:mod:`hwsearch.search.limits`.
"""

from __future__ import annotations

from hwsearch.search.spec.base import Scalar
from hwsearch.search.spec.loading import load_spec, parse_spec
from hwsearch.search.spec.schema import EvaluationSpec, JobSpec, TargetSpec
from hwsearch.search.spec.sections import (
    ActiveLearningSpec,
    Budget,
    DeviceTargetSpec,
    MeasurementSettings,
    ObjectiveSpec,
    OptimizerSpec,
    PriorSpec,
    PriorTableSpec,
    TableMeasurement,
    TableTargetSpec,
    ThreadsSpec,
)
from hwsearch.search.spec.variables import (
    ChoiceVarSpec,
    ConstantValue,
    FloatVarSpec,
    IntVarSpec,
    ScalarValue,
    SpaceEntry,
    VariableSpec,
)
from hwsearch.workers.builtin_kinds import EvaluationSettings, LMEvaluation, TableEvaluation
from hwsearch.workers.table_paths import TableColumn, TablePath

__all__ = [
    "ActiveLearningSpec",
    "Budget",
    "ChoiceVarSpec",
    "ConstantValue",
    "DeviceTargetSpec",
    "EvaluationSettings",
    "EvaluationSpec",
    "FloatVarSpec",
    "IntVarSpec",
    "JobSpec",
    "LMEvaluation",
    "MeasurementSettings",
    "ObjectiveSpec",
    "OptimizerSpec",
    "PriorSpec",
    "PriorTableSpec",
    "Scalar",
    "ScalarValue",
    "SpaceEntry",
    "TableColumn",
    "TableEvaluation",
    "TableMeasurement",
    "TablePath",
    "TableTargetSpec",
    "TargetSpec",
    "ThreadsSpec",
    "VariableSpec",
    "load_spec",
    "parse_spec",
]
