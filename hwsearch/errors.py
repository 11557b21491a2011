"""Exceptions raised by hwsearch.

Every error a user can cause derives from :class:`HwsearchError`, so a caller can catch one
class; the subclasses say which part of the input was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable


class HwsearchError(Exception):
    """Root of every hwsearch error."""


class SpecError(HwsearchError, ValueError):
    """A job spec (or a value inside one) is invalid.

    ``field`` is the dotted path of the offending field (``space.width.values[1]``) and
    ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class SpecErrors(HwsearchError, ValueError):
    """Several problems found in one spec; each is a :class:`SpecError`."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid job spec ({len(self.errors)} problem(s)):\n{lines}")


class UnknownNameError(HwsearchError, KeyError):
    """A name (family, optimizer, metric, target) is not registered; lists the valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class FilterError(HwsearchError, ValueError):
    """A filter expression (``--where``) cannot be parsed or names an unknown metric."""


class StorageError(HwsearchError, ValueError):
    """Storage refused a value given to it (not a spec problem): ``field`` names it and
    ``reason`` says why; the API answers 422, the CLI exits with 2."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class ConflictError(StorageError):
    """A write clashes with what is stored: an illegal state change or a duplicate (a metric,
    a front, a prediction stored once). The API answers 409."""


class NotFoundError(HwsearchError, LookupError):
    """A job or candidate asked for does not exist."""


class MeasurementError(HwsearchError, RuntimeError):
    """A measurement could not be taken on the target."""


class JobInterrupted(KeyboardInterrupt):
    """A job stopped from outside as Ctrl-C stops it (SIGTERM, a server shutting down):
    the driver marks it ``interrupted``, with what finished kept, and ``hwsearch resume``
    continues it. A ``KeyboardInterrupt``, so that no ``except Exception`` swallows it."""
