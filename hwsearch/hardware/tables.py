"""Tables of metrics measured elsewhere: one row per architecture, one column per metric.

A :class:`MetricTable` reads a CSV file once (pandas) and answers lookups by the value of its
key column (``arch`` by default) from a dict index. :func:`load_table` caches one table per
(file, key column) and process, re-reading a file that changed on disk.

A family whose configs can be looked up in such tables implements :class:`TableKeyed`.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from hwsearch.errors import HwsearchError, NotFoundError
from hwsearch.files import FileAccessError, check_file, max_file_bytes, read_capped, resolve

DEFAULT_KEY = "arch"


#: columns of a table that number its rows rather than measure anything
ROW_NUMBER_COLUMNS = frozenset({"index", "Unnamed: 0"})


class TableError(HwsearchError, ValueError):
    """A table file cannot be read or is malformed (a key missing or repeated, no value)."""


class TableKeyError(NotFoundError, KeyError):
    """A key (architecture) is not in the table; names the key and the file."""

    def __init__(self, key: str, path: str) -> None:
        self.key = key
        self.path = path
        super().__init__(f"architecture {key!r} not in {path}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class TableColumnError(HwsearchError, KeyError):
    """A column asked for (or the key column) is not in the table; lists the ones there are."""

    def __init__(self, column: str, path: str, reason: str) -> None:
        self.column = column
        self.path = path
        super().__init__(reason)

    def __str__(self) -> str:
        return str(self.args[0])


@runtime_checkable
class TableKeyed(Protocol):
    """A model family whose configs have a key in tables of published results."""

    def table_key(self, config: Mapping[str, Any]) -> str:
        """The key of ``config`` in the key column of such a table."""
        ...


class MetricTable:
    """The numeric columns of a CSV file, indexed by its key column.

    ``columns`` are the numeric columns other than the key, in file order; every other
    column is kept out of lookups. Raises :class:`TableError` for a file that cannot be read
    or lacks or repeats a key, :class:`TableColumnError` when it has no column ``key``.
    """

    def __init__(self, path: str | Path, *, key: str = DEFAULT_KEY) -> None:
        resolved = resolve(path)
        self.path = str(resolved)
        self.key = key
        try:
            data = read_capped(resolved)
        except FileAccessError as exc:
            raise TableError(f"table file {exc.path} {exc.reason}") from None
        frame = _parse_csv(data, self.path, key)
        if key not in frame.columns:
            raise TableColumnError(
                key,
                self.path,
                f"key column {key!r} not in {self.path} (its {len(frame.columns)} column(s) "
                "do not include it)",
            )
        keys = frame[key]
        if keys.isna().any():
            row = int(np.flatnonzero(keys.isna().to_numpy())[0])
            raise TableError(f"table {self.path}: row {row + 1} has no {key!r} value")
        duplicated = keys.duplicated()
        if duplicated.any():
            row = int(np.flatnonzero(duplicated.to_numpy())[0])
            raise TableError(
                f"table {self.path}: the {key!r} of row {row + 1} appears more than once"
            )
        numeric = [
            str(c) for c in frame.columns if c != key and pd.api.types.is_numeric_dtype(frame[c])
        ]
        self.all_columns: tuple[str, ...] = tuple(map(str, frame.columns))
        self.columns: tuple[str, ...] = tuple(numeric)
        self._frame = frame
        self._values = frame[numeric].to_numpy(dtype=np.float64)
        self._rows: dict[str, int] = {k: i for i, k in enumerate(keys.tolist())}
        self._column_index = {c: i for i, c in enumerate(numeric)}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __repr__(self) -> str:
        return f"MetricTable({self.path!r}, key={self.key!r}, rows={len(self)})"

    def keys(self) -> list[str]:
        """Every key, in file order."""
        return list(self._rows)

    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the whole table as read."""
        return self._frame.copy()

    def check_column(self, column: str) -> None:
        """Raise :class:`TableColumnError` unless ``column`` is a numeric column here."""
        if column in self._column_index:
            return
        if column == self.key:
            reason = f"column {column!r} is the key column of {self.path}"
        elif column in self.all_columns:
            reason = f"column {column!r} of {self.path} is not numeric"
        else:
            reason = f"column {column!r} not in {self.path}"
        raise TableColumnError(
            column, self.path, f"{reason} (the table has {len(self.columns)} numeric column(s))"
        )

    def row(self, key: str) -> int:
        """The row number of ``key``; :class:`TableKeyError` when it is not in the table."""
        try:
            return self._rows[key]
        except (KeyError, TypeError):
            raise TableKeyError(str(key), self.path) from None

    def lookup(self, key: str) -> dict[str, float]:
        """Every numeric column of the row of ``key`` (NaN where the file has no value)."""
        return dict(zip(self.columns, self._values[self.row(key)].tolist(), strict=True))

    def value(self, key: str, column: str) -> float:
        """One number: the ``column`` of the row of ``key``.

        Raises :class:`TableColumnError` for an unknown column, :class:`TableKeyError` for an
        unknown key and :class:`TableError` where the file has no value there.
        """
        self.check_column(column)
        value = float(self._values[self.row(key), self._column_index[column]])
        if math.isnan(value):
            raise TableError(f"table {self.path} has no {column!r} value for {key!r}")
        return value

    def column_values(self, column: str) -> np.ndarray:
        """A copy of one numeric column, in file order (aligned with :meth:`keys`)."""
        self.check_column(column)
        return self._values[:, self._column_index[column]].copy()


