"""Executors that evaluate candidates, and the evaluation of one candidate."""

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
