"""Optuna's samplers behind the :class:`~hwsearch.search.optimizer.Optimizer` protocol.

One adapter, :class:`OptunaOptimizer`, translates the protocol for every sampler: a study,
``study.ask`` with fixed distributions built from the space, ``study.tell`` for results
(a failed evaluation is told as a failed trial, which every sampler leaves out). The study
is in memory until the driver attaches the job's database
(:meth:`OptunaOptimizer.attach_storage`); then it lives there, in Optuna's RDB storage, as
``hwsearch-job-<id>``, where ``optuna-dashboard`` and ``optuna.load_study`` find it. Each
registered optimizer is a small subclass that names its options and builds its sampler:

=================  ================  =================================================
name               sampler           options (default)
=================  ================  =================================================
``optuna-nsga2``   NSGAIISampler     population_size (16), crossover_prob (0.9),
                                     mutation_prob (None: 1 / variables),
                                     swapping_prob (0.5)
``optuna-nsga3``   NSGAIIISampler    the same, and dividing_parameter (3)
``optuna-tpe``     TPESampler        n_startup_trials (10), n_ei_candidates (24),
                                     multivariate (None: Optuna's choice, multivariate
                                     for one objective only), constant_liar (True)
``optuna-gp``      GPSampler         n_startup_trials (10), deterministic_objective
                                     (False)
``optuna-random``  RandomSampler     none
=================  ================  =================================================

Constraint violations are attached with ``Trial.set_constraint`` before ``tell`` — the
ask-and-tell way of Optuna 5, where the samplers' ``constraints_func`` is deprecated. Every
sampler here but the random one reads them from the trial: NSGA-II/III rank by constrained
domination (feasible first, then by total violation), TPE splits good and bad trials
feasible-first, and GP multiplies its (hyper-volume) expected improvement by the probability
of feasibility. All of them take several objectives, and every variable of the space —
per-layer ones (``width[0]``, ...) included, as they are plain variables to the sampler.

Optuna is imported only when an optimizer of this kind is built.
"""

from __future__ import annotations

import abc
import contextlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from hwsearch.errors import SpecError
from hwsearch.search.optimizer import Optimizer, Suggestion, int_option, probability_option
from hwsearch.search.space import ChoiceVar, FloatVar, IntVar

if TYPE_CHECKING:
    import optuna
    from sqlalchemy.engine import URL

T = TypeVar("T")

_CREATE_ATTEMPTS = 5


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is a dependency of hwsearch
        raise ImportError("the Optuna optimizers need Optuna: pip install 'optuna>=5'") from exc
    return optuna


def call_with_retries(
    call: Callable[[], T], dialect: str, what: str, *, on_retry: Callable[[], None] | None = None
) -> T:
    """:func:`hwsearch.db.retry.call_with_retries`, imported when a study is used (checking
    a spec's options imports no storage)."""
    from hwsearch.db.retry import call_with_retries as retried

    return retried(call, dialect, what, on_retry=on_retry)


