"""URLs, engines and migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect, text
from sqlalchemy.exc import IntegrityError

from hwsearch.db import Store, current_revision, database_url, make_engine, upgrade
from hwsearch.db.engine import VERSION_TABLE, alembic_config, head_revision, normalize_url
from hwsearch.db.models import Base
from hwsearch.errors import HwsearchError, SpecError

TABLES = {
    "jobs",
    "candidates",
    "driver_events",
    "measurements",
    "fronts",
    "front_points",
    "api_tokens",
    "targets",
    "predictors",
    "predictions",
}


def test_database_url_prefers_explicit_then_environment_then_local_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HWSEARCH_DB_URL", raising=False)
    assert database_url(None) == "sqlite:///hwsearch.db"
    monkeypatch.setenv("HWSEARCH_DB_URL", "sqlite:///from-env.db")
    assert database_url(None) == "sqlite:///from-env.db"
    assert database_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_default_url_is_a_file_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HWSEARCH_DB_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    with Store.open() as store:
        store.create_job(name="j", family="mlp", target="cpu", spec={})
    assert (tmp_path / "hwsearch.db").is_file()


def test_plain_postgresql_url_gets_psycopg3_driver() -> None:
    assert normalize_url("postgresql://u@h:5432/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"
    engine = make_engine("postgresql://u:secret@127.0.0.1:1/d")  # no connection is made
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/d", "not a url"])
def test_unsupported_or_malformed_url_is_refused(url: str) -> None:
    with pytest.raises(SpecError) as info:
        make_engine(url)
    assert info.value.field == "database_url"


def test_sqlite_file_uses_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    finally:
        engine.dispose()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.postgres
def test_postgres_connections_plan_each_execution(postgres_server_url: str) -> None:
    """A job's tables grow from empty while it runs: a generic plan kept from when they
    were small would turn the per-batch lookups into sequential scans."""
    engine = make_engine(postgres_server_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
            conn.exec_driver_sql("CREATE TEMPORARY TABLE plan_probe (id INTEGER)")
            conn.rollback()  # the setting did not leave the connection in autocommit
            missing = conn.exec_driver_sql("SELECT to_regclass('pg_temp.plan_probe')").scalar()
            assert missing is None
    finally:
        engine.dispose()


def test_store_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_in_memory_sqlite_keeps_one_database_across_calls() -> None:
    with Store.open("sqlite://") as store:
        job = store.create_job(name="j", family="mlp", target="cpu", spec={})
        assert store.get_job(job.id).name == "j"


def test_upgrade_and_current_revision(db_url: str) -> None:
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert current_revision(db_url) == head_revision() == "0009"
    upgrade(db_url)  # already at head: nothing to do, no error
    assert current_revision(db_url) == "0009"


def test_open_without_migrate_refuses_an_unmigrated_database(db_url: str) -> None:
    with pytest.raises(HwsearchError, match="revision none"):
        Store.open(db_url, migrate=False)
    upgrade(db_url)
    with Store.open(db_url, migrate=False) as store:
        assert store.list_jobs() == []


def _schema_diff(db_url: str, metadata: MetaData) -> list[object]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            opts = {"compare_type": True, "version_table": VERSION_TABLE}
            context = MigrationContext.configure(conn, opts=opts)
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES | {VERSION_TABLE}
    finally:
        engine.dispose()
    assert _schema_diff(db_url, Base.metadata) == []


def test_schema_comparison_notices_a_difference(db_url: str) -> None:
    """The comparison above is not vacuous: a model the migration lacks is reported."""
    upgrade(db_url)
    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("extra", extra, Column("id", Integer, primary_key=True))
    extra.tables["jobs"].append_column(Column("priority", Integer))
    diff = _schema_diff(db_url, extra)
    kinds = {(d[0], getattr(d[-1], "name", None)) for d in diff if isinstance(d, tuple)}
    assert ("add_table", "extra") in kinds
    assert ("add_column", "priority") in kinds


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {VERSION_TABLE}
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert context.get_current_revision() is None
    finally:
        engine.dispose()
    upgrade(db_url)
    assert _schema_diff(db_url, Base.metadata) == []


def test_migration_0008_adds_interrupted_and_its_downgrade_fails_such_jobs(db_url: str) -> None:
    """A database at 0007 refuses ``interrupted``; 0008 accepts it, and going back to 0007
    turns interrupted jobs into failed ones rather than breaking the constraint."""
    config = alembic_config()
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0007")
        insert = text(
            "INSERT INTO jobs (name, family, target, state, spec, created_at, cancel_requested) "
            "VALUES ('j', 'mlp', 'cpu', :state, '{}', CURRENT_TIMESTAMP, false)"
        )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"state": "interrupted"})
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0008")
        with engine.begin() as conn:
            conn.execute(insert, {"state": "interrupted"})
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0007")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT state FROM jobs")).scalars().all() == ["failed"]
    finally:
        engine.dispose()


def test_a_revision_kept_in_alembic_version_is_moved_to_hwsearch_s_own_table(db_url: str) -> None:
    """Databases made before hwsearch had its own version table kept the revision in
    ``alembic_version``; it is read from there, and the next upgrade moves it, leaving
    ``alembic_version`` to Optuna's storage."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:  # the database as an older hwsearch left it
            conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            conn.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": head_revision()})
        assert current_revision(db_url) == head_revision()
        with Store.open(db_url, migrate=False) as store:  # at head: not refused
            assert store.list_jobs() == []
        upgrade(db_url)
        tables = set(inspect(engine).get_table_names())
        assert VERSION_TABLE in tables and "alembic_version" not in tables
        assert current_revision(db_url) == head_revision()
        with engine.begin() as conn:  # another tool's revision there is never taken for ours
            conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('v3.2.0.a')"))
        assert current_revision(db_url) is None
    finally:
        engine.dispose()


def test_check_constraints_reject_unknown_enum_values(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with pytest.raises(IntegrityError, match=r"(?i)check"), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (name, family, target, state, spec, created_at) "
                    "VALUES ('j', 'mlp', 'cpu', 'exploded', '{}', CURRENT_TIMESTAMP)"
                )
            )
    finally:
        engine.dispose()


def test_db_imports_neither_torch_nor_optuna() -> None:
    code = (
        "import sys, hwsearch.db, hwsearch.db.store, hwsearch.db.models; "
        "bad = {'torch', 'optuna', 'ray'} & set(sys.modules); "
        "sys.exit(', '.join(sorted(bad)) or 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or done.stdout