_PARSER_LINE = re.compile(r"line (\d+)")


def _parse_csv(data: bytes, path: str, key: str) -> pd.DataFrame:
    """The CSV table in ``data``; errors name ``path`` and the reason, never the contents."""
    try:
        return pd.read_csv(io.BytesIO(data), dtype={key: str}, keep_default_na=True)
    except UnicodeDecodeError as exc:
        raise TableError(f"table {path} is not UTF-8 text (byte {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise TableError(f"table {path} is empty") from None
    except pd.errors.ParserError as exc:
        line = _PARSER_LINE.search(str(exc))
        where = f" (at line {line.group(1)})" if line else ""
        raise TableError(f"table {path} is not a well-formed CSV table{where}") from None
    except (ValueError, OverflowError, MemoryError):
        raise TableError(f"table {path} is not a CSV table pandas can read") from None


_CACHE: dict[tuple[str, str], tuple[tuple[int, int], MetricTable]] = {}
_LOCK = threading.Lock()


def load_table(path: str | Path, *, key: str = DEFAULT_KEY) -> MetricTable:
    """The :class:`MetricTable` of ``path`` keyed by ``key``, read once per process.

    The cache is keyed by the absolute path and the key column; a file whose size or
    modification time changed is read again.
    """
    resolved = resolve(path)
    absolute = str(resolved)
    try:
        stat = check_file(resolved)
    except FileAccessError as exc:
        raise TableError(f"table file {exc.path} {exc.reason}") from None
    cap = max_file_bytes()
    if stat.st_size > cap:  # checked on every call: a cached table obeys today's cap too
        raise TableError(
            f"table file {absolute} is {stat.st_size} bytes, more than the {cap} bytes a file "
            "may have"
        )
    version = (stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        cached = _CACHE.get((absolute, key))
        if cached is not None and cached[0] == version:
            return cached[1]
        table = MetricTable(resolved, key=key)
        _CACHE[(absolute, key)] = (version, table)
        return table


def clear_table_cache() -> None:
    """Forget every cached table (the next :func:`load_table` reads its file again)."""
    with _LOCK:
        _CACHE.clear()


__all__ = [
    "DEFAULT_KEY",
    "ROW_NUMBER_COLUMNS",
    "MetricTable",
    "TableColumnError",
    "TableError",
    "TableKeyError",
    "TableKeyed",
    "clear_table_cache",
    "load_table",
]