def _rdb_storage(lib: Any, url: URL) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on ``url``: SQLite connections wait for a lock as hwsearch's do,
    PostgreSQL ones are checked before use (a server restart between trials is survived).

    Drivers starting together on a database without Optuna's tables race to create them,
    and the losers fail on a duplicate key; each step Optuna takes is one it skips once
    done, so the creation is simply tried again.
    """
    from sqlalchemy.exc import DBAPIError

    from hwsearch.db.engine import SQLITE_BUSY_TIMEOUT_S

    if url.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        kwargs = {"pool_pre_ping": True}
    rendered = url.render_as_string(hide_password=False)
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            return lib.storages.RDBStorage(rendered, engine_kwargs=kwargs)
        except DBAPIError:
            if attempt == _CREATE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _bool_option(options: Mapping[str, Any], key: str, *, allow_none: bool = False) -> bool | None:
    value = options[key]
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        expected = "true, false or null" if allow_none else "true or false"
        raise SpecError(f"optimizer.{key}", f"expected {expected}, got {value!r}")
    return value


class OptunaOptimizer(Optimizer):
    """A study driven by the sampler that :meth:`make_sampler` builds (override it)."""

    @abc.abstractmethod
    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        """The sampler, from the checked ``self.options`` and ``self.seed``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        lib = _import_optuna()
        lib.logging.set_verbosity(lib.logging.WARNING)
        dist = lib.distributions
        self._distributions: dict[str, optuna.distributions.BaseDistribution] = {}
        for var in self.space.variables:
            if isinstance(var, IntVar):
                self._distributions[var.name] = dist.IntDistribution(
                    var.low, var.high, log=var.log, step=var.step
                )
            elif isinstance(var, FloatVar):
                self._distributions[var.name] = dist.FloatDistribution(
                    var.low, var.high, log=var.log, step=var.step
                )
            elif isinstance(var, ChoiceVar):
                self._distributions[var.name] = dist.CategoricalDistribution(var.values)
        with warnings.catch_warnings():  # experimental-feature notices of the samplers
            warnings.simplefilter("ignore", lib.exceptions.ExperimentalWarning)
            sampler = self.make_sampler(lib)
        self._study: optuna.Study = lib.create_study(
            directions=[o.direction for o in self.objectives], sampler=sampler
        )
        self._name_metrics()
        self._trials: dict[int, optuna.Trial] = {}
        self._fail_state = lib.trial.TrialState.FAIL
        self._running_state = lib.trial.TrialState.RUNNING
        self._finished_error = lib.exceptions.UpdateFinishedTrialError
        self._dialect = "sqlite"  # in memory until attach_storage: nothing to retry
        self._experimental = lib.exceptions.ExperimentalWarning

    def _name_metrics(self) -> None:
        """Name the study's values by their metrics (optuna-dashboard shows ``accuracy``,
        not ``0``)."""
        with warnings.catch_warnings():  # set_metric_names is experimental in Optuna
            warnings.simplefilter("ignore")
            self._study.set_metric_names([o.metric for o in self.objectives])

    @property
    def study(self) -> optuna.Study:
        """The underlying study (for inspection; the protocol does not need it)."""
        return self._study

    def attach_storage(self, url: str, name: str) -> None:
        """Keep the study in Optuna's RDB storage on the job's database ``url``, as ``name``.

        The study is made afresh: one of that name left by an earlier run of the job (the
        job is being resumed) is deleted first. The driver resumes by replay, asking the
        same batches from the start and telling the stored results again, so the new study
        receives every trial of the job once, in the original order; loading the old one
        instead would hold each replayed trial twice. An in-memory SQLite database keeps
        the in-memory study (Optuna's own connections could not see that database).
        """
        if self._trials or self._study.trials:
            raise RuntimeError("attach_storage must come before the first ask")
        from hwsearch.db.engine import normalize_url

        parsed = normalize_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            return
        lib = _import_optuna()
        self._dialect = parsed.get_backend_name()
        sampler = self._study.sampler

        def attach() -> optuna.Study:
            storage = _rdb_storage(lib, parsed)
            with contextlib.suppress(KeyError):  # KeyError: none yet, the job's first run
                lib.delete_study(study_name=name, storage=storage)
            return lib.create_study(
                storage=storage,
                study_name=name,
                directions=[o.direction for o in self.objectives],
                sampler=sampler,
            )

        self._study = call_with_retries(attach, self._dialect, f"attaching study {name}")
        self._name_metrics()

    def _fail_orphans(self) -> None:
        """Fail the trials a failed ``ask`` left running, so that no sampler counts them."""
        running = self._study.get_trials(deepcopy=False, states=(self._running_state,))
        for trial in running:
            if trial.number not in self._trials:
                self._study.tell(trial.number, state=self._fail_state, skip_if_finished=True)

    def ask(self, n: int) -> list[Suggestion]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._experimental)
            for _ in range(n):
                # The study's storage is the job's database: its writes survive the outages
                # the driver's do (hwsearch.db.retry), a failed attempt's trial is failed.
                trial = call_with_retries(
                    lambda: self._study.ask(fixed_distributions=self._distributions),
                    self._dialect,
                    "asking Optuna for a trial",
                    on_retry=self._fail_orphans,
                )
                self._trials[trial.number] = trial
                params = {name: trial.params[name] for name in self._distributions}
                out.append(Suggestion(trial.number, params))
        return out

    def tell(
        self,
        suggestion_id: int,
        values: Sequence[float] | None,
        violations: Sequence[float] = (),
    ) -> None:
        trial = self._trials.get(suggestion_id)
        if trial is None:
            raise ValueError(f"suggestion {suggestion_id!r} is unknown or was already told")
        checked, limits = self._check_result(values, violations)
        if checked is None:
            call_with_retries(
                lambda: self._study.tell(trial, state=self._fail_state, skip_if_finished=True),
                self._dialect,
                "telling Optuna a failed trial",
            )
        else:

            def tell() -> None:
                try:
                    for i, violation in enumerate(limits):
                        trial.set_constraint(str(i), violation)
                except self._finished_error:  # an attempt whose answer was lost did land
                    return
                self._study.tell(trial, checked, skip_if_finished=True)

            call_with_retries(tell, self._dialect, "telling Optuna a trial's values")
        del self._trials[suggestion_id]


