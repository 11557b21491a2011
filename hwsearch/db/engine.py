"""Database URLs, engines and migrations.

SQLite (a file, by default ``hwsearch.db`` in the current directory) is the embedded
default; PostgreSQL through psycopg 3 is the production path. The schema is managed by
Alembic; the migration scripts ship inside the package, so no ``alembic.ini`` is needed in
the working directory.

The revision lives in a version table of hwsearch's own, :data:`VERSION_TABLE`, so that
Optuna's RDB storage, which keeps the optimizer studies of jobs in the same database and
manages its own schema with Alembic, can have the default ``alembic_version`` table.
Databases made before kept hwsearch's revision in ``alembic_version``; the next upgrade
moves it (:func:`upgrade_engine`), and until then it is read from there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from hwsearch.errors import SpecError

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "VERSION_TABLE",
    "WRITE_OPTION",
    "alembic_config",
    "current_revision",
    "database_url",
    "engine_revision",
    "head_revision",
    "make_engine",
    "normalize_url",
    "upgrade",
    "upgrade_engine",
]

ENV_VAR = "HWSEARCH_DB_URL"
DEFAULT_URL = "sqlite:///hwsearch.db"
#: Execution option marking a connection that will write; on SQLite its transaction starts
#: with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout instead of
#: failing when a read lock cannot be upgraded.
WRITE_OPTION = "hwsearch_write"
SQLITE_BUSY_TIMEOUT_S = 30.0
_MIGRATION_LOCK_KEY = 0x68777365  # "hwse"
#: hwsearch's Alembic version table (``alembic_version`` is left to Optuna's storage)
VERSION_TABLE = "hwsearch_alembic_version"
_LEGACY_VERSION_TABLE = "alembic_version"

_HERE = Path(__file__).resolve().parent


def database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$HWSEARCH_DB_URL``, else ``sqlite:///hwsearch.db``."""
    if explicit:
        return explicit
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; a plain ``postgresql://`` URL is given the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SpecError("database_url", f"cannot parse {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise SpecError(
            "database_url",
            f"unsupported backend {backend!r} in {parsed.render_as_string()!r}; "
            "use sqlite:///path.db or postgresql://user@host/db",
        )
    return parsed


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``: SQLite gets WAL, foreign keys and a busy timeout; a plain
    ``postgresql://`` URL is served by psycopg 3."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        # No pre-ping round trip per checkout: a connection found dead is discarded by the
        # pool and the store's retry (retry.py) runs the transaction again on a fresh one.
        engine = create_engine(parsed)
        _configure_postgres(engine)
        return engine

    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if _is_memory(parsed):
        # One shared connection, or every connection would see its own empty database.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    engine = create_engine(parsed, **kwargs)
    _configure_sqlite(engine, wal=not _is_memory(parsed))
    return engine


def _configure_postgres(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # psycopg prepares a statement run five times, and the server may then keep one
        # generic plan for it. A job's tables grow from empty while it runs: a plan chosen
        # on a few hundred rows (a sequential scan) would stay, and the per-batch lookups
        # by hash would slow down with every candidate stored. A plan per execution follows
        # the table's size (planning these statements costs about 0.1 ms).
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("SET plan_cache_mode = force_custom_plan")
        finally:
            dbapi_connection.autocommit = autocommit


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below): pysqlite's own transaction handling
        # neither begins on SELECT nor lets us choose IMMEDIATE for writers.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, for ``url`` if given."""
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    if url is not None:
        # Passed as an attribute, not an ini option: ini values interpolate '%'.
        config.attributes["url"] = str(url) if isinstance(url, str) else url
    return config


def upgrade(url: str | None = None, *, revision: str = "head") -> None:
    """Run ``alembic upgrade head`` (or to ``revision``) on the database at ``url``."""
    engine = make_engine(database_url(url))
    try:
        upgrade_engine(engine, revision=revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, *, revision: str = "head") -> None:
    """Like :func:`upgrade`, on an existing engine (and its configured connections)."""
    config = alembic_config()
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            # Serialise concurrent upgrades (two services starting at once); SQLite gets
            # the same from BEGIN IMMEDIATE.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        _adopt_legacy_revision(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(url: str | None = None) -> str | None:
    """The migration revision of the database at ``url``; ``None`` if it was never migrated."""
    engine = make_engine(database_url(url))
    try:
        return engine_revision(engine)
    finally:
        engine.dispose()


def engine_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _version_context(connection).get_current_revision() or _legacy_revision(connection)


def _version_context(connection: Connection) -> MigrationContext:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})


def _legacy_revision(connection: Connection) -> str | None:
    """hwsearch's revision in ``alembic_version``, where databases made before
    :data:`VERSION_TABLE` kept it (never Optuna's revision, which lives there too)."""
    if not inspect(connection).has_table(_LEGACY_VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {_LEGACY_VERSION_TABLE}")).all()
    known = {script.revision for script in _scripts().walk_revisions()}
    return rows[0][0] if len(rows) == 1 and rows[0][0] in known else None


def _adopt_legacy_revision(connection: Connection) -> None:
    """Move a revision kept in ``alembic_version`` to :data:`VERSION_TABLE` (one upgrade,
    inside its transaction), leaving ``alembic_version`` to Optuna."""
    context = _version_context(connection)
    if context.get_current_revision() is not None:
        return
    legacy = _legacy_revision(connection)
    if legacy is None:
        return
    context.stamp(_scripts(), legacy)
    connection.execute(text(f"DROP TABLE {_LEGACY_VERSION_TABLE}"))


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision shipped with this version of hwsearch."""
    head = _scripts().get_current_head()
    if head is None:  # only if the packaged migrations are missing
        raise RuntimeError(f"no migrations found under {_HERE / 'migrations'}")
    return head
