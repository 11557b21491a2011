"""A content-addressed store of candidate artifacts (weights), as files in a folder.

Each artifact is stored once under its sha256 (``<root>/ab/abcdef….bin``), so identical
weights of two candidates cost the disk once; the database references artifacts by digest.
Writes are atomic: a temporary file in the same folder, flushed and fsynced, then renamed
into place, so a reader never sees half an artifact and a crash leaves at most a stray
``.tmp`` file (:meth:`ArtifactStore.clean_temporary` removes old ones). Reads check the
digest, so a corrupted file is an error, not wrong weights.

By default the folder sits beside the SQLite file (``my.db`` → ``my.db.artifacts/``);
:func:`default_root` says where. This module handles bytes only (no torch).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hwsearch.errors import HwsearchError, NotFoundError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
SUFFIX = ".bin"


class ArtifactError(HwsearchError, RuntimeError):
    """An artifact is corrupted or the store cannot be used."""


@dataclass(frozen=True)
class StoreUsage:
    """What the store costs on disk."""

    artifacts: int
    bytes: int


def default_root(db_url: str) -> Path | None:
    """The folder beside a SQLite database file, or None for other databases (a server
    database has no folder of its own; configure a root explicitly)."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        return None
    path = db_url[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).with_name(Path(path).name + ".artifacts")


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ValueError(f"digest must be 64 lowercase hex characters (sha256), got {digest!r}")
    return digest


class ArtifactStore:
    """Content-addressed artifacts under ``root`` (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the artifact ``digest`` lives (whether or not it exists)."""
        d = _check_digest(digest)
        return self.root / d[:2] / f"{d}{SUFFIX}"

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its sha256 hex digest. Storing the same bytes twice is a
        no-op the second time."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        blob = bytes(data)
        digest = hashlib.sha256(blob).hexdigest()
        target = self.path(digest)
        if target.exists() and target.stat().st_size == len(blob):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest[:16]}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes of ``digest``; :class:`NotFoundError` if absent, :class:`ArtifactError`
        if the file no longer hashes to its name."""
        target = self.path(digest)
        try:
            blob = target.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"artifact {digest} not found in {self.root}") from None
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ArtifactError(f"artifact {digest} in {self.root} is corrupted")
        return blob

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        """Bytes the artifact takes on disk; :class:`NotFoundError` if absent."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"artifact {digest} not found in {self.root}") from None

    def delete(self, digest: str) -> bool:
        """Remove an artifact (a caller that keeps only some candidates' weights decides which);
        returns whether it existed."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def digests(self) -> Iterator[str]:
        """Every stored digest."""
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.glob(f"*{SUFFIX}")):
                    name = f.name[: -len(SUFFIX)]
                    if _DIGEST.match(name):
                        yield name

    def usage(self) -> StoreUsage:
        """How many artifacts the store holds and their bytes on disk."""
        count = total = 0
        for digest in self.digests():
            count += 1
            total += self.path(digest).stat().st_size
        return StoreUsage(artifacts=count, bytes=total)

    def clean_temporary(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files an interrupted write left; returns how many."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for tmp in self.root.glob("*/.*.tmp"):
            if tmp.stat().st_mtime < cutoff:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed += 1
        return removed
