"""Executors that evaluate candidates, and the evaluation of one candidate."""

from hwsearch.workers import builtin_kinds as _builtin_kinds  # noqa: F401  (train, table, lm)
from hwsearch.workers.evaluation import EvalOutcome, EvalTask, evaluate, evaluate_safely
from hwsearch.workers.executor import (
    Executor,
    InProcessExecutor,
    ProcessPoolExecutor,
    make_executor,
)

__all__ = [
    "EvalOutcome",
    "EvalTask",
    "Executor",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "evaluate",
    "evaluate_safely",
    "make_executor",
]
