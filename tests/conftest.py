"""Shared fixtures.

``db_url`` runs a test once per storage backend: a SQLite file in ``tmp_path`` and a fresh
schema on the PostgreSQL server named by ``HWSEARCH_TEST_POSTGRES_URL``. Where that server
cannot be reached the PostgreSQL runs are skipped, except under ``CI`` where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from hwsearch.db import Store
from tests.missing import missing

POSTGRES_URL_ENV = "HWSEARCH_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _libpq_url(url: str) -> str:
    """``url`` as libpq understands it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The test PostgreSQL server's URL, once it is known to answer."""
    url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = f"PostgreSQL not reachable at {shown} (set {POSTGRES_URL_ENV}): {exc}"
        missing(reason)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty database, one per backend.

    PostgreSQL: a uniquely named schema, put first on the ``search_path`` of every
    connection made with the URL, and dropped after the test.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hwsearch.db'}"
        return
    server: str = request.getfixturevalue("postgres_server_url")
    schema = f"hwsearch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq_url(server), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    # The plain postgresql:// form, as users give it; the engine picks psycopg 3.
    url = make_url(server).set(drivername="postgresql")
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq_url(server), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated, empty :class:`Store` on each backend."""
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


def _tiny_spec() -> dict[str, Any]:
    """A real search small enough for a test: an MLP on digits, six evaluations."""
    return {
        "name": "tiny",
        "family": "mlp",
        "target": "cpu",
        "space": {
            "depth": {"type": "int", "low": 1, "high": 2},
            "width": {"type": "choice", "values": [8, 16, 32, 64], "per_layer": 2},
            "sparsity": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.5},
            "sparsity_pattern": {"type": "choice", "values": ["unstructured", "channel"]},
            "weight_bits": {"type": "choice", "values": [8, 32]},
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "budget": {"evaluations": 6},
        "optimizer": {"name": "optuna-nsga2", "population_size": 3},
        "evaluation": {"epochs": 1, "finetune_epochs": 0},
        "measurement": {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "max_seconds": 2.0},
        "seed": 0,
    }


@pytest.fixture
def tiny_spec() -> dict[str, Any]:
    """A fresh copy of the tiny spec; tests may change it."""
    return _tiny_spec()


@pytest.fixture(scope="module")
def tiny_spec_module() -> dict[str, Any]:
    return _tiny_spec()


@pytest.fixture(scope="session")
def tiny_spec_session() -> dict[str, Any]:
    """The tiny spec for session-scoped fixtures (such as a shared server); do not change it."""
    return _tiny_spec()


SHARED_DATA = Path(
    os.environ.get("HWSEARCH_TEST_SHARED_DATA")
    or (Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
).resolve()


@pytest.fixture(scope="session")
def nb201_data() -> Path:
    """The folder of the shared NAS-Bench-201 tables (``../shared/data/nb201``).

    Skipped with the reason where it is missing, except under ``CI``, which has it.
    """
    folder = SHARED_DATA / "nb201"
    if not ((folder / "accuracy.csv").exists() and (folder / "latency_ms.csv").exists()):
        reason = f"shared NAS-Bench-201 tables not found in {folder}"
        missing(reason)
    return folder


NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


@pytest.fixture
def nb201_table_spec(nb201_data: Path) -> Callable[..., dict[str, Any]]:
    """A factory of specs on NAS-Bench-201 for the Pixel 3: accuracy and latency are both
    looked up in the shared tables, so a search takes seconds. ``make(budget, **fields)``,
    the fields replacing the spec's own."""

    def make(budget: int = 32, **fields: Any) -> dict[str, Any]:
        spec = {
            "name": "tables",
            "family": "nb201",
            "target": {
                "name": "pixel3",
                "table": str(nb201_data / "latency_ms.csv"),
                "column": "pixel3",
            },
            "space": {"ops": {"type": "choice", "values": NB201_OPS, "per_layer": 6}},
            "objectives": [
                {"metric": "accuracy", "direction": "maximize"},
                {"metric": "latency_ms", "direction": "minimize"},
            ],
            "budget": {"evaluations": budget},
            "optimizer": {"name": "optuna-nsga2", "population_size": 16},
            "evaluation": {
                "type": "table",
                "table": str(nb201_data / "accuracy.csv"),
                "column": "cifar10_acc",
                "scale": 0.01,
            },
            "seed": 0,
        }
        return {**spec, **fields}

    return make


@pytest.fixture
def nb201_active_spec(
    nb201_table_spec: Callable[..., dict[str, Any]],
) -> Callable[..., dict[str, Any]]:
    """:func:`nb201_table_spec` with active learning: ``make(budget, **settings)``."""

    def make(budget: int = 32, **active: Any) -> dict[str, Any]:
        return nb201_table_spec(
            budget, name="active", active_learning={"min_measured": 8, **active}
        )

    return make


# -- a PostgreSQL server of the test's own ----------------------------------------------------


class ThrowawayPostgres:
    """A PostgreSQL cluster made by ``initdb`` in a temporary folder and run by ``pg_ctl`` on
    a free port of 127.0.0.1 (trust authentication), for tests that stop and start a
    server: they never touch the machine's own. Run as the ``postgres`` user when the tests
    run as root (PostgreSQL refuses root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="hwsearch-pg-"))
        self.data = self.root / "data"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr or done.stdout}")

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "-A", "trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends every session as a shutdown would."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_bindir() -> Path | None:
    found = sorted(
        Path(p).parent
        for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if Path(p).with_name("pg_ctl").exists()
    )
    return found[-1] if found else None


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A running PostgreSQL server of this test alone, removed afterwards. Skipped with the
    reason where PostgreSQL's binaries are missing, except under ``CI``."""
    bindir = _postgres_bindir()
    reason = None
    if bindir is None:
        reason = "no initdb and pg_ctl under /usr/lib/postgresql/*/bin"
    elif os.geteuid() == 0 and not shutil.which("runuser"):
        reason = "running as root without runuser to start PostgreSQL as postgres"
    if reason is not None:
        missing(reason)
    assert bindir is not None
    server = ThrowawayPostgres(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def busy_cores() -> Iterator[int]:
    """Two busy-loop processes (``while True: pass``) per core this process may use, so that
    they hold every core whenever the measurement does not, killed afterwards; yields how
    many cores they keep busy."""
    import subprocess
    import sys
    import time

    from hwsearch.hardware.load import usable_cpus

    cores = len(usable_cpus())
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * cores)]
    try:
        time.sleep(0.5)  # let them start spinning
        yield cores
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
