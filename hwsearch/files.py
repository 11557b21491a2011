"""Reading the files a spec names: resolve, confine, open with a size cap.

Every file path a job spec (or the CLI's user) names goes through this module, and only
this one, so there is one place that decides what may be read:

* :func:`resolve` makes the path absolute and final before anything checks it: ``~`` is
  expanded, a relative path is joined to a base folder, and ``..`` and symbolic links are
  resolved (``os.path.realpath``). Checks and reads use this resolved path, never the text
  given, so no expansion happens between the check and the read.
* :func:`confine` refuses a resolved path outside a set of folders (the server's
  ``--tables`` folders); ``roots=None`` allows anything the process can read (the CLI).
* :func:`read_capped` opens only regular files (not ``/dev/zero``, ``/proc`` entries that
  are not plain files, FIFOs or directories), re-checks the path has not become a link since
  it was resolved, and reads at most ``max_bytes`` (refusing a larger file).

Errors (:class:`FileAccessError`) name the path and the reason; they never quote a file's
contents. The size cap defaults to :data:`DEFAULT_MAX_FILE_BYTES`, overridable with the
``HWSEARCH_MAX_FILE_BYTES`` environment variable (so job workers in other processes read
under the same cap as the server that checked the spec).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from hwsearch.errors import HwsearchError

#: Largest file (table or spec) read by default: 64 MiB.
DEFAULT_MAX_FILE_BYTES = 64 << 20
#: The environment variable that overrides :data:`DEFAULT_MAX_FILE_BYTES` (bytes).
MAX_FILE_BYTES_ENV = "HWSEARCH_MAX_FILE_BYTES"


class FileAccessError(HwsearchError, ValueError):
    """A named file may not or cannot be read; ``path`` is the resolved path."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def max_file_bytes() -> int:
    """The size cap in force: ``HWSEARCH_MAX_FILE_BYTES`` if set, else the default."""
    text = os.environ.get(MAX_FILE_BYTES_ENV)
    if not text:
        return DEFAULT_MAX_FILE_BYTES
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{MAX_FILE_BYTES_ENV} must be a whole number of bytes") from None
    if value < 1:
        raise ValueError(f"{MAX_FILE_BYTES_ENV} must be at least 1")
    return value


def resolve(value: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """``value`` as a final absolute path: ``~`` expanded, joined to ``base`` (default: the
    current directory) when relative, ``..`` and links resolved."""
    text = os.fspath(value)
    if "\x00" in text:
        raise FileAccessError(repr(text), "a path cannot contain a NUL character")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(os.fspath(base) if base is not None else os.getcwd()).expanduser() / path
    return Path(os.path.realpath(path))


def confine(path: Path, roots: Sequence[Path] | None) -> Path:
    """``path`` (already :func:`resolve`-d) if it lies inside one of ``roots``; ``None``
    allows every path. ``roots`` must be resolved too (as the server's settings are)."""
    if roots is None:
        return path
    if not roots:
        raise FileAccessError(str(path), "this server reads no files (start it with --tables DIR)")
    if not any(path.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise FileAccessError(str(path), f"outside the folders files may be read from ({shown})")
    return path


def check_file(path: Path) -> os.stat_result:
    """The ``stat`` of ``path`` if it is a regular file; :class:`FileAccessError` else."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileAccessError(str(path), "does not exist") from None
    except OSError as exc:
        raise FileAccessError(str(path), f"cannot be read ({exc.strerror})") from None
    _require_regular(path, info)
    return info


def _require_regular(path: Path, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise FileAccessError(str(path), "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise FileAccessError(str(path), "is not a regular file (a device, FIFO or socket)")
    if path.is_relative_to("/proc") or path.is_relative_to("/sys"):
        raise FileAccessError(str(path), "is a kernel interface, not a data file")


def read_capped(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (a :func:`resolve`-d path), at most
    ``max_bytes`` (default :func:`max_file_bytes`); a larger file is refused, not cut."""
    cap = max_file_bytes() if max_bytes is None else max_bytes
    if os.path.realpath(path) != str(path):
        raise FileAccessError(str(path), "changed into a link after it was checked")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileAccessError(str(path), "does not exist") from None
    except OSError as exc:
        raise FileAccessError(str(path), f"cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        _require_regular(path, info)  # of what was opened, not of what was checked
        if info.st_size > cap:
            raise FileAccessError(
                str(path), f"is {info.st_size} bytes, more than the {cap} bytes a file may have"
            )
        chunks: list[bytes] = []
        left = cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise FileAccessError(str(path), f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > cap:
        raise FileAccessError(str(path), f"grew past the {cap} bytes a file may have")
    return data


def open_named(
    value: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    roots: Sequence[Path] | None = None,
    max_bytes: int | None = None,
) -> tuple[Path, bytes]:
    """Resolve, confine and read the file ``value`` names: its final path and its bytes."""
    path = confine(resolve(value, base), roots)
    return path, read_capped(path, max_bytes)


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_FILE_BYTES_ENV",
    "FileAccessError",
    "check_file",
    "confine",
    "max_file_bytes",
    "open_named",
    "read_capped",
    "resolve",
]
