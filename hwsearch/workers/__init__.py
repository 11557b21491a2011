"""Executors that evaluate candidates, and the evaluation of one candidate."""

from hwsearch.workers import builtin_kinds as _builtin_kinds  # noqa: F401  (train, table, lm)
from hwsearch.workers.evaluation import EvalOutcome, EvalTask, evaluate, evaluate_safely
from hwsearch.workers.executor import (
    Executor,
    InProcessExecutor,
    ProcessPoolExecutor,
    executor_for,
    make_executor,
)
from hwsearch.workers.placement import ExecutorSettings

__all__ = [
    "EvalOutcome",
    "EvalTask",
    "Executor",
    "ExecutorSettings",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "evaluate",
    "evaluate_safely",
    "executor_for",
    "make_executor",
]