class _OptunaGenetic(OptunaOptimizer):
    """Options shared by Optuna's NSGA-II and NSGA-III."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "population_size": 16,
        "crossover_prob": 0.9,
        "mutation_prob": None,
        "swapping_prob": 0.5,
    }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["population_size"] = int_option(merged, "population_size", minimum=2)
        for key in ("crossover_prob", "mutation_prob", "swapping_prob"):
            merged[key] = probability_option(merged, key)
        for key in ("crossover_prob", "swapping_prob"):
            if merged[key] is None:
                merged[key] = cls.OPTIONS[key]
        return merged

    def _genetic_kwargs(self) -> dict[str, Any]:
        keys = ("population_size", "crossover_prob", "mutation_prob", "swapping_prob")
        return {key: self.options[key] for key in keys} | {"seed": self.seed}


class OptunaNSGA2(_OptunaGenetic):
    """NSGA-II from Optuna (``optuna-nsga2``)."""

    #: a trial's generation is fixed when it is asked, so with several workers most of a
    #: generation is bred before the last one completed (40% worse HV gap async, measured)
    asynchronous: ClassVar[bool] = False

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.NSGAIISampler(**self._genetic_kwargs())


class OptunaNSGA3(_OptunaGenetic):
    """NSGA-III from Optuna (``optuna-nsga3``); reference points are Das-Dennis points with
    ``dividing_parameter`` divisions per objective."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {**_OptunaGenetic.OPTIONS, "dividing_parameter": 3}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["dividing_parameter"] = int_option(merged, "dividing_parameter", minimum=1)
        return merged

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.NSGAIIISampler(
            **self._genetic_kwargs(), dividing_parameter=self.options["dividing_parameter"]
        )


class OptunaTPE(OptunaOptimizer):
    """TPE from Optuna (``optuna-tpe``). ``constant_liar`` keeps the trials of one batch apart
    (pending trials count as bad ones while they run)."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "n_startup_trials": 10,
        "n_ei_candidates": 24,
        "multivariate": None,
        "constant_liar": True,
    }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["n_startup_trials"] = int_option(merged, "n_startup_trials", minimum=0)
        merged["n_ei_candidates"] = int_option(merged, "n_ei_candidates", minimum=1)
        merged["multivariate"] = _bool_option(merged, "multivariate", allow_none=True)
        merged["constant_liar"] = _bool_option(merged, "constant_liar")
        return merged

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.TPESampler(
            n_startup_trials=self.options["n_startup_trials"],
            n_ei_candidates=self.options["n_ei_candidates"],
            multivariate=self.options["multivariate"],
            constant_liar=self.options["constant_liar"],
            seed=self.seed,
        )


class OptunaGP(OptunaOptimizer):
    """Gaussian-process Bayesian optimisation from Optuna (``optuna-gp``): log EI for one
    objective, log EHVI for several, both weighted by the probability of feasibility when
    there are constraints; trials asked in one batch are spread by the q-batch variants.
    Each suggestion refits the GPs, so it costs about a second: for expensive evaluations."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "n_startup_trials": 10,
        "deterministic_objective": False,
    }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["n_startup_trials"] = int_option(merged, "n_startup_trials", minimum=1)
        merged["deterministic_objective"] = _bool_option(merged, "deterministic_objective")
        return merged

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.GPSampler(
            n_startup_trials=self.options["n_startup_trials"],
            deterministic_objective=self.options["deterministic_objective"],
            warn_independent_sampling=False,
            seed=self.seed,
        )


class OptunaRandom(OptunaOptimizer):
    """Optuna's independent uniform sampling (``optuna-random``); ignores constraints."""

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.RandomSampler(seed=self.seed)


__all__ = ["OptunaGP", "OptunaNSGA2", "OptunaNSGA3", "OptunaOptimizer", "OptunaRandom", "OptunaTPE"]
