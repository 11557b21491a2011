"""Retries of store calls that fail for a passing reason on PostgreSQL.

Several drivers writing to one PostgreSQL database can meet a serialisation failure or a
deadlock (SQLSTATE 40001, 40P01), and any of them can lose its connection when the server
restarts. Each method of a repository behind :class:`~hwsearch.db.store.Store` is one
transaction, so running it again is safe: the failed attempt was rolled back as a whole. A
call is retried with a bounded exponential backoff for up to :data:`RETRY_WINDOW_S` seconds
(``HWSEARCH_DB_RETRY_S`` overrides it), then the last error is raised.

:func:`call_with_retries` does the same for any call — the driver uses it for Optuna's
writes to its study, whose errors wrap the driver's ones.

Not retried: anything on SQLite (its writers queue on the busy timeout instead), and every
error that is not about the connection or a transaction conflict (constraint violations,
bad input). The one ambiguous case is a connection lost *during* ``COMMIT``: the write may
have landed, and its retry then meets the unique constraints (a candidate's metric stored
once). A retried result whose every value is stored already, unchanged, is taken as that
landed write and succeeds; any other clash is refused, never written as a duplicate row.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

__all__ = [
    "RETRY_WINDOW_S",
    "call_with_retries",
    "install",
    "is_transient",
    "retrying",
    "transient_cause",
]

log = logging.getLogger("hwsearch.db")

RETRY_WINDOW_S = float(os.environ.get("HWSEARCH_DB_RETRY_S", "30"))
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0
#: serialization_failure, deadlock_detected, and the server going away
#: (admin_shutdown, crash_shutdown, cannot_connect_now)
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def is_transient(error: BaseException, dialect: str) -> bool:
    """Whether ``error`` from a ``dialect`` database is worth running the transaction again."""
    if dialect != "postgresql" or not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None)
    if state in TRANSIENT_SQLSTATES or (state or "").startswith("08"):  # connection errors
        return True
    # psycopg reports a refused or broken connection as OperationalError without a state.
    return isinstance(error, OperationalError) and state is None


def transient_cause(error: BaseException, dialect: str) -> DBAPIError | None:
    """The transient database error behind ``error``: itself, or what it was raised from
    (libraries such as Optuna wrap the driver's errors in their own)."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, DBAPIError) and is_transient(seen, dialect):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def call_with_retries(
    call: Callable[[], T], dialect: str, what: str, *, on_retry: Callable[[], None] | None = None
) -> T:
    """Run ``call`` (one whole transaction, or steps that are safe to repeat) again while it
    fails for a transient reason, for up to :data:`RETRY_WINDOW_S` seconds; ``on_retry``
    runs before each new attempt (to tidy what a failed one left)."""
    deadline = time.monotonic() + RETRY_WINDOW_S
    delay = FIRST_DELAY_S
    attempt = 1
    while True:
        try:
            if attempt > 1 and on_retry is not None:
                on_retry()
            return call()
        except Exception as exc:
            cause = transient_cause(exc, dialect)
            if cause is None or time.monotonic() + delay > deadline:
                raise
            reason = str(cause.orig or cause).strip().splitlines()[0] if str(cause) else ""
            log.warning(
                "%s failed (attempt %d: %s); retrying in %.1f s", what, attempt, reason, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            attempt += 1


def retrying(method: F) -> F:
    """Wrap a ``Store`` method so that transient failures run it again (see the module)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return call_with_retries(
            lambda: method(self, *args, **kwargs), self.engine.dialect.name, method.__name__
        )

    return wrapper  # type: ignore[return-value]


_NOT_RETRIED = frozenset({"open", "close", "engine"})


def install(cls: type) -> None:
    """Wrap every public method of ``cls`` (a store class) with :func:`retrying`."""
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or name in _NOT_RETRIED or not callable(value):
            continue
        if isinstance(value, staticmethod | classmethod | property):
            continue
        setattr(cls, name, retrying(value))
