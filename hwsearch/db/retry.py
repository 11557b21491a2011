"""Retries of store calls that fail for a passing reason on PostgreSQL.

Several drivers writing to one PostgreSQL database can meet a serialisation failure or a
deadlock (SQLSTATE 40001, 40P01), and any of them can lose its connection when the server
restarts. Each :class:`~hwsearch.db.store.Store` method is one transaction, so running it
again is safe: the failed attempt was rolled back as a whole. A call is retried with a
bounded exponential backoff for up to :data:`RETRY_WINDOW_S` seconds (``HWSEARCH_DB_RETRY_S``
overrides it), then the last error is raised.

Not retried: anything on SQLite (its writers queue on the busy timeout instead), and every
error that is not about the connection or a transaction conflict (constraint violations,
bad input). The one ambiguous case is a connection lost *during* ``COMMIT``: the write may
have landed, and its retry then meets the unique constraints (a candidate's metric stored
twice is refused) and fails with that error instead of writing a duplicate row.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

__all__ = ["RETRY_WINDOW_S", "install", "is_transient", "retrying"]

log = logging.getLogger("hwsearch.db")

RETRY_WINDOW_S = float(os.environ.get("HWSEARCH_DB_RETRY_S", "30"))
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0
#: serialization_failure, deadlock_detected, and the server going away
#: (admin_shutdown, crash_shutdown, cannot_connect_now)
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})

F = TypeVar("F", bound=Callable[..., Any])


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


def retrying(method: F) -> F:
    """Wrap a ``Store`` method so that transient failures run it again (see the module)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        dialect = self.engine.dialect.name
        deadline = time.monotonic() + RETRY_WINDOW_S
        delay = FIRST_DELAY_S
        attempt = 1
        while True:
            try:
                return method(self, *args, **kwargs)
            except DBAPIError as exc:
                if not is_transient(exc, dialect) or time.monotonic() + delay > deadline:
                    raise
                reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc) else ""
                log.warning(
                    "%s failed (attempt %d: %s); retrying in %.1f s",
                    method.__name__,
                    attempt,
                    reason,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
                attempt += 1

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
